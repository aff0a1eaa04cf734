"""
Reproduce the shipped BC checkpoint (``dsrl_core/assets/push_bc``) and its golden actions.

python -m dsrl_core.policy.make_default [--out DIR]

Steps: 8 scripted demonstrations (seed 0) plus 8 recovery demonstrations (recovery seed 3) ->
BC training with the CLI defaults (3000 steps, hidden 128, seed 0) on one torch thread ->
``golden.npz``: 16 observations from seeded task resets and 16 noises with the actions the
checkpoint produced for them, which the tests compare against.

Why so few demonstrations: with 50 the BC policy already succeeds ~96 % of the time and leaves
nothing to steer; with these 16 it succeeds ~55 % with random noise while some noise still solves
almost every start, the regime DSRL is for (compare the paper's 10-demo real-robot policy).

Why recovery demonstrations: they start with the puck at rest just outside the goal, where a
push that stopped short leaves it, and show the pusher fetching it in, as a teleoperator corrects
a short push. Without them (the checkpoint shipped until session 9: 8 demonstrations, ~60 %) BC
has never seen a stopped puck fetched, so a near miss is final whatever noise follows, and DSRL
plateaued at ~0.9 (docs/benchmarks/README.md, sessions 8 and 9).
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile

import numpy as np
import torch

from dsrl_core.policy import default_checkpoint
from dsrl_core.policy.diffusion import DiffusionPolicy
from dsrl_core.policy.train_bc import main as train_main
from dsrl_core.sim.demos import collect_demos, save_demos
from dsrl_core.sim.push_env import PushEnv

N_DEMOS = 8
DEMO_SEED = 0
N_RECOVERY = 8
RECOVERY_SEED = 3


def write_golden(directory: pathlib.Path, n: int = 16, seed: int = 123) -> None:
    """Store obs, noise and the checkpoint's actions for them (the golden outputs)."""
    policy = DiffusionPolicy.load(directory)
    env = PushEnv()
    obs = np.stack([env.reset(seed=seed + i)[0] for i in range(n)]).astype(np.float32)
    noise = np.random.default_rng(seed).standard_normal((n, *policy.meta.noise_shape))
    noise = noise.astype(np.float32)
    actions = policy.sample(torch.from_numpy(obs), torch.from_numpy(noise)).numpy()
    np.savez(directory / 'golden.npz', obs=obs, noise=noise, actions=actions)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--out', default=str(default_checkpoint()))
    a = p.parse_args(argv)
    out = pathlib.Path(a.out)
    with tempfile.TemporaryDirectory() as tmp:
        demos = pathlib.Path(tmp) / 'demos.npz'
        save_demos(collect_demos(n=N_DEMOS, seed=DEMO_SEED, recovery=N_RECOVERY,
                                 recovery_seed=RECOVERY_SEED), str(demos))
        # One thread: the same weights on any machine (reductions split over threads differ).
        train_main(['--demos', str(demos), '--out', str(out), '--threads', '1', '--logdir', str(
            pathlib.Path(tmp) / 'tb')])
    write_golden(out)
    print(f'wrote {out} (config.json, model.safetensors, golden.npz)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
