"""
Success rate of the BC policy on the simulated push task: random noise, or steered by a learner.

python -m dsrl_core.policy.evaluate [--checkpoint DIR] [--episodes 100] [--seed 10000]
[--strip episode.png] [--learner-checkpoint DIR]

Without ``--learner-checkpoint`` the noise is N(0, I) (the BC baseline). With it, the noise comes
from the deterministic noise actor of the newest learner checkpoint in DIR (a learner's
``checkpoint_dir``, or one ``ckpt-*`` folder): the "after" figure of a DSRL run.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np
import torch

from dsrl_core.evaluation import evaluate, failure_summary, gaussian_noise_fn, save_strip
from dsrl_core.policy import default_checkpoint
from dsrl_core.policy.base import PolicyMeta
from dsrl_core.policy.diffusion import DiffusionPolicy
from dsrl_core.sim.push_env import GOAL_RADIUS


def learner_noise_fn(path: str, meta: PolicyMeta) -> tuple[Callable, str]:
    """
    Return (noise_fn, description) of the deterministic actor in a learner checkpoint.

    ``path`` is a checkpoint folder or a learner checkpoint_dir (its newest checkpoint is used).
    Raises FileNotFoundError / ValueError (CheckpointError) with the path when it cannot be used.
    """
    from dsrl_core.rl import checkpoint as ck
    from dsrl_core.rl.networks import TanhGaussianActor
    if not os.path.isdir(path):
        raise FileNotFoundError(f'no learner checkpoint folder {path}')
    chosen = path if os.path.isfile(os.path.join(path, 'algorithm.json')) else \
        ck.latest_checkpoint(path)
    if chosen is None:
        raise FileNotFoundError(f'no learner checkpoint in {path}')
    state = ck.load_state(chosen)
    cfg = state['config']
    if (state['obs_dim'], state['act_dim']) != (meta.obs_dim, meta.noise_dim):
        raise ValueError(f'{chosen}: actor for obs/noise dims {state["obs_dim"]}/'
                         f'{state["act_dim"]}, the policy needs {meta.obs_dim}/{meta.noise_dim}')
    actor = TanhGaussianActor(meta.obs_dim, meta.noise_dim, cfg['hidden'],
                              cfg['action_magnitude'], cfg['log_std_min'], cfg['log_std_max'],
                              cfg['layer_norm'])
    actor.load_state_dict(state['actor'])
    actor.eval()

    def fn(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            w, _ = actor(torch.from_numpy(obs), deterministic=True, with_log_prob=False)
        return w.numpy().reshape(-1, *meta.noise_shape)
    return fn, (f'the deterministic {state["algorithm"]} actor of {chosen} '
                f'({state["num_updates"]} updates)')


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
    p.add_argument('--learner-checkpoint', default=None,
                   help='steer with the deterministic actor of this learner checkpoint (folder)')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    policy = DiffusionPolicy.load(a.checkpoint, ddim_steps=a.ddim_steps)
    t0 = time.time()
    noise_fn = gaussian_noise_fn(policy.meta.noise_shape, a.noise_seed)
    what = 'noise N(0, I)'
    if a.learner_checkpoint:
        try:
            noise_fn, what = learner_noise_fn(a.learner_checkpoint, policy.meta)
        except (FileNotFoundError, ValueError) as exc:
            print(f'evaluate: {exc}')
            return 2
    res = evaluate(policy, noise_fn, episodes=a.episodes, seed=a.seed,
                   record_first=bool(a.strip))
    print(f'{a.checkpoint} with {what}: success {res.success.sum()}/{a.episodes} = '
          f'{res.success_rate:.2f}, '
          f'mean length {res.lengths.mean():.1f} steps, mean return {res.returns.mean():.1f} '
          f'({time.time() - t0:.1f} s)')
    print(f'failures: {failure_summary(res, GOAL_RADIUS, a.seed)}')
    if a.strip:
        save_strip(res.frames, a.strip)
        print(f'wrote {a.strip}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
