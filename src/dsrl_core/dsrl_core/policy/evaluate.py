"""
Success rate of the plain BC policy (random noise) on the simulated push task.

python -m dsrl_core.policy.evaluate [--checkpoint DIR] [--episodes 100] [--seed 10000]
[--strip episode.png]
"""

from __future__ import annotations

import argparse
import time

import torch

from dsrl_core.evaluation import evaluate, gaussian_noise_fn, save_strip
from dsrl_core.policy import default_checkpoint
from dsrl_core.policy.diffusion import DiffusionPolicy


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--checkpoint', default=str(default_checkpoint()))
    p.add_argument('--episodes', type=int, default=100)
    p.add_argument('--seed', type=int, default=10_000, help='first episode seed')
    p.add_argument('--noise-seed', type=int, default=0, help='seed of the N(0, I) noise')
    p.add_argument('--ddim-steps', type=int, default=None, help='override the checkpoint value')
    p.add_argument('--strip', default=None, help='write a PNG strip of the first episode')
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    policy = DiffusionPolicy.load(a.checkpoint, ddim_steps=a.ddim_steps)
    t0 = time.time()
    res = evaluate(policy, gaussian_noise_fn(policy.meta.noise_shape, a.noise_seed),
                   episodes=a.episodes, seed=a.seed, record_first=bool(a.strip))
    print(f'{a.checkpoint}: success {res.success.sum()}/{a.episodes} = {res.success_rate:.2f}, '
          f'mean length {res.lengths.mean():.1f} steps, mean return {res.returns.mean():.1f} '
          f'({time.time() - t0:.1f} s)')
    if a.strip:
        save_strip(res.frames, a.strip)
        print(f'wrote {a.strip}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
