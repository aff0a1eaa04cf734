"""
The simulated arm as a ROS-free stepper: held joint targets, validated commands, sim time, resets.

``SimRunner`` wraps :class:`PushEnv` for the sim node. Sim time counts control steps from start-up:
step k ends at ``k * STEP_NS`` nanoseconds. A reset also takes one step of sim time, so every
distinct state has its own stamp. ``command`` validates a joint-position command (length and
finite values; out-of-range targets are clipped by the arm like a position controller would) and
holds it; ``step`` advances one control step with the held target and returns what the node
publishes: the stamp, the observation and the rendered camera frame, all of the same state.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from dsrl_core.sim.push_env import CONTROL_HZ, JOINT_LIMITS, PushEnv

STEP_NS = int(round(1e9 / CONTROL_HZ))


class CommandError(ValueError):
    """A joint command has the wrong length or non-finite values."""


def validate_command(data: Sequence[float], n_joints: int) -> np.ndarray:
    """Return ``data`` as float64 [n_joints]; raise CommandError on a bad length or non-finite."""
    q = np.asarray(list(data), dtype=np.float64)
    if q.shape != (n_joints,):
        raise CommandError(f'command has {q.size} values, expected {n_joints} joint positions')
    if not np.all(np.isfinite(q)):
        raise CommandError(f'command has non-finite values: {q.tolist()}')
    return q


@dataclasses.dataclass
class SimFrame:
    """Everything published for one sim state: one stamp for all of it."""

    # Control steps since start-up (resets included).
    step: int
    # Sim time of this state in nanoseconds (step * STEP_NS).
    stamp_ns: int
    # Episode counter (0 = the episode set up at start-up).
    episode: int
    # Observation [8]: joint pos (3), joint vel (3), puck x, y (see push_env).
    obs: np.ndarray
    # Rendered camera frame [H, W, 3] uint8 (None when rendering is off).
    image: Optional[np.ndarray]


class SimRunner:
    """Held-target stepping of the push task with sim time and seeded episodes."""

    def __init__(self, seed: int = 0, render_size: Sequence[int] = (96, 96),
                 render: bool = True) -> None:
        """Create the task and set up episode 0 (seeded with ``seed``)."""
        self.seed = int(seed)
        self.render_enabled = render
        self.env = PushEnv(max_steps=2 ** 62, render_size=render_size)
        self.n_joints = len(JOINT_LIMITS)
        self.step_index = 0
        self.episode = 0
        self.commands = 0
        self.target = np.zeros(self.n_joints)
        self._obs, _ = self.env.reset(seed=self.seed)
        self.target = self._obs[:self.n_joints].astype(np.float64)

    @property
    def stamp_ns(self) -> int:
        """Sim time of the current state in nanoseconds."""
        return self.step_index * STEP_NS

    def command(self, data: Sequence[float]) -> np.ndarray:
        """Validate and hold a joint-position command (radians); raise CommandError if bad."""
        q = validate_command(data, self.n_joints)
        self.target = q
        self.commands += 1
        return q

    def frame(self) -> SimFrame:
        """Return the current state (stamp, obs, camera frame) without stepping."""
        image = self.env.render().copy() if self.render_enabled else None
        return SimFrame(self.step_index, self.stamp_ns, self.episode, self._obs.copy(), image)

    def step(self) -> SimFrame:
        """Advance one control step with the held target; return the new state."""
        self._obs, _, _, _, _ = self.env.step(self.target)
        self.step_index += 1
        return self.frame()

    def reset(self) -> SimFrame:
        """Start the next episode (seed + episode), hold its start pose; takes one step of time."""
        self.episode += 1
        self._obs, _ = self.env.reset(seed=self.seed + self.episode)
        self.target = self._obs[:self.n_joints].astype(np.float64)
        self.step_index += 1
        return self.frame()

    def close(self) -> None:
        """Release the renderer."""
        self.env.close()
