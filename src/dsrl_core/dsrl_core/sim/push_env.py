"""
Simulated push task: a planar 3-joint arm pushes a red puck onto a green goal disc.

The MJCF model is ``assets/push_arm.xml``: three revolute joints with vertical axes move the arm in
a horizontal plane just above a table; a round pusher at the tip of the third link is the only part
that touches the puck. The puck (radius 0.03 m) slides on the table with Coulomb friction and can
neither tip over nor leave the table. The goal is a green disc (radius 0.05 m) drawn on the table.

Control runs at ``CONTROL_HZ`` = 10 Hz (one control step = 0.1 s = 50 physics substeps of 2 ms).

Action, float, shape (3,): absolute joint position targets in radians for
``joint1, joint2, joint3`` (like a ros2_control position interface); ``step`` clips them to
``JOINT_LIMITS``.

Observation, float32, shape (8,), names in ``OBS_NAMES``:

====  =====================  ======  =========================================
idx   name                   unit    meaning
====  =====================  ======  =========================================
0-2   joint_pos/joint1..3    rad     measured joint positions
3-5   joint_vel/joint1..3    rad/s   measured joint velocities
6     object/x               m       puck centre x, world frame (tracker)
7     object/y               m       puck centre y, world frame (tracker)
====  =====================  ======  =========================================

World frame: origin at the arm base on the table top, z up, the arm's zero pose points along +x.

Reward (sparse): -1 per control step until success, 0 on the success step. Success (ground
truth, ``info['success']``): puck centre within ``GOAL_RADIUS`` of ``GOAL_XY``, checked after every
control step; ``terminated`` is True on success, ``truncated`` is True when ``max_steps`` control
steps have elapsed without success.

Episodes are fully seeded: ``reset(seed=s)`` followed by the same actions gives bitwise identical
observations. Rendering (``render``) only reads the simulation state and never changes physics.
"""

from __future__ import annotations

import atexit
import copy
import functools
import os
from typing import Any, Optional, Sequence
import weakref

import mujoco
import numpy as np

ASSET_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'assets', 'push_arm.xml')

JOINT_NAMES: tuple[str, ...] = ('joint1', 'joint2', 'joint3')
OBS_NAMES: tuple[str, ...] = (
    'joint_pos/joint1', 'joint_pos/joint2', 'joint_pos/joint3',
    'joint_vel/joint1', 'joint_vel/joint2', 'joint_vel/joint3',
    'object/x', 'object/y',
)
ACTION_NAMES: tuple[str, ...] = JOINT_NAMES
# Lower/upper position limit of each joint in radians (= MJCF joint range = actuator ctrlrange).
JOINT_LIMITS = np.array([[-1.6, 1.6], [-2.4, 2.4], [-2.4, 2.4]], dtype=np.float64)
CONTROL_HZ = 10.0
PHYSICS_TIMESTEP = 0.002
# Link lengths (joint1->joint2, joint2->joint3, joint3->pusher centre) in metres.
LINK_LENGTHS = np.array([0.20, 0.20, 0.12], dtype=np.float64)
GOAL_XY = np.array([0.26, 0.0], dtype=np.float64)
GOAL_RADIUS = 0.05
PUCK_RADIUS = 0.03
PUSHER_RADIUS = 0.015
# Fixed home pose of the arm (tip below the goal, third link pointing towards +y).
HOME_QPOS = np.array([-1.45, 1.55, 1.45], dtype=np.float64)
HOME_NOISE = 0.02
# Puck start: GOAL_XY + d * (cos a, sin a), d ~ U(PUCK_DIST), a ~ U(PUCK_ANGLE) (radians).
PUCK_DIST = (0.12, 0.20)
PUCK_ANGLE = (np.deg2rad(62.0), np.deg2rad(118.0))

OBS_DIM = len(OBS_NAMES)
ACT_DIM = len(JOINT_NAMES)
_STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION
# Environments with a live renderer, closed at exit before the GL display is terminated.
_LIVE_ENVS: 'weakref.WeakSet[PushEnv]' = weakref.WeakSet()
_EXIT_HOOK = []


