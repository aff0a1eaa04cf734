"""
Demonstrations as offline chunk transitions for DSRL-NA.

A demonstration file (``dsrl_core.sim.demos`` format, also what ``dsrl_core.bags.learn.
bag_to_demos`` writes) holds per-step observations and commands, split into episodes. DSRL-NA's
action critic learns from executed chunks, so demonstrations become transitions by cutting each
episode into consecutive chunks of the base policy's horizon ``T``, starting at its first step:

* ``obs`` = the observation before the chunk's first step, ``action`` = its ``T`` commands (a last,
  shorter chunk is padded with its final command, as the arm holds a command after the episode
  ended it early), ``next_obs`` = the observation before the next chunk;
* ``reward`` = the task reward summed over the executed steps: ``step_reward`` per step, and
  ``success_reward`` on the final step of a successful episode (the push task's sparse reward:
  -1 per step until success, 0 on the success step);
* the last chunk of a successful episode is ``terminated``; the last chunk of a failed one has no
  observation after it in the file and is left out (counted in the report);
* ``noise`` is zero (no actor chose it: DSRL-SAC cannot learn from these rows, NA can).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import numpy as np

from dsrl_core.rl.buffer import ReplayBuffer


@dataclasses.dataclass
class OfflineReport:
    """What :func:`demos_to_buffer` made of a demonstration set."""

    episodes: int = 0
    successful: int = 0
    steps: int = 0
    transitions: int = 0
    dropped_tails: int = 0

    def __str__(self) -> str:
        """One line."""
        return (f'{self.episodes} demonstration episodes ({self.successful} successful, '
                f'{self.steps} steps) -> {self.transitions} chunk transitions'
                + (f'; {self.dropped_tails} final chunks of failed episodes left out (no '
                   'observation after them)' if self.dropped_tails else ''))


def demos_to_buffer(demos: Mapping[str, Any], horizon: int, step_reward: float = -1.0,
                    success_reward: float = 0.0, capacity: int | None = None,
                    noise_shape: tuple[int, ...] | None = None,
                    buffer: ReplayBuffer | None = None) -> tuple[ReplayBuffer, OfflineReport]:
    """
    Cut ``demos`` into chunk transitions of ``horizon`` steps; return a buffer and a report.

    ``demos`` needs ``obs [N, obs_dim]``, ``action [N, act_dim]``, ``episode_ends [E]`` and
    ``success [E]`` (e.g. from ``dsrl_core.sim.demos.load_demos``). The buffer's noise shape is
    ``noise_shape`` (default ``(horizon, act_dim)``, the base policy's), its action shape
    ``(horizon, act_dim)``; ``capacity`` defaults to the number of transitions. With ``buffer``
    the transitions are appended to it instead (its shapes must match).
    """
    if horizon < 1:
        raise ValueError(f'horizon must be >= 1, got {horizon}')
    obs = np.asarray(demos['obs'], dtype=np.float32)
    action = np.asarray(demos['action'], dtype=np.float32)
    ends = np.asarray(demos['episode_ends'], dtype=np.int64)
    success = np.asarray(demos['success'], dtype=bool)
    if obs.ndim != 2 or action.ndim != 2 or len(obs) != len(action):
        raise ValueError(f'obs [N, obs_dim] and action [N, act_dim] must have the same N, got '
                         f'{obs.shape} and {action.shape}')
    if ends.ndim != 1 or ends.size == 0 or ends.shape != success.shape:
        raise ValueError('episode_ends and success must be non-empty [E] arrays of one length')
    if ends[0] <= 0 or np.any(np.diff(ends) <= 0) or ends[-1] != len(obs):
        raise ValueError('episode_ends must be strictly increasing, positive and end at N')
    if not (np.isfinite(obs).all() and np.isfinite(action).all()):
        raise ValueError('obs/action contain non-finite values')
    rows: dict[str, list] = {k: [] for k in ('obs', 'action', 'reward', 'next_obs',
                                             'terminated')}
    report = OfflineReport(episodes=int(ends.size), successful=int(success.sum()),
                           steps=int(len(obs)))
    start = 0
    for end, ok in zip(ends.tolist(), success.tolist()):
        for k in range(start, end, horizon):
            n_exec = min(horizon, end - k)
            last = k + horizon >= end
            if last and not ok:
                report.dropped_tails += 1
                continue
            chunk = action[k:k + n_exec]
            if n_exec < horizon:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], horizon - n_exec, 0)])
            reward = step_reward * n_exec
            if last:  # the success step is the episode's final step
                reward += success_reward - step_reward
            rows['obs'].append(obs[k])
            rows['action'].append(chunk)
            rows['reward'].append(reward)
            rows['next_obs'].append(obs[end - 1] if last else obs[k + horizon])
            rows['terminated'].append(last)
        start = end
    n = len(rows['obs'])
    report.transitions = n
    act_shape = (horizon, action.shape[1])
    if buffer is None:
        buf = ReplayBuffer(obs.shape[1], noise_shape or act_shape, act_shape,
                           capacity or max(n, 1))
    else:
        buf = buffer
        if (buf.obs_dim, buf.action_shape) != (obs.shape[1], act_shape):
            raise ValueError(f'demonstrations of obs_dim {obs.shape[1]} and chunk {act_shape} do '
                             f'not fit a buffer of obs_dim {buf.obs_dim} and chunk '
                             f'{buf.action_shape}')
    if n:
        buf.add_batch(np.stack(rows['obs']), None, np.stack(rows['action']),
                      np.asarray(rows['reward'], np.float32), np.stack(rows['next_obs']),
                      np.asarray(rows['terminated']))
    return buf, report


def load_offline_demos(paths: Sequence[str], obs_dim: int, horizon: int, act_dim: int,
                       step_reward: float = -1.0, success_reward: float = 0.0
                       ) -> tuple[ReplayBuffer, list[str]]:
    """
    Read demonstration files and cut them into one buffer of chunk transitions.

    Every file is validated (``dsrl_core.sim.demos.load_demos``) and must match the base policy's
    ``obs_dim`` and ``act_dim``; ValueError names the file otherwise. Returns the buffer and one
    report line per file.
    """
    from dsrl_core.sim.demos import load_demos
    loaded = []
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f'offline demonstrations: {path} does not exist')
        demos = load_demos(path)  # ValueError naming the file and the problem
        shape = (demos['obs'].shape[1], demos['action'].shape[1])
        if shape != (obs_dim, act_dim):
            raise ValueError(f'offline demonstrations: {path} has obs_dim {shape[0]} and '
                             f'act_dim {shape[1]}; the policy has {obs_dim} and {act_dim}')
        loaded.append((path, demos))
    if not loaded:
        raise ValueError('offline demonstrations: no file given')
    total = sum(int(len(d['obs'])) for _, d in loaded)  # more than the transitions
    buf = ReplayBuffer(obs_dim, (horizon, act_dim), (horizon, act_dim), max(total, 1))
    lines = []
    for path, demos in loaded:
        _, report = demos_to_buffer(demos, horizon, step_reward, success_reward, buffer=buf)
        lines.append(f'{path}: {report}')
    if len(buf) == 0:
        raise ValueError(f'offline demonstrations: {", ".join(paths)} gave no transition')
    return buf, lines
