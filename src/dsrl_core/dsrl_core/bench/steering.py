"""
Run the steering benchmark: does DSRL make the shipped BC diffusion policy succeed more often.

python -m dsrl_core.bench.steering [--episodes 100] [--seeds 0] [--methods ...] [--out DIR]

On the simulated push task with the shipped (frozen) BC checkpoint, each learning method runs
online for ``--episodes`` episodes and is evaluated every ``--eval-every`` episodes on the same
``--eval-episodes`` fixed-seed episodes with its deterministic actor:

* ``bc``: the base policy with w ~ N(0, I) (what it does without RL; evaluated once), and
  with w = 0, the noise's mode, where an untrained DSRL actor starts (printed below the table);
* ``dsrl_sac``: SAC in the latent-noise MDP (action = the flattened initial noise);
* ``dsrl_na``: DSRL with noise aliasing (action critic distilled into a noise critic);
* ``sac_action``: the non-DSRL baseline, the same SAC code acting directly on the action chunk
  (normalised to [-1, 1] over the joint limits), warm-started with the same BC rollouts.

Every method starts with ``--warmup`` episodes of the base policy with w ~ N(0, I) (for the
baseline, their executed chunks are its warm-up actions), then does ``--utd`` gradient updates per
collected chunk transition. Prints a table (episodes -> success rate), writes ``results.json``,
``results.csv`` and ``steering.png`` (success vs episodes) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import pathlib
import time

import numpy as np
import torch
from tqdm import tqdm

from dsrl_core.evaluation import evaluate, evaluate_chunks, gaussian_noise_fn, zero_noise_fn
from dsrl_core.params import ParamError
from dsrl_core.policy import default_checkpoint
from dsrl_core.policy.diffusion import DiffusionPolicy
from dsrl_core.policy.make_default import DEMO_SEED
from dsrl_core.rl import (
    demos_to_buffer,
    DSRLNA,
    DSRLSAC,
    MixedSampler,
    NAConfig,
    ReplayBuffer,
    SAC,
    SACConfig,
)
from dsrl_core.rl.learner_params import check_device, LearnerNodeParams
from dsrl_core.sim.demos import collect_demos
from dsrl_core.sim.push_env import GOAL_RADIUS, PushEnv

METHODS = ('bc', 'dsrl_sac', 'dsrl_na', 'sac_action')
TRAIN_SEED_BASE = 1_000_000   # training episodes never reuse an evaluation seed
EVAL_SEED = 10_000


@dataclasses.dataclass
class BenchConfig:
    """Settings of one benchmark run (defaults sized for a 2-core CPU)."""

    # Online episodes per method.
    episodes: int = 100
    # Evaluate every this many episodes (and at 0).
    eval_every: int = 10
    # Fixed-seed evaluation episodes.
    eval_episodes: int = 50
    # Episodes of the plain base policy (w ~ N(0, I)) before the first update.
    warmup: int = 2
    # Gradient updates per collected chunk transition (update-to-data ratio).
    utd: int = 20
    # Update-to-data ratio of DSRL-NA. With the 'delta' chunk input, UTD 10 and 2 distillation
    # steps per update reach 0.92-0.96 by 50 episodes (seeds 0-2, docs/benchmarks, session 4);
    # UTD 3 / 10 gets there at 90-100 episodes.
    utd_na: int = 10
    # DSRL-NA: noise-critic distillation steps per update.
    n_distill: int = 2
    # DSRL-NA: subtract alpha * log pi in the action critic's TD target (soft backup).
    backup_entropy: bool = False
    # DSRL-NA: reduction of the Q^A ensemble that Q^W is distilled onto, 'min' or 'mean'.
    distill_target: str = NAConfig.distill_target
    # DSRL-NA: noises decoded per pool state (0 = no distillation pool).
    pool_noises: int = 16
    # Hidden layers of actor and critics.
    hidden: tuple[int, ...] = (128, 128, 128)
    # Minibatch size.
    batch_size: int = 256
    # Noise magnitude of the DSRL actors (the learner's default; 1.5, the authors' usual value,
    # ends at 0.78-0.98 at 50 episodes over six seeds, 1.0 at 0.94-0.98 over eight; session 9).
    action_magnitude: float = LearnerNodeParams.action_magnitude
    # Initial SAC temperature.
    init_alpha: float = 1.0
    # Target entropy of the DSRL actors (the authors' 0.0).
    target_entropy: float = SACConfig.target_entropy
    # Discount per chunk transition.
    gamma: float = 0.99
    # Adam learning rate of actor, critics and temperature.
    lr: float = SACConfig.lr
    # DSRL-NA: Q^A's chunk input, 'delta' (from the arm's joint positions) or 'absolute' (over
    # the joint range). 'delta' learns much faster (session 4, UTD 3: 0.96 / 0.94 at 100
    # episodes for seeds 0 / 1, where 'absolute' gives 0.76 / 0.78).
    action_input: str = 'delta'
    # DSRL-NA: scale of the 'delta' chunk input (rad).
    delta_scale: float = NAConfig.delta_scale
    # Critics per ensemble.
    n_critics: int = SACConfig.n_critics
    # Polyak rate of the target critics.
    tau: float = SACConfig.tau
    # torch CPU threads.
    threads: int = 2
    # Exploration of the stochastic actor while collecting: 'episode' draws the actor's
    # standard-normal eps once per episode (temporally correlated, gSDE-like), 'chunk' per chunk.
    exploration: str = 'chunk'
    # DSRL-NA: scripted demonstrations (seed 0; the first 8 are the ordinary ones the shipped BC
    # checkpoint was trained on, without its recovery ones) cut into chunk transitions and mixed
    # into every batch (0 = none).
    offline_demos: int = 0
    # DSRL-NA: fraction of every batch drawn from the offline demonstrations.
    offline_ratio: float = 0.1
    # DSRL-NA: Q^A fitted by 'mse' regression or 'hl_gauss' classification over value_bins
    # values in [value_min, value_max] (see NAConfig).
    critic_loss: str = NAConfig.critic_loss
    value_min: float = NAConfig.value_min
    value_max: float = NAConfig.value_max
    value_bins: int = NAConfig.value_bins
    # Torch device of the learners and of the base policy ('cpu', 'cuda'); the simulation and
    # the rollouts' bookkeeping stay on the CPU.
    device: str = 'cpu'
    # Also evaluate the stochastic actor at every evaluation point (doubles evaluation time). It
    # draws from the actor's generator, which exploration shares: turning it off also changes
    # the training run of a seed (same distribution, other samples).
    stochastic_eval: bool = True


def _chunk_to_unit(chunk: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.clip(2 * (chunk - low) / (high - low) - 1, -0.999, 0.999).astype(np.float32)


def _unit_to_chunk(a: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return (low + (np.asarray(a) + 1) / 2 * (high - low)).astype(np.float32)


def make_agent(method: str, policy: DiffusionPolicy, cfg: BenchConfig, seed: int):
    """Build the learner of ``method``."""
    common = {'hidden': cfg.hidden, 'batch_size': cfg.batch_size, 'seed': seed,
              'init_alpha': cfg.init_alpha, 'gamma': cfg.gamma, 'tau': cfg.tau,
              'n_critics': cfg.n_critics, 'lr': cfg.lr}
    if method == 'dsrl_sac':
        return DSRLSAC(policy.meta, config=SACConfig(
            utd_ratio=cfg.utd, action_magnitude=cfg.action_magnitude,
            target_entropy=cfg.target_entropy, **common), device=cfg.device)
    if method == 'dsrl_na':
        return DSRLNA(policy, config=NAConfig(
            utd_ratio=cfg.utd_na, action_magnitude=cfg.action_magnitude,
            target_entropy=cfg.target_entropy,
            n_distill=cfg.n_distill, distill_target=cfg.distill_target,
            backup_entropy=cfg.backup_entropy,
            pool_noises=cfg.pool_noises, action_input=cfg.action_input,
            delta_scale=cfg.delta_scale, critic_loss=cfg.critic_loss,
            value_min=cfg.value_min, value_max=cfg.value_max, value_bins=cfg.value_bins,
            **common), device=cfg.device)
    if method == 'sac_action':
        return SAC(policy.meta.obs_dim, policy.meta.noise_dim, SACConfig(
            utd_ratio=cfg.utd, action_magnitude=1.0, target_entropy=None, **common),
            device=cfg.device)
    raise ValueError(f'unknown method {method!r}; choose from {METHODS}')


def run_method(method: str, policy: DiffusionPolicy, cfg: BenchConfig, seed: int,
               progress: bool = True) -> dict:
    """Train ``method`` online; return its evaluation curve and timings."""
    meta = policy.meta
    low, high = np.array(meta.action_low), np.array(meta.action_high)
    t_start = time.time()
    if method == 'bc':
        res = evaluate(policy, gaussian_noise_fn(meta.noise_shape, seed),
                       episodes=cfg.eval_episodes, seed=EVAL_SEED)
        curve = [(ep, res.success_rate) for ep in range(0, cfg.episodes + 1, cfg.eval_every)]
        # Reference: w = 0, the mode of N(0, I), which an actor whose output is still near zero
        # (DSRL's at episode 0) executes; part of a DSRL curve's start can come from there.
        zero = evaluate(policy, zero_noise_fn(meta.noise_shape), episodes=cfg.eval_episodes,
                        seed=EVAL_SEED)
        return {'method': method, 'seed': seed, 'curve': curve, 'seconds': time.time() - t_start,
                'updates': 0, 'zero_noise_success': zero.success_rate}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    agent = make_agent(method, policy, cfg, seed)
    # The learners see observations normalised with the base policy's demonstration statistics
    # (raw joint velocities would otherwise drown the few centimetres of puck position).
    agent.set_obs_normalizer(policy.obs_mean, policy.obs_std)
    utd = cfg.utd_na if method == 'dsrl_na' else cfg.utd
    buf = ReplayBuffer(meta.obs_dim, meta.noise_shape, meta.noise_shape, capacity=200_000)
    sampler, offline_report = buf, None
    if method == 'dsrl_na' and cfg.offline_demos > 0:
        offline, offline_report = demos_to_buffer(
            collect_demos(n=cfg.offline_demos, seed=DEMO_SEED), meta.horizon)
        sampler = MixedSampler(buf, offline, cfg.offline_ratio)
        if progress:
            print(f'offline data, {cfg.offline_ratio:.0%} of every batch: {offline_report}')
    env = PushEnv()

    def chunk_fn(obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        a = agent.act(obs, deterministic=deterministic)
        if method == 'sac_action':
            return _unit_to_chunk(a.reshape(-1, *meta.noise_shape), low, high)
        noise = torch.from_numpy(np.asarray(a, dtype=np.float32).reshape(-1, *meta.noise_shape))
        return policy.sample(torch.from_numpy(obs), noise).numpy()

    def evaluate_both(ep: int) -> None:
        det = evaluate_chunks(chunk_fn, cfg.eval_episodes, EVAL_SEED)
        curve.append((ep, det.success_rate))
        # which evaluation starts failed ('0') or succeeded ('1'), by seed EVAL_SEED + index
        outcomes.append((ep, ''.join('1' if s else '0' for s in det.success)))
        # where the object ended (distance to the goal centre, m) in the failed ones
        fail_dist.append((ep, {int(i): round(float(det.goal_dist[i]), 4)
                               for i in np.flatnonzero(~det.success)}))
        if cfg.stochastic_eval:
            stochastic.append((ep, evaluate_chunks(lambda o: chunk_fn(o, False),
                                                   cfg.eval_episodes, EVAL_SEED).success_rate))

    curve: list[tuple[int, float]] = []
    outcomes: list[tuple[int, str]] = []
    fail_dist: list[tuple[int, dict[int, float]]] = []
    stochastic: list[tuple[int, float]] = []
    evaluate_both(0)
    updates, update_time, successes = 0, 0.0, []
    bar = tqdm(range(1, cfg.episodes + 1), desc=f'{method} seed {seed}', disable=not progress,
               mininterval=2.0)
    for ep in bar:
        obs, _ = env.reset(seed=TRAIN_SEED_BASE + 1000 * seed + ep)
        done, success = False, False
        eps = (rng.standard_normal(meta.noise_dim).astype(np.float32)
               if cfg.exploration == 'episode' else None)
        while not done:
            o = obs.astype(np.float32)
            if ep <= cfg.warmup or method != 'sac_action':
                noise = (rng.standard_normal(meta.noise_shape).astype(np.float32)
                         if ep <= cfg.warmup else
                         np.asarray(agent.act(o, eps=eps), np.float32).reshape(meta.noise_shape))
                chunk = policy.sample(torch.from_numpy(o[None]),
                                      torch.from_numpy(noise[None])).numpy()[0]
            else:
                unit = np.asarray(agent.act(o, eps=eps), np.float32).reshape(meta.noise_shape)
                noise, chunk = np.zeros(meta.noise_shape, np.float32), _unit_to_chunk(
                    unit, low, high)
            reward, term, trunc = 0.0, False, False
            for a in chunk:
                obs, r, term, trunc, info = env.step(a)
                reward += r
                if term or trunc:
                    success = bool(info.get('success', False))
                    break
            stored = _chunk_to_unit(chunk, low, high) if method == 'sac_action' else chunk
            buf.add(o, noise, stored, reward, obs.astype(np.float32), terminated=term,
                    truncated=trunc, actor_version=updates)
            done = term or trunc
            if ep > cfg.warmup:
                t0 = time.time()
                for _ in range(utd):
                    batch = sampler.sample(cfg.batch_size, rng)
                    if method == 'sac_action':
                        batch['action'] = batch['action'].reshape(cfg.batch_size, -1)
                    stats = agent.update(batch)
                update_time += time.time() - t0
                updates += utd
        successes.append(success)
        if ep % cfg.eval_every == 0:
            evaluate_both(ep)
            bar.set_postfix(eval=f'{curve[-1][1]:.2f}',
                            stoch=f'{stochastic[-1][1]:.2f}' if stochastic else '-',
                            train10=f'{np.mean(successes[-10:]):.1f}',
                            ups=f'{updates / max(update_time, 1e-9):.0f}',
                            alpha=f'{stats["alpha"]:.3f}' if updates else '-',
                            **({'clipped': f'{stats["value_clipped"]:.3f}'}
                               if updates and 'value_clipped' in stats else {}))
    env.close()
    return {'method': method, 'seed': seed, 'curve': curve,
            **({'curve_stochastic': stochastic} if cfg.stochastic_eval else {}),
            'eval_outcomes': outcomes, 'eval_failure_goal_dist': fail_dist,
            'offline': None if offline_report is None else dataclasses.asdict(offline_report),
            'seconds': time.time() - t_start, 'updates': updates,
            'updates_per_s': updates / max(update_time, 1e-9),
            'train_success': [bool(s) for s in successes]}


def episodes_to_reach(curve: list[tuple[int, float]], level: float) -> int | None:
    """First evaluated episode count whose success rate is >= level (None if never)."""
    return next((ep for ep, sr in curve if sr >= level), None)


def report(results: list[dict], out: pathlib.Path) -> str:
    """Write json/csv/png into ``out``; return the printed table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / 'results.json').write_text(json.dumps(results, indent=1))
    methods = [m for m in METHODS if any(r['method'] == m for r in results)]
    points = sorted({ep for r in results for ep, _ in r['curve']})
    # One series per method (deterministic actor) plus '<method>~' (stochastic actor).
    series: dict[str, list[list[tuple[int, float]]]] = {}
    for m in methods:
        runs = [r for r in results if r['method'] == m]
        series[m] = [r['curve'] for r in runs]
        if all('curve_stochastic' in r for r in runs):
            series[m + '~'] = [r['curve_stochastic'] for r in runs]
    mean = {name: {ep: float(np.mean([dict(c)[ep] for c in curves])) for ep in points}
            for name, curves in series.items()}
    with open(out / 'results.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['episodes'] + list(series))
        for ep in points:
            w.writerow([ep] + [f'{mean[n][ep]:.3f}' for n in series])
    lines = ['episodes | ' + ' | '.join(f'{n:>11}' for n in series)]
    lines += [f'{ep:8d} | ' + ' | '.join(f'{mean[n][ep]:11.2f}' for n in series)
              for ep in points]
    lines.append("('~' = the same actor sampled stochastically; plain = deterministic actor)")
    for m in methods:
        runs = [r for r in results if r['method'] == m]
        reach90 = [episodes_to_reach(r['curve'], 0.9) for r in runs]
        reach95 = [episodes_to_reach(r['curve'], 0.95) for r in runs]
        ups = [r.get('updates_per_s', 0.0) for r in runs]
        if m == 'bc':
            lines.append('bc: success with w ~ N(0, I) ' + ', '.join(
                f'{r["curve"][0][1]:.2f}' for r in runs) + '; with w = 0 (the mode) ' + ', '.join(
                f'{r["zero_noise_success"]:.2f}' for r in runs if 'zero_noise_success' in r))
        lines.append(f'{m}: reaches 90% at {reach90}, 95% at {reach95} episodes; '
                     f'{np.mean([r["seconds"] for r in runs]):.0f} s per run, '
                     f'{np.mean(ups):.0f} updates/s')
        for r in runs:
            if r.get('eval_outcomes'):
                ep, bits = r['eval_outcomes'][-1]
                failed = [i for i, b in enumerate(bits) if b == '0']
                lines.append(f'  seed {r["seed"]}: evaluation starts failed at episode {ep} '
                             f'(index i = reset seed {EVAL_SEED} + i): {failed}')
                if r.get('eval_failure_goal_dist'):
                    dist = r['eval_failure_goal_dist'][-1][1]
                    near = sum(d <= 2 * GOAL_RADIUS for d in dist.values())
                    lines.append(f'    where the puck ended (m from the goal centre; radius '
                                 f'{GOAL_RADIUS}): ' + ', '.join(
                                     f'{i}: {d:.3f}' for i, d in dist.items())
                                 + f'; {near} of {len(dist)} within {2 * GOAL_RADIUS:.2f} m')
    text = '\n'.join(lines)
    (out / 'table.txt').write_text(text + '\n')
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, curves in series.items():
        arr = np.array([[dict(c)[ep] for ep in points] for c in curves])
        ax.plot(points, arr.mean(0), marker='o', linestyle='--' if name.endswith('~') else '-',
                label=f'{name} ({len(curves)} seed(s))')
        if len(curves) > 1:
            ax.fill_between(points, arr.min(0), arr.max(0), alpha=0.15)
    ax.set_xlabel('online episodes')
    ax.set_ylabel(f'success rate ({results[0].get("eval_episodes", 50)} fixed-seed episodes)')
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title('Steering the frozen BC diffusion policy (push task)')
    fig.tight_layout()
    fig.savefig(out / 'steering.png', dpi=120)
    plt.close(fig)
    return text


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    d = BenchConfig()
    p.add_argument('--checkpoint', default=str(default_checkpoint()))
    p.add_argument('--methods', nargs='+', default=list(METHODS), choices=METHODS)
    p.add_argument('--seeds', nargs='+', type=int, default=[0])
    p.add_argument('--episodes', type=int, default=d.episodes)
    p.add_argument('--eval-every', type=int, default=d.eval_every)
    p.add_argument('--eval-episodes', type=int, default=d.eval_episodes)
    p.add_argument('--warmup', type=int, default=d.warmup)
    p.add_argument('--utd', type=int, default=d.utd)
    p.add_argument('--utd-na', type=int, default=d.utd_na)
    p.add_argument('--n-distill', type=int, default=d.n_distill,
                   help='DSRL-NA: noise-critic distillation steps per update')
    p.add_argument('--distill-target', choices=('min', 'mean'), default=d.distill_target,
                   help="DSRL-NA: Q^W regresses onto the 'min' or 'mean' of the Q^A ensemble")
    p.add_argument('--pool-noises', type=int, default=d.pool_noises,
                   help='DSRL-NA: distillation pool, noises decoded per state (0 = none)')
    p.add_argument('--backup-entropy', action=argparse.BooleanOptionalAction,
                   default=d.backup_entropy,
                   help='DSRL-NA: soft TD target of the action critic (default: plain)')
    p.add_argument('--hidden', type=int, nargs='+', default=list(d.hidden))
    p.add_argument('--batch-size', type=int, default=d.batch_size)
    p.add_argument('--init-alpha', type=float, default=d.init_alpha)
    p.add_argument('--target-entropy', type=float, default=d.target_entropy,
                   help='target entropy of the DSRL actors')
    p.add_argument('--gamma', type=float, default=d.gamma, help='discount per chunk')
    p.add_argument('--lr', type=float, default=d.lr, help='Adam learning rate')
    p.add_argument('--action-input', choices=('absolute', 'delta'), default=d.action_input,
                   help="DSRL-NA: Q^A's chunk input, over the joint range or from the arm")
    p.add_argument('--delta-scale', type=float, default=d.delta_scale,
                   help="DSRL-NA: scale of the 'delta' chunk input (rad)")
    p.add_argument('--n-critics', type=int, default=d.n_critics, help='critics per ensemble')
    p.add_argument('--tau', type=float, default=d.tau, help='Polyak rate of the target critics')
    p.add_argument('--magnitude', type=float, default=d.action_magnitude,
                   help='noise bound of the DSRL actors')
    p.add_argument('--threads', type=int, default=d.threads)
    p.add_argument('--exploration', choices=('episode', 'chunk'), default=d.exploration,
                   help='actor eps drawn once per episode (correlated) or per chunk')
    p.add_argument('--offline-demos', type=int, default=d.offline_demos,
                   help='DSRL-NA: mix this many scripted demonstrations (seed 0; the first 8 '
                        'are the ordinary ones the shipped BC was trained on, not its recovery '
                        'ones) into every batch (0 = none)')
    p.add_argument('--offline-ratio', type=float, default=d.offline_ratio,
                   help='DSRL-NA: fraction of every batch from the offline demonstrations')
    p.add_argument('--critic-loss', choices=('mse', 'hl_gauss'), default=d.critic_loss,
                   help="DSRL-NA: fit Q^A by 'mse' regression or 'hl_gauss' classification")
    p.add_argument('--value-range', type=float, nargs=2, default=[d.value_min, d.value_max],
                   metavar=('MIN', 'MAX'), help="DSRL-NA 'hl_gauss': the value histogram's range")
    p.add_argument('--value-bins', type=int, default=d.value_bins,
                   help="DSRL-NA 'hl_gauss': bins of the value histogram")
    p.add_argument('--device', default=d.device,
                   help="torch device of the learners and the base policy ('cpu', 'cuda')")
    p.add_argument('--stochastic-eval', action=argparse.BooleanOptionalAction,
                   default=d.stochastic_eval,
                   help='also evaluate the stochastic actor at every evaluation point (it draws '
                        "from the actor's generator, so\nturning it off also changes the "
                        'training run of a seed)')
    p.add_argument('--out', default='runs/steering')
    a = p.parse_args(argv)
    try:
        check_device(a.device)
    except ParamError as exc:
        p.error(str(exc))
    cfg = BenchConfig(episodes=a.episodes, eval_every=a.eval_every, eval_episodes=a.eval_episodes,
                      warmup=a.warmup, utd=a.utd, utd_na=a.utd_na, hidden=tuple(a.hidden),
                      batch_size=a.batch_size, threads=a.threads,
                      init_alpha=a.init_alpha, action_magnitude=a.magnitude,
                      target_entropy=a.target_entropy,
                      gamma=a.gamma, tau=a.tau, n_critics=a.n_critics, lr=a.lr,
                      action_input=a.action_input, delta_scale=a.delta_scale,
                      exploration=a.exploration, n_distill=a.n_distill,
                      distill_target=a.distill_target,
                      backup_entropy=a.backup_entropy, pool_noises=a.pool_noises,
                      offline_demos=a.offline_demos, offline_ratio=a.offline_ratio,
                      critic_loss=a.critic_loss, value_min=a.value_range[0],
                      value_max=a.value_range[1], value_bins=a.value_bins,
                      device=a.device, stochastic_eval=a.stochastic_eval)
    torch.set_num_threads(cfg.threads)
    policy = DiffusionPolicy.load(a.checkpoint).to(cfg.device)
    before = [p_.detach().cpu().clone() for p_ in policy.parameters()]
    print(f'steering benchmark: {a.methods} x seeds {a.seeds}; {cfg}')
    if cfg.offline_demos and set(a.methods) - {'dsrl_na'}:
        print('note: --offline-demos feeds only dsrl_na (the others learn from the noise that '
              'chose a chunk, which demonstrations do not have)')
    if cfg.critic_loss != 'mse' and set(a.methods) - {'dsrl_na', 'bc'}:
        print(f'note: --critic-loss {cfg.critic_loss} changes only dsrl_na (the others have no '
              'action critic Q^A)')
    results = []
    for seed in a.seeds:
        for method in a.methods:
            r = run_method(method, policy, cfg, seed)
            r['eval_episodes'] = cfg.eval_episodes
            results.append(r)
            print(f'{method} seed {seed}: ' + ', '.join(f'{ep}:{sr:.2f}' for ep, sr in r['curve'])
                  + f' ({r["seconds"]:.0f} s)', flush=True)
            report(results, pathlib.Path(a.out))
    frozen = all(torch.equal(b, p_.cpu()) for b, p_ in zip(before, policy.parameters()))
    print(report(results, pathlib.Path(a.out)))
    print(f'base policy parameters bitwise unchanged: {frozen}')
    print(f'wrote {a.out}/results.json, results.csv, table.txt, steering.png')
    return 0 if frozen else 1


if __name__ == '__main__':
    raise SystemExit(main())
