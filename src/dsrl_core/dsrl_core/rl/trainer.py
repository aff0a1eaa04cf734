"""
The learner's training logic, free of ROS: transition checks, UTD accounting, statistics.

* :func:`check_transition` validates one incoming transition (dimensions, finite values, robot
  id) and returns the arrays the replay buffer stores, or raises :class:`TransitionRejected`.
* :class:`Trainer` owns the algorithm, the replay buffer and the update-to-data accounting: with
  ``n`` transitions received in total and warm-up ``w``, updates are allowed up to
  ``utd_ratio * (n - w + 1)`` once ``n >= w`` (nothing before the warm-up). When it has done that
  many it is idle until new data arrives. Transitions loaded at start (:meth:`Trainer.warm_start`,
  from bags or a saved buffer) count towards the warm-up but earn no updates themselves: training
  follows the live data. Training and checkpointing share one lock.
* :class:`EpisodeStats` keeps success rate and returns per robot and overall.
* :func:`build_algorithm` makes DSRL-SAC or DSRL-NA from the learner parameters.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import threading
from typing import Any, Callable

import numpy as np
import torch

from dsrl_core.policy.base import BasePolicy
from dsrl_core.rl.buffer import ReplayBuffer, sample_mixed
from dsrl_core.rl.learner_params import LearnerNodeParams
from dsrl_core.rl.na import DSRLNA
from dsrl_core.rl.sac import DSRLSAC


class TransitionRejected(ValueError):
    """An incoming transition failed validation; the message says which check."""


@dataclasses.dataclass
class Transition:
    """One transition as plain values (what a dsrl_msgs/Transition holds)."""

    robot_id: str
    episode_id: int
    obs: np.ndarray
    next_obs: np.ndarray
    noise: np.ndarray
    action: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    actor_version: int
    obs_dim: int
    chunk_length: int
    action_dim: int
    executed_steps: int


def check_transition(t: Transition, obs_dim: int, noise_shape: tuple[int, int],
                     accepts_robot: Callable[[str], bool]) -> dict[str, Any]:
    """Return the buffer arrays of ``t`` (noise/action reshaped ``[T, A]``) or raise."""
    if not accepts_robot(t.robot_id):
        raise TransitionRejected(f'robot_id {t.robot_id!r} is not accepted')
    horizon, act_dim = noise_shape
    if (t.obs_dim, t.chunk_length, t.action_dim) != (obs_dim, horizon, act_dim):
        raise TransitionRejected(
            f'declared obs_dim/chunk_length/action_dim {t.obs_dim}/{t.chunk_length}/'
            f'{t.action_dim}, the learner needs {obs_dim}/{horizon}/{act_dim}')
    sizes = {'obs': obs_dim, 'next_obs': obs_dim, 'noise': horizon * act_dim,
             'action': horizon * act_dim}
    out: dict[str, Any] = {}
    for key, size in sizes.items():
        arr = np.asarray(getattr(t, key), dtype=np.float32).reshape(-1)
        if arr.size != size:
            raise TransitionRejected(f'{key} has {arr.size} values, expected {size}')
        if not np.isfinite(arr).all():
            raise TransitionRejected(f'{key} holds NaN or infinite values')
        out[key] = arr
    if not math.isfinite(t.reward):
        raise TransitionRejected(f'reward is not finite: {t.reward}')
    if not 0 <= t.executed_steps <= horizon:
        raise TransitionRejected(f'executed_steps {t.executed_steps} not in [0, {horizon}]')
    out['noise'] = out['noise'].reshape(noise_shape)
    out['action'] = out['action'].reshape(noise_shape)
    out.update(reward=float(t.reward), terminated=bool(t.terminated),
               truncated=bool(t.truncated), actor_version=int(t.actor_version))
    return out


def build_algorithm(params: LearnerNodeParams, base_policy: BasePolicy) -> DSRLSAC | DSRLNA:
    """
    Return the configured algorithm for ``base_policy`` on ``params.device``.

    DSRL-NA decodes noise with the base policy at every distillation step; a base policy that is
    a torch module is moved to ``params.device`` so that this runs next to the critics.
    """
    if params.algorithm == 'dsrl_na':
        if isinstance(base_policy, torch.nn.Module):
            base_policy.to(params.device)
        return DSRLNA(base_policy, config=params.algo_config(), device=params.device)
    return DSRLSAC(base_policy.meta, config=params.algo_config(), device=params.device)


def architecture_string(params: LearnerNodeParams) -> str:
    """Describe the actor network as ActorWeights.architecture does."""
    widths = 'x'.join(str(h) for h in params.hidden)
    return f'tanh_gaussian_mlp:{widths}:layernorm'


class Trainer:
    """Replay buffer + algorithm + update-to-data accounting, shared by two threads."""

    def __init__(self, algorithm: DSRLSAC | DSRLNA, buffer: ReplayBuffer, utd_ratio: int,
                 warmup: int, batch_size: int, seed: int = 0) -> None:
        if utd_ratio < 1 or warmup < 1 or batch_size < 1:
            raise ValueError('utd_ratio, warmup and batch_size must be >= 1')
        self.algorithm, self.buffer = algorithm, buffer
        self.utd_ratio, self.warmup, self.batch_size = utd_ratio, warmup, batch_size
        self.lock = threading.Lock()  # held during updates and while a checkpoint is taken
        self.rng = np.random.default_rng(seed)
        self.robot_index: dict[str, int] = {}
        # transitions loaded by warm_start (they count for the warm-up, earn no updates)
        self.preloaded = 0
        # offline data mixed into every batch (set_offline)
        self.offline: ReplayBuffer | None = None
        self.offline_ratio = 0.0

    def set_offline(self, buffer: ReplayBuffer, ratio: float) -> None:
        """Draw ``ratio`` of every batch from ``buffer`` (e.g. demonstrations) from now on."""
        if (buffer.obs_dim, buffer.action_shape) != (self.buffer.obs_dim,
                                                     self.buffer.action_shape):
            raise ValueError('the offline buffer holds transitions of other shapes')
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f'offline ratio must be in [0, 1], got {ratio}')
        self.offline, self.offline_ratio = buffer, float(ratio)

    @property
    def num_updates(self) -> int:
        """Gradient updates done so far (restored by a resume)."""
        return int(self.algorithm.num_updates)

    def add(self, robot_id: str, arrays: dict[str, Any]) -> None:
        """Insert one checked transition (see :func:`check_transition`)."""
        idx = self.robot_index.setdefault(robot_id, len(self.robot_index))
        self.buffer.add(arrays['obs'], arrays['noise'], arrays['action'], arrays['reward'],
                        arrays['next_obs'], arrays['terminated'], arrays['truncated'],
                        arrays['actor_version'], idx)

    def allowed_updates(self) -> int:
        """Return the total number of updates the data received so far allows."""
        n = self.buffer.total_added
        if n < self.warmup:
            return 0
        return self.utd_ratio * max(0, n - max(self.warmup - 1, self.preloaded))

    def updates_due(self) -> int:
        """Return how many updates may be done now (0 = wait for data)."""
        return max(0, self.allowed_updates() - self.num_updates)

    def train(self, n: int) -> list[dict[str, float]]:
        """Do up to ``n`` updates (never more than are due); return their statistics."""
        stats = []
        with self.lock:
            for _ in range(min(n, self.updates_due())):
                if self.offline is None:
                    batch = self.buffer.sample(self.batch_size, self.rng)
                else:
                    batch = sample_mixed(self.buffer, self.offline, self.offline_ratio,
                                         self.batch_size, self.rng)
                stats.append(self.algorithm.update(batch))
        return stats

    def warm_start(self, paths: list[str], robot_ids: tuple[str, ...] = ('*',)) -> list[str]:
        """
        Load transitions from bags (folders or .mcap files) or saved buffers (``.npz``).

        Bag transitions are checked as live ones are. Returns one report line per path; raises
        ValueError (with the path) when a file is missing, unreadable or of another shape.
        """
        from dsrl_core.bags.learn import load_transitions
        from dsrl_core.bags.reader import BagError
        lines = []
        with self.lock:
            for path in paths:
                if not os.path.exists(path):
                    raise ValueError(f'warm start: {path} does not exist')
                before = len(self.buffer)
                if path.endswith('.npz'):
                    n = self.buffer.extend_from_file(path)  # ValueError naming a bad file
                    lines.append(f'{path}: {n} transitions (saved buffer)')
                else:
                    try:
                        _, report = load_transitions([path], self.buffer, robot_ids=robot_ids,
                                                     robot_index=self.robot_index)
                    except BagError as exc:
                        raise ValueError(f'warm start: {exc}') from exc
                    self.robot_index.update(report.robot_index)
                    lines.append(f'{path}: {report}')
                if len(self.buffer) == before and len(self.buffer) < self.buffer.capacity:
                    raise ValueError(f'warm start: {path} added no transition')
            self.preloaded = self.buffer.total_added
        return lines

    def info(self) -> dict[str, Any]:
        """Return the counters a checkpoint stores besides algorithm and buffer."""
        return {'robot_index': dict(self.robot_index), 'preloaded': self.preloaded,
                'rng': self.rng.bit_generator.state}

    def restore_info(self, info: dict[str, Any]) -> None:
        """Restore what :meth:`info` returned."""
        self.robot_index = {str(k): int(v) for k, v in info.get('robot_index', {}).items()}
        self.preloaded = int(info.get('preloaded', 0))
        if 'rng' in info:
            self.rng.bit_generator.state = info['rng']


class StatsAccumulator:
    """Means of per-update statistics between two reads."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = collections.defaultdict(float)
        self.count = 0

    def add(self, stats: list[dict[str, float]]) -> None:
        """Accumulate the statistics of some updates."""
        for s in stats:
            for k, v in s.items():
                self.sums[k] += v
            self.count += 1

    def pop_means(self) -> dict[str, float]:
        """Return the means since the last call and start over."""
        out = {k: v / self.count for k, v in self.sums.items()} if self.count else {}
        self.sums.clear()
        self.count = 0
        return out