def _close_renderers() -> None:
    for env in list(_LIVE_ENVS):
        env.close()


def _track_renderer(env: 'PushEnv') -> None:
    # Registered after the first GL context exists, so it runs before mujoco's own
    # eglTerminate exit hook (atexit runs in reverse order).
    _LIVE_ENVS.add(env)
    if not _EXIT_HOOK:
        atexit.register(_close_renderers)
        _EXIT_HOOK.append(True)


def forward_kinematics(qpos: np.ndarray) -> np.ndarray:
    """Return the planar pusher-centre position(s) [..., 2] for joint positions [..., 3]."""
    q = np.asarray(qpos, dtype=np.float64)
    angles = np.cumsum(q, axis=-1)
    x = np.sum(LINK_LENGTHS * np.cos(angles), axis=-1)
    y = np.sum(LINK_LENGTHS * np.sin(angles), axis=-1)
    return np.stack([x, y], axis=-1)


def load_model(path: str = ASSET_PATH) -> mujoco.MjModel:
    """Return a fresh copy of the push-arm model (compiled and checked once per path)."""
    return copy.deepcopy(_compile_model(path))


@functools.lru_cache(maxsize=4)
def _compile_model(path: str) -> mujoco.MjModel:
    """Compile the push-arm MJCF and check it against the constants of this module."""
    model = mujoco.MjModel.from_xml_path(path)
    for i, name in enumerate(JOINT_NAMES):
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
        if jid < 0:
            raise ValueError(f'{path}: joint {name!r} missing')
        if not np.allclose(model.jnt_range[jid], JOINT_LIMITS[i]):
            raise ValueError(f'{path}: range of {name} is {model.jnt_range[jid]}, '
                             f'expected {JOINT_LIMITS[i]}')
    lengths = [model.body(b).pos[0] for b in ('link2', 'link3', 'pusher')]
    if not np.allclose(lengths, LINK_LENGTHS):
        raise ValueError(f'{path}: link lengths {lengths} differ from {LINK_LENGTHS}')
    goal = model.geom('goal')
    if not (np.allclose(goal.pos[:2], GOAL_XY) and np.isclose(goal.size[0], GOAL_RADIUS)):
        raise ValueError(f'{path}: goal geom differs from GOAL_XY/GOAL_RADIUS')
    if not np.isclose(model.opt.timestep, PHYSICS_TIMESTEP):
        raise ValueError(f'{path}: timestep {model.opt.timestep} != {PHYSICS_TIMESTEP}')
    return model


