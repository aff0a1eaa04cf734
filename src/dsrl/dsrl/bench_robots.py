"""
One arm vs several arms feeding one learner (prints figures, writes a CSV and a PNG).

    python -m dsrl.bench_robots [--seconds 180] [--robots 1 2] [--out runs/bench_robots]

For each robot count, runs ``dsrl bringup --sim --lockstep --robots N --duration S`` from the
installed params file (a fresh learner data folder, no resume) and reads the learner's summary
lines: finished episodes, transitions, updates and the moving success rate, overall and per robot,
against wall time. Prints episodes per minute, updates per second and the last success rates, and
plots success rate vs episodes (per robot) and episodes vs wall time for every run.

Each robot's training success (its moving window of 20 episodes, the stochastic actor exploring)
is reported at its first full window and at the end. The learning curve is the deterministic
actor's: the learner checkpoints every ``--checkpoint-every`` seconds, and after each run every
checkpoint's actor is evaluated in-process on the same 100 seeded episodes as the BC policy (as
``make demo`` does), so every point of every robot count is scored on the same episodes.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import re
import subprocess
import time

import yaml

from dsrl import graph
from dsrl.bench_runtime import bench_env, bench_node, stop

LINE = re.compile(r'\[learner_node\] \[INFO\] \[(\d+\.\d+)\].*received (\d+) .*updates (\d+) '
                  r'\(([\d.]+)/s\).*episodes (\d+), success ([\d.na]+)(?:; (.*))?$')
ROBOT = re.compile(r'(arm\d+) ([\d.na]+) of (\d+)')
CHECKPOINT = re.compile(r'\[learner_node\] \[INFO\] \[(\d+\.\d+)\].*: checkpoint (\S+): '
                        r'(\d+) updates')


def run(robots: int, seconds: float, out: pathlib.Path, domain: int,
        checkpoint_every: float) -> tuple[list[dict], list[dict]]:
    """
    Run one bringup; return its summary rows and its checkpoints.

    Rows: time, counters, success overall and per robot. Checkpoints: time, finished episodes,
    updates, path.
    """
    doc = yaml.safe_load(pathlib.Path(graph.default_params_file()).read_text())
    lp = doc['learner_node']['ros__parameters']
    # checkpoints come from request_checkpoints at wall-clock intervals (the learner's own timer
    # runs on sim time with one lockstep arm and on wall time with several)
    lp.update(data_dir=str(out / f'learner_{robots}'), resume=False, stats_period_s=5.0,
              checkpoint_every_s=0.0, keep_checkpoints=1000)
    params = out / f'params_{robots}.yaml'
    params.write_text(yaml.safe_dump(doc))
    env = bench_env(domain)
    exe = graph.find_executable(graph.NodeSpec('dsrl', 'dsrl', 'dsrl', 'robot'))
    log_path = out / f'bringup_{robots}.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([exe, 'bringup', '--sim', '--lockstep', '--robots', str(robots),
                                 '--duration', str(seconds), '--params-file', str(params)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        request_checkpoints(proc, checkpoint_every, domain, seconds + 180)
    finally:
        stop(proc)  # no-op when it ended by itself; else Ctrl-C, as a user would
    if proc.returncode != 0:
        raise RuntimeError(f'bringup with {robots} robot(s) exited {proc.returncode}; see '
                           f'{log_path}')
    rows, t0, checkpoints = [], None, []
    for line in log_path.read_text().splitlines():
        c = CHECKPOINT.search(line)
        if c and t0 is not None and int(c.group(3)) > 0:  # 0 updates: an untrained actor
            done = [r for r in rows if r['t'] <= float(c.group(1)) - t0]
            checkpoints.append({'robots': robots, 't': float(c.group(1)) - t0,
                                'episodes': done[-1]['episodes'] if done else 0,
                                'updates': int(c.group(3)), 'path': c.group(2)})
        m = LINE.search(line)
        if not m:
            continue
        t = float(m.group(1))
        t0 = t if t0 is None else t0
        row = {'robots': robots, 't': t - t0, 'transitions': int(m.group(2)),
               'updates': int(m.group(3)), 'updates_per_s': float(m.group(4)),
               'episodes': int(m.group(5)), 'success': float(m.group(6))}
        for rid, rate, n in ROBOT.findall(m.group(7) or ''):
            row[f'{rid}_success'], row[f'{rid}_episodes'] = float(rate), int(n)
        rows.append(row)
    if not rows:
        raise RuntimeError(f'no learner summary line in {log_path}')
    return rows, checkpoints


def evaluate_actor(checkpoint_dir: str | None, episodes: int) -> float:
    """Success rate over ``episodes`` seeded episodes: BC (None) or a learner's actor."""
    from dsrl_core.evaluation import evaluate, gaussian_noise_fn
    from dsrl_core.policy import default_checkpoint
    from dsrl_core.policy.diffusion import DiffusionPolicy
    from dsrl_core.policy.evaluate import learner_noise_fn
    import torch
    torch.set_num_threads(2)
    policy = DiffusionPolicy.load(str(default_checkpoint()))
    noise_fn = gaussian_noise_fn(policy.meta.noise_shape, 0)
    if checkpoint_dir is not None:
        noise_fn, _ = learner_noise_fn(checkpoint_dir, policy.meta)
    return evaluate(policy, noise_fn, episodes=episodes).success_rate


