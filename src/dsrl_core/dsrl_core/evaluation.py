"""
Evaluation of a (steered) base policy on the simulated push task, many episodes in lockstep.

The environments of one evaluation run side by side so that the policy and the noise actor are
called once per chunk for all of them (a batch): that makes 50-episode evaluations cheap on a CPU.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch

from dsrl_core.policy.base import BasePolicy

# noise_fn(obs [n, obs_dim] float32) -> noise [n, T, act_dim] float32
NoiseFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass
class EvalResult:
    """Outcome of :func:`evaluate`."""

    success: np.ndarray       # [episodes] bool
    returns: np.ndarray       # [episodes] float
    lengths: np.ndarray       # [episodes] int, control steps
    frames: list[np.ndarray]  # rendered frames of the first episode (empty unless requested)
    # [episodes] float, the object's distance to the goal centre (m) when the episode ended: a
    # failure just outside the goal radius is a near miss, one far from it a wrong push
    goal_dist: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    @property
    def success_rate(self) -> float:
        """Fraction of successful episodes."""
        return float(np.mean(self.success)) if len(self.success) else 0.0


def gaussian_noise_fn(meta_noise_shape: tuple[int, int], seed: int) -> NoiseFn:
    """Return the plain BC noise: w ~ N(0, I) from a seeded generator."""
    rng = np.random.default_rng(seed)

    def fn(obs: np.ndarray) -> np.ndarray:
        return rng.standard_normal((obs.shape[0], *meta_noise_shape)).astype(np.float32)
    return fn


def zero_noise_fn(meta_noise_shape: tuple[int, int]) -> NoiseFn:
    """Return w = 0, the mode of N(0, I) (where a DSRL actor whose output is ~0 starts)."""
    def fn(obs: np.ndarray) -> np.ndarray:
        return np.zeros((obs.shape[0], *meta_noise_shape), np.float32)
    return fn


def evaluate(policy: BasePolicy, noise_fn: NoiseFn, episodes: int = 50, seed: int = 10_000,
             max_steps: int | None = None, record_first: bool = False,
             render_size: tuple[int, int] = (96, 96)) -> EvalResult:
    """Run ``episodes`` seeded episodes (seeds seed..seed+episodes-1), executing whole chunks."""
    def chunk_fn(obs: np.ndarray) -> np.ndarray:
        noise = torch.from_numpy(np.ascontiguousarray(noise_fn(obs), dtype=np.float32))
        return policy.sample(torch.from_numpy(obs), noise).numpy()
    return evaluate_chunks(chunk_fn, episodes, seed, max_steps, record_first, render_size)


def evaluate_chunks(chunk_fn: Callable[[np.ndarray], np.ndarray], episodes: int = 50,
                    seed: int = 10_000, max_steps: int | None = None, record_first: bool = False,
                    render_size: tuple[int, int] = (96, 96)) -> EvalResult:
    """Like :func:`evaluate` for any ``chunk_fn(obs [n, obs_dim]) -> chunks [n, T, act_dim]``."""
    from dsrl_core.sim.push_env import PushEnv
    kw = {} if max_steps is None else {'max_steps': max_steps}
    envs = [PushEnv(render_size=render_size, **kw) for _ in range(episodes)]
    obs = np.stack([env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]).astype(np.float32)
    done = np.zeros(episodes, dtype=bool)
    success = np.zeros(episodes, dtype=bool)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    goal_dist = np.zeros(episodes)
    frames = [envs[0].render()] if record_first else []
    while not done.all():
        live = np.flatnonzero(~done)
        chunks = chunk_fn(np.ascontiguousarray(obs[live]))
        for j, i in enumerate(live):
            for a in chunks[j]:
                o, r, term, trunc, info = envs[i].step(a)
                obs[i] = o
                returns[i] += r
                lengths[i] += 1
                if record_first and i == 0:
                    frames.append(envs[0].render())
                if term or trunc:
                    done[i] = True
                    success[i] = bool(info.get('success', False))
                    goal_dist[i] = float(info['goal_dist'])
                    break
    for env in envs:
        env.close()
    return EvalResult(success, returns, lengths, frames, goal_dist)


def failure_summary(result: EvalResult, goal_radius: float, first_seed: int = 10_000) -> str:
    """
    Describe the failed episodes of ``result`` in one line.

    Counts the near misses (the object ended within twice the goal radius) and lists each
    failure as ``index (distance)``, index i = seed ``first_seed + i``.
    """
    failed = np.flatnonzero(~result.success)
    if failed.size == 0:
        return 'no failed episode'
    near = int((result.goal_dist[failed] <= 2 * goal_radius).sum())
    each = ', '.join(f'{i} ({result.goal_dist[i]:.3f} m)' for i in failed)
    return (f'{failed.size} failed ({near} near misses, ending within {2 * goal_radius:.2f} m of '
            f'the goal; index i = seed {first_seed} + i): {each}')


def save_strip(frames: list[np.ndarray], path: str, every: int = 3, per_row: int = 10) -> None:
    """Tile every ``every``-th frame of an episode into one PNG (rows of ``per_row``)."""
    import cv2
    picked = frames[::every] + ([frames[-1]] if (len(frames) - 1) % every else [])
    h, w, _ = picked[0].shape
    rows = (len(picked) + per_row - 1) // per_row
    canvas = np.full((rows * (h + 2), min(per_row, len(picked)) * (w + 2), 3), 255, np.uint8)
    for k, f in enumerate(picked):
        r, c = divmod(k, per_row)
        canvas[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = f
    cv2.imwrite(path, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