class PushEnv:
    """Push-the-puck-to-the-goal task with a gymnasium-style API (see the module docstring)."""

    metadata = {'render_modes': ['rgb_array'], 'render_fps': CONTROL_HZ}

    def __init__(self, max_steps: int = 60, render_size: Sequence[int] = (96, 96),
                 seed: Optional[int] = None, camera: str = 'overhead') -> None:
        """Create the task; ``render_size`` is (height, width) of ``render()`` images."""
        if max_steps <= 0:
            raise ValueError('max_steps must be positive')
        self.max_steps = int(max_steps)
        self.render_height, self.render_width = (int(render_size[0]), int(render_size[1]))
        self.camera = camera
        self.model = load_model()
        self.data = mujoco.MjData(self.model)
        self.n_substeps = int(round(1.0 / (CONTROL_HZ * self.model.opt.timestep)))
        self._arm_qadr = np.array([self.model.joint(n).qposadr[0] for n in JOINT_NAMES])
        self._arm_dadr = np.array([self.model.joint(n).dofadr[0] for n in JOINT_NAMES])
        self._puck_qadr = np.array([self.model.joint(n).qposadr[0]
                                    for n in ('puck_x', 'puck_y', 'puck_yaw')])
        self._tip_site = self.model.site('tip').id
        self._rng = np.random.default_rng(seed)
        self._renderer: Optional[mujoco.Renderer] = None
        self._elapsed = 0
        self._state_size = mujoco.mj_stateSize(self.model, _STATE_SPEC)
        self.reset(seed=seed)

    # ----------------------------------------------------------------- properties
    @property
    def obs_dim(self) -> int:
        """Length of the observation vector (8)."""
        return OBS_DIM

    @property
    def act_dim(self) -> int:
        """Length of the action vector (3)."""
        return ACT_DIM

    @property
    def joint_limits(self) -> np.ndarray:
        """Joint position limits [3, 2] in radians (copy)."""
        return JOINT_LIMITS.copy()

    @property
    def goal_xy(self) -> np.ndarray:
        """Goal centre (x, y) in metres, world frame (copy)."""
        return GOAL_XY.copy()

    @property
    def goal_radius(self) -> float:
        """Goal radius in metres."""
        return GOAL_RADIUS

    @property
    def object_xy(self) -> np.ndarray:
        """Current puck centre (x, y) in metres, world frame."""
        return self.data.qpos[self._puck_qadr[:2]].copy()

    @property
    def tip_xy(self) -> np.ndarray:
        """Current pusher centre (x, y) in metres, world frame."""
        return self.data.site_xpos[self._tip_site, :2].copy()

    @property
    def elapsed_steps(self) -> int:
        """Control steps taken in the current episode."""
        return self._elapsed

    @property
    def control_dt(self) -> float:
        """Duration of one control step in seconds (0.1)."""
        return self.n_substeps * self.model.opt.timestep

    # ----------------------------------------------------------------- API
    def sample_initial_conditions(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw (arm qpos [3], puck xy [2]) for a new episode from ``rng``."""
        qpos = HOME_QPOS + rng.uniform(-HOME_NOISE, HOME_NOISE, size=3)
        dist = rng.uniform(*PUCK_DIST)
        angle = rng.uniform(*PUCK_ANGLE)
        puck = GOAL_XY + dist * np.array([np.cos(angle), np.sin(angle)])
        return np.clip(qpos, JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1]), puck

    def reset(self, seed: Optional[int] = None,
              options: Optional[dict] = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode; a given ``seed`` re-seeds the episode RNG (gymnasium semantics)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        qpos, puck = self.sample_initial_conditions(self._rng)
        options = options or {}
        if 'object_xy' in options:
            puck = np.asarray(options['object_xy'], dtype=np.float64)
        if 'qpos' in options:
            qpos = np.asarray(options['qpos'], dtype=np.float64)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._arm_qadr] = qpos
        self.data.qpos[self._puck_qadr] = (puck[0], puck[1], 0.0)
        self.data.ctrl[:] = qpos
        mujoco.mj_forward(self.model, self.data)
        self._elapsed = 0
        return self._obs(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply joint targets for one control step (0.1 s); return the gymnasium 5-tuple."""
        action = np.asarray(action, dtype=np.float64).reshape(ACT_DIM)
        if not np.all(np.isfinite(action)):
            raise ValueError(f'action must be finite, got {action}')
        self.data.ctrl[:] = np.clip(action, JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1])
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        self._elapsed += 1
        success = self.success_from_state()
        reward = 0.0 if success else -1.0
        truncated = (not success) and self._elapsed >= self.max_steps
        return self._obs(), reward, success, truncated, self._info(success)

    def render(self) -> np.ndarray:
        """Render the overhead camera: uint8 RGB image [H, W, 3]. Does not change physics."""
        if self._renderer is None:
            self._renderer = self._make_renderer()
            _track_renderer(self)
        self._renderer.update_scene(self.data, camera=self.camera)
        return self._renderer.render()

    def close(self) -> None:
        """Release the renderer (the env stays usable; a new renderer is made on demand)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def get_state(self) -> np.ndarray:
        """Return the full physics state (time, qpos, qvel, act, ctrl, warm start) as float64."""
        state = np.empty(self._state_size, dtype=np.float64)
        mujoco.mj_getState(self.model, self.data, state, _STATE_SPEC)
        return state

    def set_state(self, state: np.ndarray) -> None:
        """Restore a state from ``get_state``; the episode step counter follows the sim time."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (self._state_size,):
            raise ValueError(f'state must have shape ({self._state_size},), got {state.shape}')
        mujoco.mj_setState(self.model, self.data, state, _STATE_SPEC)
        mujoco.mj_forward(self.model, self.data)
        self._elapsed = int(round(self.data.time / self.control_dt))

    def success_from_state(self) -> bool:
        """Return True when the puck centre lies within the goal radius (ground truth)."""
        return bool(np.linalg.norm(self.object_xy - GOAL_XY) <= GOAL_RADIUS)

    # ----------------------------------------------------------------- helpers
    def _obs(self) -> np.ndarray:
        obs = np.empty(OBS_DIM, dtype=np.float32)
        obs[0:3] = self.data.qpos[self._arm_qadr]
        obs[3:6] = self.data.qvel[self._arm_dadr]
        obs[6:8] = self.data.qpos[self._puck_qadr[:2]]
        return obs

    def _info(self, success: Optional[bool] = None) -> dict[str, Any]:
        if success is None:
            success = self.success_from_state()
        return {
            'success': success,
            'object_xy': self.object_xy,
            'tip_xy': self.tip_xy,
            'goal_dist': float(np.linalg.norm(self.object_xy - GOAL_XY)),
            'elapsed_steps': self._elapsed,
        }

    def _make_renderer(self) -> mujoco.Renderer:
        vis = self.model.vis
        vis.quality.offsamples = 0
        vis.global_.offwidth = max(vis.global_.offwidth, self.render_width)
        vis.global_.offheight = max(vis.global_.offheight, self.render_height)
        renderer = mujoco.Renderer(self.model, self.render_height, self.render_width)
        flags = renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
        return renderer

    def __enter__(self) -> 'PushEnv':
        """Return self (context manager)."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close on context exit."""
        self.close()


