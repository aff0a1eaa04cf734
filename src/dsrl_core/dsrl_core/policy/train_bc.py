"""
Behaviour cloning: train the diffusion policy from demonstrations.

    python -m dsrl_core.policy.train_bc --demos demos.npz --out DIR [--steps N] [--seed S]

Reads the demonstration format of :mod:`dsrl_core.sim.demos` (flat ``obs``/``action`` arrays and
``episode_ends``), builds (obs_t, a_t..a_{t+T-1}) pairs (the chunk is padded with the episode's
last action), fits the normaliser, trains with the DDPM loss (AdamW, one-cycle learning rate, EMA
of the weights), logs TensorBoard scalars and writes the EMA weights as a checkpoint directory.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import time

import numpy as np
import torch
from tqdm import tqdm

from dsrl_core.policy.base import PolicyMeta
from dsrl_core.policy.diffusion import DiffusionConfig, DiffusionPolicy


def make_chunks(obs: np.ndarray, action: np.ndarray, episode_ends: np.ndarray,
                horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair each observation with the next ``horizon`` actions of its episode (edge-padded)."""
    if obs.shape[0] != action.shape[0] or episode_ends[-1] != obs.shape[0]:
        raise ValueError('obs/action lengths and episode_ends disagree')
    starts = np.concatenate([[0], episode_ends[:-1]])
    chunks = np.empty((obs.shape[0], horizon, action.shape[1]), dtype=np.float32)
    for s, e in zip(starts, episode_ends):
        for i in range(s, e):
            idx = np.minimum(np.arange(i, i + horizon), e - 1)
            chunks[i] = action[idx]
    return obs.astype(np.float32), chunks


def train_bc(demos: dict, meta: PolicyMeta, cfg: DiffusionConfig, steps: int = 3000,
             batch_size: int = 256, lr: float = 1e-3, ema_decay: float = 0.995, seed: int = 0,
             logdir: str | None = None, progress: bool = True) -> DiffusionPolicy:
    """Train a :class:`DiffusionPolicy` on ``demos``; returns the EMA policy, frozen."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    obs, chunks = make_chunks(demos['obs'], demos['action'], demos['episode_ends'], meta.horizon)
    obs_t, act_t = torch.from_numpy(obs), torch.from_numpy(chunks)
    policy = DiffusionPolicy(meta, cfg)
    policy.fit_normalizer(obs_t, torch.from_numpy(demos['action'].astype(np.float32)))
    ema = copy.deepcopy(policy)
    opt = torch.optim.AdamW(policy.net.parameters(), lr=lr, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    writer = None
    if logdir:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(logdir)
    n = obs_t.shape[0]
    t0 = time.time()
    bar = tqdm(range(steps), desc='bc', disable=not progress, mininterval=1.0)
    running = None
    for step in bar:
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        loss = policy.loss(obs_t[idx], act_t[idx], generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(ema_decay, (1 + step) / (10 + step))
            for pe, p in zip(ema.net.parameters(), policy.net.parameters()):
                pe.lerp_(p, 1 - decay)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0:
            bar.set_postfix(loss=f'{running:.4f}')
            if writer:
                writer.add_scalar('bc/loss', running, step)
                writer.add_scalar('bc/lr', sched.get_last_lr()[0], step)
    if writer:
        writer.add_scalar('bc/train_seconds', time.time() - t0, steps)
        writer.close()
    return ema.freeze()


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    from dsrl_core.sim.demos import load_demos
    from dsrl_core.sim.push_env import CONTROL_HZ, JOINT_LIMITS, JOINT_NAMES, OBS_NAMES

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--demos', required=True, help='demonstrations .npz (dsrl_core.sim.demos)')
    p.add_argument('--out', required=True, help='checkpoint directory to write')
    p.add_argument('--steps', type=int, default=3000, help='gradient steps')
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--horizon', type=int, default=4, help='chunk length T')
    p.add_argument('--hidden', type=int, default=128)
    p.add_argument('--blocks', type=int, default=3)
    p.add_argument('--train-steps', type=int, default=20, help='DDPM schedule length')
    p.add_argument('--ddim-steps', type=int, default=8, help='DDIM steps used by sample()')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    p.add_argument('--logdir', default=None, help='TensorBoard directory (default OUT/tb)')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    demos = load_demos(a.demos)
    meta = PolicyMeta(obs_dim=len(OBS_NAMES), act_dim=len(JOINT_NAMES), horizon=a.horizon,
                      action_low=tuple(float(x) for x in JOINT_LIMITS[:, 0]),
                      action_high=tuple(float(x) for x in JOINT_LIMITS[:, 1]),
                      control_hz=CONTROL_HZ, obs_names=tuple(OBS_NAMES),
                      action_names=tuple(JOINT_NAMES))
    cfg = DiffusionConfig(hidden=a.hidden, n_blocks=a.blocks, train_steps=a.train_steps,
                          ddim_steps=a.ddim_steps)
    out = pathlib.Path(a.out)
    t0 = time.time()
    policy = train_bc(demos, meta, cfg, steps=a.steps, batch_size=a.batch_size, lr=a.lr,
                      seed=a.seed, logdir=a.logdir or str(out / 'tb'))
    extra = {'demos': str(a.demos), 'episodes': int(len(demos['episode_ends'])),
             'samples': int(demos['obs'].shape[0]), 'steps': a.steps, 'seed': a.seed,
             'train_seconds': round(time.time() - t0, 1), 'command': 'train_bc ' + json.dumps(
                 vars(a))}
    policy.save(out, extra=extra)
    print(f'wrote {out} ({extra["train_seconds"]} s, {extra["samples"]} samples from '
          f'{extra["episodes"]} episodes)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