def request_checkpoints(proc: subprocess.Popen, every: float, domain: int,
                        timeout: float) -> None:
    """Call the learner's /dsrl/save_checkpoint every ``every`` wall s until ``proc`` ends."""
    from rclpy.executors import SingleThreadedExecutor

    from dsrl_msgs.srv import SaveCheckpoint
    with bench_node(domain, 'bench_robots') as node:
        client = node.create_client(SaveCheckpoint, '/dsrl/save_checkpoint')
        executor = SingleThreadedExecutor(context=node.context)
        executor.add_node(node)
        start = time.monotonic()
        due = start + every
        try:
            while proc.poll() is None:
                if time.monotonic() - start > timeout:
                    raise RuntimeError(f'the bringup ran past {timeout:.0f} s')
                if time.monotonic() >= due and client.service_is_ready():
                    future = client.call_async(SaveCheckpoint.Request())
                    executor.spin_until_future_complete(future, timeout_sec=30.0)
                    due += every
                time.sleep(0.2)
        finally:
            executor.shutdown()


def robot_progress(rows: list[dict]) -> dict[str, tuple[float, float, int]]:
    """Robot id -> (success at its first full window of 20, success at the end, episodes)."""
    out = {}
    for rid in sorted({k[:-8] for r in rows for k in r if k.endswith('_success')
                       and k != 'success'}):
        pts = [(r[f'{rid}_episodes'], r[f'{rid}_success']) for r in rows if f'{rid}_success' in r]
        first = next((s for n, s in pts if n >= 20), float('nan'))
        out[rid] = (first, pts[-1][1], pts[-1][0])
    if not out:  # one robot: the summary line has no per-robot part
        pts = [(r['episodes'], r['success']) for r in rows]
        first = next((s for n, s in pts if n >= 20), float('nan'))
        out['arm0'] = (first, pts[-1][1], pts[-1][0])
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--seconds', type=float, default=180.0)
    ap.add_argument('--robots', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--domain', type=int, default=78)
    ap.add_argument('--out', default='runs/bench_robots')
    ap.add_argument('--eval-episodes', type=int, default=100,
                    help='seeded episodes of each checkpoint evaluation (0 = skip them)')
    ap.add_argument('--checkpoint-every', type=float, default=60.0,
                    help='wall seconds between the checkpoints (the learning curve points)')
    a = ap.parse_args(argv)
    out = pathlib.Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    all_rows, curve = [], []
    bc = float('nan')
    if a.eval_episodes:
        bc = evaluate_actor(None, a.eval_episodes)
        print(f'before: BC with N(0, I) noise, {a.eval_episodes} seeded episodes: {bc:.2f}',
              flush=True)
    for n in a.robots:
        print(f'{n} robot(s): {a.seconds:g} s of lockstep bringup ...', flush=True)
        rows, checkpoints = run(n, a.seconds, out, a.domain, a.checkpoint_every)
        all_rows += rows
        last = rows[-1]
        per = ', '.join(f'{k[:-8]} {last[k]:.2f} of {last[k[:-8] + "_episodes"]}'
                        for k in sorted(last) if k.endswith('_success') and k != 'success')
        ups = [r['updates_per_s'] for r in rows[1:]] or [0.0]
        print(f'{n} robot(s): {last["episodes"]} episodes ({60 * last["episodes"] / last["t"]:.1f}'
              f'/min), {last["transitions"]} transitions, {last["updates"]} updates '
              f'({sum(ups) / len(ups):.1f}/s), success over the last 20 episodes '
              f'{last["success"]:.2f}' + (f'; {per}' if per else ''), flush=True)
        progress = ', '.join(f'{rid} {first:.2f} -> {end:.2f} ({eps} episodes)'
                             for rid, (first, end, eps) in robot_progress(rows).items())
        print(f'{n} robot(s): training success per robot (stochastic actor), first full window '
              f'-> end: {progress}', flush=True)
        if a.eval_episodes:
            points = []
            for c in checkpoints:
                c['eval_success'] = evaluate_actor(c['path'], a.eval_episodes)
                curve.append(c)
                points.append(f"{c['t']:.0f} s / {c['episodes']} episodes / {c['updates']} "
                              f"updates: {c['eval_success']:.2f}")
            print(f'{n} robot(s): deterministic actor on the same {a.eval_episodes} episodes '
                  f'(BC {bc:.2f}): ' + '; '.join(points), flush=True)
    keys = sorted({k for r in all_rows for k in r})
    with open(out / 'robots.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(all_rows)
    with open(out / 'robots_eval.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=['robots', 't', 'episodes', 'updates', 'eval_success',
                                          'path'])
        w.writeheader()
        w.writerows(curve)
    plot(a.robots, all_rows, curve, bc, a.eval_episodes, out / 'robots.png')
    print(f'wrote {out}/robots.csv, robots_eval.csv and robots.png')
    return 0


def plot(robot_counts: list[int], all_rows: list[dict], curve: list[dict], bc: float,
         eval_episodes: int, path: pathlib.Path) -> None:
    """Training success per robot, and the deterministic actor's success vs episodes and time."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    for n in robot_counts:
        rows = [r for r in all_rows if r['robots'] == n]
        ax1.plot([r['episodes'] for r in rows], [r['success'] for r in rows], marker='.',
                 label=f'{n} robot(s), all')
        for rid in sorted({k[:-8] for r in rows for k in r
                           if k.endswith('_success') and k != 'success'}):
            pts = [(r[f'{rid}_episodes'], r[f'{rid}_success']) for r in rows
                   if f'{rid}_success' in r]
            ax1.plot(*zip(*pts), linestyle='--', label=f'{n} robots: {rid}')
        pts = [c for c in curve if c['robots'] == n]
        if pts:
            ax2.plot([0] + [c['episodes'] for c in pts], [bc] + [c['eval_success'] for c in pts],
                     marker='o', label=f'{n} robot(s)')
            ax3.plot([0] + [c['t'] for c in pts], [bc] + [c['eval_success'] for c in pts],
                     marker='o', label=f'{n} robot(s)')
    ax1.set_xlabel('finished episodes (all robots)')
    ax1.set_ylabel('training success (moving window of 20)')
    ax2.set_xlabel('finished episodes (all robots)')
    ax3.set_xlabel('wall seconds')
    for ax in (ax2, ax3):
        ax.set_ylabel(f'deterministic actor, {eval_episodes} seeded episodes')
        if bc == bc:
            ax.axhline(bc, color='gray', linestyle=':', label='BC')
    for ax in (ax1, ax2, ax3):
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == '__main__':
    raise SystemExit(main())