class BatchPushEnv:
    """
    N independent ``PushEnv`` copies stepped together (no auto-reset; for evaluations).

    Finished episodes are frozen: their rows keep the last observation, reward 0 and
    ``done`` stays True until the next ``reset``.
    """

    def __init__(self, num_envs: int, max_steps: int = 60, seed: Optional[int] = None) -> None:
        """Create ``num_envs`` environments; env i is seeded with ``seed + i`` on reset."""
        self.envs = [PushEnv(max_steps=max_steps) for _ in range(num_envs)]
        self.seed = seed
        self.num_envs = num_envs
        self.done = np.zeros(num_envs, dtype=bool)
        self.success = np.zeros(num_envs, dtype=bool)
        self._last_obs = np.zeros((num_envs, OBS_DIM), dtype=np.float32)

    def reset(self, seed: Optional[int] = None) -> np.ndarray:
        """Reset all envs (env i with ``seed + i`` when a seed is known); return obs [N, 8]."""
        seed = self.seed if seed is None else seed
        for i, env in enumerate(self.envs):
            self._last_obs[i] = env.reset(seed=None if seed is None else seed + i)[0]
        self.done[:] = False
        self.success[:] = False
        return self._last_obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Step unfinished envs with ``actions`` [N, 3]; return (obs, reward, done, success)."""
        actions = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, ACT_DIM)
        reward = np.zeros(self.num_envs, dtype=np.float32)
        for i, env in enumerate(self.envs):
            if self.done[i]:
                continue
            obs, rew, term, trunc, info = env.step(actions[i])
            self._last_obs[i] = obs
            reward[i] = rew
            self.success[i] = info['success']
            self.done[i] = term or trunc
        return self._last_obs.copy(), reward, self.done.copy(), self.success.copy()

    def close(self) -> None:
        """Close all environments."""
        for env in self.envs:
            env.close()