class EpisodeStats:
    """Episode outcomes per robot and overall, with a moving success rate."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.results: collections.deque = collections.deque(maxlen=window)
        self.per_robot: dict[str, collections.deque] = {}
        self.finished = 0
        self._seen: dict[str, int] = {}
        self._count: dict[str, int] = {}
        self._returns: dict[tuple[str, int], float] = {}

    def episode_end(self, robot_id: str, episode_id: int, success: bool,
                    episode_return: float) -> bool:
        """Record a finished episode once (repeats of the same id are ignored); True if new."""
        if self._seen.get(robot_id) == episode_id:
            return False
        self._seen[robot_id] = episode_id
        self.results.append(bool(success))
        self.per_robot.setdefault(robot_id, collections.deque(maxlen=self.window)).append(
            bool(success))
        self.finished += 1
        self._count[robot_id] = self._count.get(robot_id, 0) + 1
        return True

    def count(self, robot_id: str) -> int:
        """Return the number of finished episodes of ``robot_id``."""
        return self._count.get(robot_id, 0)

    def success_rate(self, robot_id: str | None = None) -> float:
        """Return the success rate over the window (of one robot, or all); NaN before any."""
        d = self.results if robot_id is None else self.per_robot.get(robot_id, ())
        return float(np.mean(d)) if len(d) else float('nan')

    def transition(self, robot_id: str, episode_id: int, reward: float,
                   done: bool) -> float | None:
        """Accumulate a transition's reward; return the episode return when ``done``."""
        key = (robot_id, episode_id)
        self._returns[key] = self._returns.get(key, 0.0) + reward
        if done:
            return self._returns.pop(key)
        if len(self._returns) > 1000:  # episodes whose end never arrived
            self._returns.pop(next(iter(self._returns)))
        return None
