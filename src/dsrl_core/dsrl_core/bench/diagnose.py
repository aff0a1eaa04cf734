"""
Diagnostics of steerability: how much the noise matters, and how learnable it is from few episodes.

python -m dsrl_core.bench.diagnose [--starts 12] [--candidates 8] [--repeats 12] [--episodes 100]
                                  [--draws 24] [--eval-starts 50]

Three measurements on the simulated push task with the shipped (frozen) BC checkpoint:

1. **First-chunk leverage.** From each of ``--starts`` evaluation start states, execute the first
   chunk from each of ``--candidates`` noise vectors w_k ~ N(0, I), then continue with the plain
   BC policy (fresh N(0, I) noise per chunk) to the end of the episode, ``--repeats`` times.
   Prints the success probability per candidate, its mean (= BC), the mean of the best
   candidate per start, and the mean spread (best - worst): how much one chunk's noise decides.
2. **Learnability of that choice.** Collect ``--episodes`` BC episodes; fit a small classifier
   ensemble success ~ (first observation, first chunk's *noise*) and another on (first
   observation, first *executed chunk*); then run 50 fixed-seed evaluation episodes in which the
   first chunk is the best of 64 noise candidates by each classifier and the rest is plain BC.
   If the action-space classifier beats BC and the noise-space one does not, a critic over the
   noise needs (much) more data than one over actions for the same decision.
3. **How hard each evaluation start is.** Run BC (w ~ N(0, I)) ``--draws`` times from each of the
   ``--eval-starts`` starts the steering benchmark evaluates on (reset seeds 10000 + i) and print
   every start's success rate: the hardest starts, and whether any start is never solved (then
   100 % is out of reach for any noise actor that only steers this base policy). The steering
   benchmark lists the starts its actors fail, by the same index.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.nn import functional as F

from dsrl_core.evaluation import evaluate, evaluate_chunks, gaussian_noise_fn
from dsrl_core.policy import default_checkpoint
from dsrl_core.policy.diffusion import DiffusionPolicy
from dsrl_core.rl.networks import CriticEnsemble
from dsrl_core.sim.push_env import PushEnv

EVAL_SEED = 10_000
TRAIN_SEED = 1_000_000


def _to_unit(chunks: torch.Tensor, policy: DiffusionPolicy) -> torch.Tensor:
    low = torch.tensor(policy.meta.action_low, dtype=torch.float32)
    high = torch.tensor(policy.meta.action_high, dtype=torch.float32)
    return ((chunks - low) / (high - low) * 2 - 1).reshape(len(chunks), -1)


def first_chunk_leverage(policy: DiffusionPolicy, starts: int, candidates: int, repeats: int,
                         seed: int = 0) -> np.ndarray:
    """Return success probabilities ``[starts, candidates]`` (first chunk from w_k, then BC)."""
    meta = policy.meta
    rng = np.random.default_rng(seed)
    out = np.zeros((starts, candidates))
    for s in range(starts):
        probe = PushEnv()
        obs0, _ = probe.reset(seed=EVAL_SEED + s)
        state = probe.get_state()
        cands = rng.standard_normal((candidates, *meta.noise_shape)).astype(np.float32)
        n = candidates * repeats
        envs = [PushEnv() for _ in range(n)]
        for e in envs:
            e.reset(seed=EVAL_SEED + s)
            e.set_state(state)
        obs = np.repeat(obs0[None].astype(np.float32), n, 0)
        done, success = np.zeros(n, bool), np.zeros(n, bool)
        first = True
        while not done.all():
            live = np.flatnonzero(~done)
            w = (np.repeat(cands, repeats, 0)[live] if first else
                 rng.standard_normal((len(live), *meta.noise_shape)).astype(np.float32))
            first = False
            chunks = policy.sample(torch.from_numpy(obs[live]), torch.from_numpy(w)).numpy()
            for j, i in enumerate(live):
                for a in chunks[j]:
                    o, _, term, trunc, info = envs[i].step(a)
                    obs[i] = o
                    if term or trunc:
                        done[i], success[i] = True, bool(info['success'])
                        break
        out[s] = success.reshape(candidates, repeats).mean(1)
    return out


def collect_first_chunks(policy: DiffusionPolicy, episodes: int, seed: int = 0) -> dict:
    """Run BC episodes; return first obs, first noise, first unit chunk and success per episode."""
    meta = policy.meta
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {'obs': [], 'noise': [], 'action': [], 'success': []}
    env = PushEnv()
    for ep in range(episodes):
        obs, _ = env.reset(seed=TRAIN_SEED + ep)
        done, first, info = False, True, {}
        while not done:
            o = torch.from_numpy(obs[None].astype(np.float32))
            w = torch.from_numpy(rng.standard_normal((1, *meta.noise_shape)).astype(np.float32))
            chunk = policy.sample(o, w)
            if first:
                rows['obs'].append(o[0])
                rows['noise'].append(w.reshape(-1))
                rows['action'].append(_to_unit(chunk, policy)[0])
                first = False
            for a in chunk[0].numpy():
                obs, _, term, trunc, info = env.step(a)
                if term or trunc:
                    break
            done = term or trunc
        rows['success'].append(torch.tensor(float(info['success'])))
    return {k: torch.stack(v) for k, v in rows.items()}


def fit_classifier(policy: DiffusionPolicy, obs: torch.Tensor, feature: torch.Tensor,
                   success: torch.Tensor, steps: int = 2000, seed: int = 0) -> CriticEnsemble:
    """Fit an ensemble of 5 small MLPs: logit P(success | obs, feature)."""
    torch.manual_seed(seed)
    net = CriticEnsemble(obs.shape[1], feature.shape[1], 5, (64, 64))
    net.obs_norm.set(policy.obs_mean, policy.obs_std)
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    for _ in range(steps):
        idx = torch.randint(len(obs), (64,))
        loss = F.binary_cross_entropy_with_logits(net(obs[idx], feature[idx]),
                                                  success[idx].expand(5, -1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def steered_first_chunk_success(policy: DiffusionPolicy, net: CriticEnsemble, feature: str,
                                episodes: int = 50, candidates: int = 64) -> float:
    """Success rate when the first chunk is the classifier's best of ``candidates`` noises."""
    meta = policy.meta
    gen = torch.Generator().manual_seed(1)
    first = {'done': False}

    def chunk_fn(obs: np.ndarray) -> np.ndarray:
        b, o = obs.shape[0], torch.from_numpy(obs)
        if first['done']:
            return policy.sample(o, torch.randn((b, *meta.noise_shape), generator=gen)).numpy()
        first['done'] = True
        cand = torch.randn((b * candidates, *meta.noise_shape), generator=gen)
        ob = o.repeat_interleave(candidates, 0)
        chunks = policy.sample(ob, cand)
        feat = cand.reshape(len(cand), -1) if feature == 'noise' else _to_unit(chunks, policy)
        with torch.no_grad():
            score = net(ob, feat).mean(0).reshape(b, candidates)
        best = score.argmax(1)
        return chunks.reshape(b, candidates, *meta.noise_shape)[torch.arange(b), best].numpy()
    return evaluate_chunks(chunk_fn, episodes, EVAL_SEED).success_rate


