"""
Scripted, teleop-like demonstrator for the push task (``push_env.PushEnv``).

The demonstrator reads only the observation (joint positions and the puck position) and returns
absolute joint targets. Each episode it:

1. orbits the tip around the puck on one side (``side`` +1: passes the puck on its left, seen from
   the puck looking at the goal; -1: on its right) to a pre-push point behind the puck, on the
   goal->puck line;
2. pushes the puck towards the goal centre, steering the tip back onto the line behind the puck;
   if the puck drifts too far off line it backs off and re-aligns (orbits again).

Tip targets are converted to joint targets with analytic planar IK of the 3-link arm (the third
link's heading is chosen for continuity with the previous target, with a mild pull towards the
home posture, inside the joint limits, elbow branch kept); joint targets change by at most
``MAX_DELTA`` rad per control step. Per-episode variation (side, speeds, clearance, pre-push
offset, push depth, steering gain) and temporally correlated noise make demonstrations
multimodal and imperfect, like human teleoperation.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from dsrl_core.sim.push_env import (
    forward_kinematics,
    GOAL_XY,
    HOME_QPOS,
    JOINT_LIMITS,
    LINK_LENGTHS,
    PUCK_RADIUS,
    PUSHER_RADIUS,
)

# Largest change of a joint target between two control steps (rad).
MAX_DELTA = 0.35
_CONTACT = PUCK_RADIUS + PUSHER_RADIUS
_LIMIT_MARGIN = 0.03
_PHI_OFFSETS = np.linspace(-np.pi, np.pi, 145)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2.0 * np.pi) - np.pi


def _rot(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def planar_ik(target_xy: np.ndarray, q_ref: np.ndarray,
              posture: Optional[np.ndarray] = None, posture_weight: float = 0.05) -> np.ndarray:
    """
    Joint positions [3] placing the pusher at ``target_xy``, inside the joint limits.

    The third link's heading is redundant: headings all around are solved analytically (elbow
    branch q2 >= 0, the branch of the home pose, preferred); the solution closest to ``q_ref``
    plus ``posture_weight`` x squared distance to ``posture`` (default: the home pose) wins.
    Unreachable targets are pulled towards the base until a solution exists.
    """
    target = np.asarray(target_xy, dtype=np.float64)
    posture = HOME_QPOS if posture is None else posture
    l1, l2, l3 = LINK_LENGTHS
    heading = float(np.arctan2(target[1], target[0]))
    for scale in (1.0, 0.97, 0.94, 0.9, 0.85, 0.8, 0.7, 0.6):
        p = target * scale
        phi = heading + _PHI_OFFSETS
        wx = p[0] - l3 * np.cos(phi)
        wy = p[1] - l3 * np.sin(phi)
        c2 = (wx ** 2 + wy ** 2 - l1 ** 2 - l2 ** 2) / (2.0 * l1 * l2)
        ok = np.abs(c2) <= 1.0
        if not np.any(ok):
            continue
        phi, wx, wy, c2 = phi[ok], wx[ok], wy[ok], c2[ok]
        q2 = np.concatenate([np.arccos(c2), -np.arccos(c2)])
        phi2 = np.concatenate([phi, phi])
        wx2 = np.concatenate([wx, wx])
        wy2 = np.concatenate([wy, wy])
        q1 = _wrap(np.arctan2(wy2, wx2) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2)))
        q3 = _wrap(phi2 - q1 - q2)
        q = np.stack([q1, q2, q3], axis=-1)
        inside = np.all((q >= JOINT_LIMITS[:, 0] + _LIMIT_MARGIN)
                        & (q <= JOINT_LIMITS[:, 1] - _LIMIT_MARGIN), axis=-1)
        if not np.any(inside):
            continue
        q = q[inside]
        cost = (np.sum((q - q_ref) ** 2, axis=-1)
                + posture_weight * np.sum((q - posture) ** 2, axis=-1)
                + 10.0 * (q[:, 1] < 0.0))
        return q[int(np.argmin(cost))]
    return np.clip(np.asarray(q_ref, dtype=np.float64), JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])


class ScriptedPusher:
    """Scripted pushing demonstrator with per-episode variation (see the module docstring)."""

    def __init__(self, rng: Union[np.random.Generator, int, None] = None,
                 noise_scale: float = 1.0, side: Optional[int] = None,
                 goal_xy: Optional[np.ndarray] = None) -> None:
        """
        Create the demonstrator.

        ``rng``: generator or seed for per-episode parameters and noise; ``noise_scale``: 0 gives
        noiseless targets (per-episode parameters still vary); ``side``: force +1 / -1 (None: pick
        at random each episode); ``goal_xy``: goal centre (default: the task's).
        """
        if side not in (None, 1, -1):
            raise ValueError('side must be None, +1 or -1')
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.noise_scale = float(noise_scale)
        self.fixed_side = side
        self.goal_xy = np.array(GOAL_XY if goal_xy is None else goal_xy, dtype=np.float64)
        self.reset()

    def reset(self, rng: Union[np.random.Generator, int, None] = None) -> None:
        """Start a new episode: draw side, speeds and offsets (optionally from a new ``rng``)."""
        if rng is not None:
            self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        r = self.rng
        self.side = self.fixed_side if self.fixed_side is not None else int(r.choice([-1, 1]))
        self.approach_speed = r.uniform(0.022, 0.032)   # m per control step
        self.push_speed = r.uniform(0.008, 0.012)       # m per control step
        self.clearance = r.uniform(0.025, 0.04)         # orbit gap between pusher and puck (m)
        self.pre_offset = r.uniform(0.006, 0.018)       # gap at the pre-push point (m)
        self.push_depth = r.uniform(0.014, 0.02)        # how far the target leads the contact
        self.steer_gain = r.uniform(0.6, 1.0)
        self.max_delta = MAX_DELTA - r.uniform(0.0, 0.1)
        self.phase = 'approach'
        self._orbit_side = self.side
        self._q_target: Optional[np.ndarray] = None
        self._noise = np.zeros(2)

    # ----------------------------------------------------------------- policy
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Return joint position targets [3] (rad) for observation ``obs`` [8]."""
        obs = np.asarray(obs, dtype=np.float64)
        q, puck = obs[0:3], obs[6:8]
        if self._q_target is None:
            self._q_target = q.copy()
        tip = forward_kinematics(q)
        to_goal = self.goal_xy - puck
        u = to_goal / max(np.linalg.norm(to_goal), 1e-6)
        behind = -u
        rel = tip - puck
        # Signed angle of the tip around the puck, from the pre-push direction, in the
        # orbiting direction (positive = still to go).
        theta = float(np.arctan2(behind[0] * rel[1] - behind[1] * rel[0], behind @ rel))
        if self.phase == 'push' and abs(theta) > np.deg2rad(35.0):
            # Puck drifted off line: back off and re-align around the nearer side.
            self.phase = 'approach'
            self._orbit_side = -1 if theta > 0 else 1
        theta *= -self._orbit_side
        if self.phase == 'approach':
            tip_target = self._approach_target(tip, puck, behind, theta)
        else:
            tip_target = self._push_target(tip, puck, u)
        self._noise = 0.7 * self._noise + 0.3 * self.rng.normal(0.0, 0.004, 2)
        tip_target = tip_target + self.noise_scale * self._noise
        q_des = planar_ik(tip_target, self._q_target)
        step = np.clip(q_des - self._q_target, -self.max_delta, self.max_delta)
        self._q_target = np.clip(self._q_target + step, JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])
        return self._q_target.astype(np.float32)

    def _approach_target(self, tip: np.ndarray, puck: np.ndarray, behind: np.ndarray,
                         theta: float) -> np.ndarray:
        """Next tip target while orbiting to the pre-push point."""
        if theta < -np.deg2rad(30.0):
            theta += 2.0 * np.pi          # on the far side: go around the chosen way
        orbit = _CONTACT + self.clearance
        pre = _CONTACT + self.pre_offset
        pre_point = puck + pre * behind
        if abs(theta) < np.deg2rad(12.0) and np.linalg.norm(tip - pre_point) < 0.012:
            self.phase = 'push'
            return self._push_target(tip, puck, -behind)
        dist = float(np.linalg.norm(tip - puck))
        step_angle = self.approach_speed / max(dist, orbit)
        next_theta = np.sign(theta) * max(abs(theta) - step_angle, 0.0)
        # Blend the radius from the orbit down to the pre-push gap over the last 40 degrees.
        blend = min(abs(next_theta) / np.deg2rad(40.0), 1.0)
        radius = pre + (orbit - pre) * blend
        target = puck + radius * _rot(behind, -self._orbit_side * next_theta)
        return tip + self._limit(target - tip, self.approach_speed)

    def _push_target(self, tip: np.ndarray, puck: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Next tip target while pushing along ``u`` (unit puck->goal)."""
        # Contact normal now (tip -> puck); steer past the line to turn the puck back onto it.
        normal = puck - tip
        normal /= max(np.linalg.norm(normal), 1e-6)
        err = float(np.arctan2(normal[0] * u[1] - normal[1] * u[0], normal @ u))
        direction = _rot(u, self.steer_gain * err)
        target = puck - direction * (_CONTACT - self.push_depth)
        return tip + self._limit(target - tip, self.push_speed)

    @staticmethod
    def _limit(v: np.ndarray, max_norm: float) -> np.ndarray:
        norm = float(np.linalg.norm(v))
        return v if norm <= max_norm else v * (max_norm / norm)


def run_episode(env, pusher: ScriptedPusher, seed: Optional[int] = None,
                options: Optional[dict] = None) -> dict:
    """
    Roll out one episode of ``pusher`` in ``env``; return obs, actions, success, length.

    ``options`` go to ``env.reset`` (e.g. ``qpos`` and ``object_xy`` for a chosen start).
    """
    obs, info = env.reset(seed=seed, options=options)
    pusher.reset()
    observations, actions = [], []
    success = False
    while True:
        action = pusher.act(obs)
        observations.append(obs)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            success = bool(info['success'])
            break
    return {
        'obs': np.asarray(observations, dtype=np.float32),
        'action': np.asarray(actions, dtype=np.float32),
        'success': success,
        'length': len(actions),
    }
