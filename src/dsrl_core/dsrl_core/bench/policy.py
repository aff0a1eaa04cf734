"""
Benchmark of the frozen base policy and the simulator (prints figures, asserts nothing).

    python -m dsrl_core.bench.policy [--checkpoint DIR] [--threads 1]

Prints sample() latency at batch 1 and 256 at the checkpoint's DDIM steps, the physical limit
(one network forward x number of DDIM steps, with no Python around it), and the simulator's cost
per control step with and without rendering the camera.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dsrl_core.policy import default_checkpoint
from dsrl_core.policy.diffusion import DiffusionPolicy


def time_ms(fn, repeats: int) -> np.ndarray:
    """Call ``fn`` once to warm up, then ``repeats`` times; return each call's milliseconds."""
    fn()  # warm-up
    out = np.empty(repeats)
    for i in range(repeats):
        t = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t
    return out * 1e3


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument('--checkpoint', default=str(default_checkpoint()))
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--repeats', type=int, default=200)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    pol = DiffusionPolicy.load(a.checkpoint)
    m, steps = pol.meta, pol.cfg.ddim_steps
    print(f'policy: {sum(x.numel() for x in pol.parameters())} parameters, T={m.horizon}, '
          f'act_dim={m.act_dim}, DDIM steps={steps}, torch threads={a.threads}')
    for b in (1, 256):
        obs, noise = torch.randn(b, m.obs_dim), torch.randn(b, *m.noise_shape)
        reps = a.repeats if b == 1 else max(10, a.repeats // 10)
        ms = time_ms(lambda: pol.sample(obs, noise), reps)
        x = torch.randn(b, pol.chunk_dim)
        t = torch.zeros(b, dtype=torch.long)
        with torch.no_grad():
            cond = pol.normalize_obs(obs)
            fwd = time_ms(lambda: pol.net(x, t, cond), reps)
        limit = np.median(fwd) * steps
        print(f'  batch {b:4d}: sample() p50 {np.median(ms):7.3f} ms  p99 '
              f'{np.percentile(ms, 99):7.3f} ms | one forward {np.median(fwd):.3f} ms x {steps} '
              f'steps = {limit:.3f} ms physical limit | overhead {np.median(ms) / limit:.2f}x')
    from dsrl_core.sim.push_env import PushEnv
    env = PushEnv()
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    lim = env.joint_limits

    def step() -> None:
        _, _, term, trunc, _ = env.step(rng.uniform(lim[:, 0], lim[:, 1]) * 0.3)
        if term or trunc:
            env.reset()
    st = time_ms(step, 500)
    rd = time_ms(env.render, 200)
    print(f'sim: step (0.1 s of physics) p50 {np.median(st):.3f} ms | render '
          f'{env.render().shape[1]}x{env.render().shape[0]} p50 {np.median(rd):.3f} ms | '
          f'step + render {np.median(st) + np.median(rd):.3f} ms per control step '
          f'({(np.median(st) + np.median(rd)) / 100:.4f} of a 100 ms period)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