def start_difficulty(policy: DiffusionPolicy, draws: int, starts: int = 50) -> np.ndarray:
    """Return BC success ``[draws, starts]`` from the evaluation starts, one noise stream a row."""
    return np.stack([evaluate(policy, gaussian_noise_fn(policy.meta.noise_shape, 1000 + k),
                              episodes=starts, seed=EVAL_SEED).success for k in range(draws)])


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--checkpoint', default=str(default_checkpoint()))
    p.add_argument('--starts', type=int, default=12)
    p.add_argument('--candidates', type=int, default=8)
    p.add_argument('--repeats', type=int, default=12)
    p.add_argument('--episodes', type=int, default=100, help='BC episodes for the classifiers')
    p.add_argument('--draws', type=int, default=24,
                   help='[3] BC runs per evaluation start (0 = skip [3])')
    p.add_argument('--eval-starts', type=int, default=50,
                   help='[3] evaluation starts (the steering benchmark uses 50)')
    p.add_argument('--threads', type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    policy = DiffusionPolicy.load(a.checkpoint)
    t0 = time.time()
    lev = first_chunk_leverage(policy, a.starts, a.candidates, a.repeats)
    for s, row in enumerate(lev):
        print(f'start {s:2d}: success per first-chunk noise ' + ' '.join(f'{v:.2f}' for v in row))
    print(f'[1] first-chunk leverage over {a.starts} starts: BC {lev.mean():.2f}, best of '
          f'{a.candidates} first chunks {lev.max(1).mean():.2f}, mean spread '
          f'{(lev.max(1) - lev.min(1)).mean():.2f} ({time.time() - t0:.0f} s)', flush=True)
    t0 = time.time()
    data = collect_first_chunks(policy, a.episodes)
    for feature in ('noise', 'action'):
        net = fit_classifier(policy, data['obs'], data[feature], data['success'])
        rate = steered_first_chunk_success(policy, net, feature)
        print(f'[2] {a.episodes} BC episodes (success {data["success"].mean():.2f}); first chunk '
              f'= best of 64 by a classifier on ({feature}), then BC: success {rate:.2f} on 50 '
              f'fixed-seed episodes', flush=True)
    print(f'({time.time() - t0:.0f} s)')
    if a.draws > 0:
        t0 = time.time()
        rate = start_difficulty(policy, a.draws, a.eval_starts).mean(0)
        print('[3] BC success per evaluation start (index i = reset seed '
              f'{EVAL_SEED} + i, {a.draws} noise draws each):')
        print('  ' + ' '.join(f'{i}:{v:.2f}' for i, v in enumerate(rate)))
        hardest = np.argsort(rate, kind='stable')[:5]
        print(f'  mean {rate.mean():.2f}; hardest ' + ', '.join(
            f'{i} ({rate[i]:.2f})' for i in hardest) + f'; never solved: '
            f'{int((rate == 0).sum())} of {a.eval_starts} ({time.time() - t0:.0f} s)', flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
