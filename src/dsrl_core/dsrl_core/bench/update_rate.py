"""
Learner update rate on this machine (prints figures, asserts nothing).

    python -m dsrl_core.bench.update_rate [--algorithm dsrl_na] [--device cpu|cuda]
        [--hidden 128 128 128 [--hidden 1024 1024 1024 ...]] [--seconds 10] [--threads 1]

Times ``update()`` of DSRL-NA (or DSRL-SAC) with the steering benchmark's settings on a fixed
batch of 256 transitions of the shipped policy, for each network width asked for, after a few
warm-up updates; on a GPU it synchronises before reading the clock. Use it to choose ``device``,
``hidden`` and ``utd_ratio`` for a learner machine. It is an upper bound for the live learner,
which shares its machine with transition intake, checkpoints and (in simulation) the other nodes:
in the lockstep graph on a 2-core CPU it did 16-18 updates/s where this bench does 23-25.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from dsrl_core.bench.steering import BenchConfig, make_agent
from dsrl_core.params import ParamError
from dsrl_core.policy import default_checkpoint
from dsrl_core.policy.diffusion import DiffusionPolicy
from dsrl_core.rl.learner_params import check_device


def fixed_batch(policy: DiffusionPolicy, batch_size: int = 256, seed: int = 0) -> dict:
    """Transitions whose observations follow the policy's demonstration statistics."""
    gen = torch.Generator().manual_seed(seed)
    meta = policy.meta
    mean, std = policy.obs_mean.cpu(), policy.obs_std.cpu()
    obs = mean + std * torch.randn(batch_size, meta.obs_dim, generator=gen)
    next_obs = mean + std * torch.randn(batch_size, meta.obs_dim, generator=gen)
    noise = torch.randn((batch_size,) + meta.noise_shape, generator=gen)
    return {'obs': obs.numpy(), 'next_obs': next_obs.numpy(), 'noise': noise.numpy(),
            'action': policy.sample(obs, noise).numpy(),
            'reward': -np.ones(batch_size, np.float32),
            'terminated': np.zeros(batch_size, np.float32)}


def updates_per_second(algorithm: str, policy: DiffusionPolicy, cfg: BenchConfig,
                       seconds: float, warmup: int = 5) -> tuple[float, int]:
    """Return (updates/s, updates timed) of ``algorithm`` with ``cfg`` on a fixed batch."""
    agent = make_agent(algorithm, policy, cfg, seed=0)
    agent.set_obs_normalizer(policy.obs_mean, policy.obs_std)
    batch = fixed_batch(policy, cfg.batch_size)
    cuda = torch.device(cfg.device).type == 'cuda'
    for _ in range(warmup):
        agent.update(batch)
    if cuda:
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < seconds:
        agent.update(batch)
        n += 1
    if cuda:
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0), n


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--checkpoint', default=str(default_checkpoint()))
    p.add_argument('--algorithm', choices=('dsrl_na', 'dsrl_sac'), default='dsrl_na')
    p.add_argument('--device', default='cpu', help="torch device ('cpu', 'cuda', 'cuda:1')")
    p.add_argument('--hidden', type=int, nargs='+', action='append',
                   help='hidden widths of actor and critics; repeat the flag for several '
                        '(default: the benchmark default)')
    p.add_argument('--seconds', type=float, default=10.0, help='timed seconds per width')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads')
    p.add_argument('--batch-size', type=int, default=BenchConfig.batch_size)
    a = p.parse_args(argv)
    if a.seconds <= 0 or a.threads < 1 or a.batch_size < 1:
        p.error('--seconds, --threads and --batch-size must be positive')
    try:
        check_device(a.device)
    except ParamError as exc:
        p.error(str(exc))
    torch.set_num_threads(a.threads)
    policy = DiffusionPolicy.load(a.checkpoint).to(a.device)
    where = (torch.cuda.get_device_name(torch.device(a.device))
             if torch.device(a.device).type == 'cuda' else f'CPU, {a.threads} torch thread(s)')
    print(f'{a.algorithm} update(), batch {a.batch_size}, on {where}:')
    for hidden in a.hidden or [list(BenchConfig.hidden)]:
        cfg = dataclasses.replace(BenchConfig(), hidden=tuple(hidden), device=a.device,
                                  batch_size=a.batch_size)
        rate, n = updates_per_second(a.algorithm, policy, cfg, a.seconds)
        print(f'  hidden {" x ".join(map(str, hidden)):>18}: {rate:7.1f} updates/s '
              f'({n} timed)', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
