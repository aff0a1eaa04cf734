"""
Peer check: our SAC code on gymnasium ``Pendulum-v1``.

Plain action-space SAC from :mod:`dsrl_core.rl.sac` and the replay buffer of
:mod:`dsrl_core.rl.buffer`, networks sized for a 2-core CPU. A correct SAC reaches a mean return of
about -200 or better (random: about -1200) within 20k environment steps::

    python -m dsrl_core.bench.pendulum --steps 20000 --seed 0
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch

from dsrl_core.rl.buffer import ReplayBuffer
from dsrl_core.rl.sac import SAC, SACConfig

ENV_ID = 'Pendulum-v1'


def pendulum_config(seed: int = 0, hidden: Sequence[int] = (256, 256), batch_size: int = 256,
                    utd_ratio: int = 1) -> SACConfig:
    """SAC settings for Pendulum on a 2-core CPU (actions in [-2, 2])."""
    return SACConfig(hidden=tuple(hidden), batch_size=batch_size, utd_ratio=utd_ratio,
                     target_entropy=-1.0, action_magnitude=2.0, init_alpha=1.0, seed=seed)


def evaluate(agent: SAC, episodes: int, seed: int) -> tuple[float, float]:
    """Return mean and std of the undiscounted return of deterministic episodes."""
    env = gym.make(ENV_ID)
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic=True))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns)), float(np.std(returns))


def run(steps: int = 20000, seed: int = 0, warmup: int = 1000, eval_every: int = 5000,
        eval_episodes: int = 10, config: SACConfig | None = None,
        log: bool = True) -> dict[str, Any]:
    """Train SAC for ``steps`` environment steps; return the evaluation history and timings."""
    cfg = config if config is not None else pendulum_config(seed)
    env = gym.make(ENV_ID)
    obs_dim = env.observation_space.shape[0]
    act_dim = env.action_space.shape[0]
    agent = SAC(obs_dim, act_dim, cfg)
    buffer = ReplayBuffer(obs_dim, (act_dim,), (act_dim,), capacity=max(steps, 1))
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    history: list[tuple[int, float, float]] = []
    n_updates, update_time = 0, 0.0
    start = time.perf_counter()
    for step in range(1, steps + 1):
        if step <= warmup:
            action = env.action_space.sample()
        else:
            action = agent.act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, action, float(reward), next_obs, terminated, truncated)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
        if step > warmup:
            t = time.perf_counter()
            for _ in range(cfg.utd_ratio):
                stats = agent.update(buffer.sample(cfg.batch_size, rng))
            update_time += time.perf_counter() - t
            n_updates += cfg.utd_ratio
        if step % eval_every == 0 or step == steps:
            mean, std = evaluate(agent, eval_episodes, seed=10_000 + seed)
            history.append((step, mean, std))
            if log:
                extra = (f' alpha {stats["alpha"]:.3f} q_mean {stats["q_mean"]:.1f}'
                         if n_updates else '')
                print(f'step {step:6d}: eval return {mean:8.1f} +- {std:6.1f} '
                      f'({n_updates / max(update_time, 1e-9):.1f} updates/s{extra})',
                      flush=True)
    env.close()
    wall = time.perf_counter() - start
    return {'history': history, 'final_mean_return': history[-1][1], 'updates': n_updates,
            'updates_per_s': n_updates / max(update_time, 1e-9), 'wall_s': wall}


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=20000, help='environment steps')
    parser.add_argument('--seed', type=int, default=0, help='seed of env, networks and sampling')
    parser.add_argument('--warmup', type=int, default=1000, help='random-action steps first')
    parser.add_argument('--eval-every', type=int, default=5000, help='steps between evaluations')
    parser.add_argument('--eval-episodes', type=int, default=10, help='episodes per evaluation')
    parser.add_argument('--utd', type=int, default=1, help='updates per environment step')
    parser.add_argument('--batch-size', type=int, default=256, help='transitions per update')
    parser.add_argument('--hidden', type=int, nargs='+', default=[256, 256],
                        help='hidden widths of actor and critics')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = pendulum_config(args.seed, args.hidden, args.batch_size, args.utd)
    result = run(args.steps, args.seed, args.warmup, args.eval_every, args.eval_episodes, cfg)
    print(f'final mean return over {args.eval_episodes} episodes after {args.steps} steps: '
          f'{result["final_mean_return"]:.1f}; {result["updates"]} updates at '
          f'{result["updates_per_s"]:.1f} updates/s; wall {result["wall_s"]:.0f} s')


if __name__ == '__main__':
    main()
