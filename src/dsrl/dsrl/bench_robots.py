"""
One arm vs several arms feeding one learner (prints figures, writes a CSV and a PNG).

    python -m dsrl.bench_robots [--seconds 180] [--robots 1 2] [--out runs/bench_robots]

For each robot count, runs ``dsrl bringup --sim --lockstep --robots N --duration S`` from the
installed params file (a fresh learner data folder, no resume) and reads the learner's summary
lines: finished episodes, transitions, updates and the moving success rate, overall and per robot,
against wall time. Prints episodes per minute, updates per second and the last success rates, and
plots success rate vs episodes (per robot) and episodes vs wall time for every run.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import re
import subprocess

import yaml

from dsrl import graph
from dsrl.bench_runtime import bench_env

LINE = re.compile(r'\[learner_node\] \[INFO\] \[(\d+\.\d+)\].*received (\d+) .*updates (\d+) '
                  r'\(([\d.]+)/s\).*episodes (\d+), success ([\d.na]+)(?:; (.*))?$')
ROBOT = re.compile(r'(arm\d+) ([\d.na]+) of (\d+)')


def run(robots: int, seconds: float, out: pathlib.Path, domain: int) -> list[dict]:
    """Run one bringup; return its summary rows (time, counters, success overall/per robot)."""
    doc = yaml.safe_load(pathlib.Path(graph.default_params_file()).read_text())
    lp = doc['learner_node']['ros__parameters']
    lp.update(data_dir=str(out / f'learner_{robots}'), resume=False, stats_period_s=5.0)
    params = out / f'params_{robots}.yaml'
    params.write_text(yaml.safe_dump(doc))
    env = bench_env(domain)
    exe = graph.find_executable(graph.NodeSpec('dsrl', 'dsrl', 'dsrl', 'robot'))
    log_path = out / f'bringup_{robots}.log'
    with open(log_path, 'w') as log:
        proc = subprocess.run([exe, 'bringup', '--sim', '--lockstep', '--robots', str(robots),
                               '--duration', str(seconds), '--params-file', str(params)],
                              env=env, stdout=log, stderr=subprocess.STDOUT,
                              timeout=seconds + 180)
    if proc.returncode != 0:
        raise RuntimeError(f'bringup with {robots} robot(s) exited {proc.returncode}; see '
                           f'{log_path}')
    rows, t0 = [], None
    for line in log_path.read_text().splitlines():
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
    return rows


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--seconds', type=float, default=180.0)
    ap.add_argument('--robots', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--domain', type=int, default=78)
    ap.add_argument('--out', default='runs/bench_robots')
    a = ap.parse_args(argv)
    out = pathlib.Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    all_rows = []
    for n in a.robots:
        print(f'{n} robot(s): {a.seconds:g} s of lockstep bringup ...', flush=True)
        rows = run(n, a.seconds, out, a.domain)
        all_rows += rows
        last = rows[-1]
        per = ', '.join(f'{k[:-8]} {last[k]:.2f} of {last[k[:-8] + "_episodes"]}'
                        for k in sorted(last) if k.endswith('_success') and k != 'success')
        ups = [r['updates_per_s'] for r in rows[1:]] or [0.0]
        print(f'{n} robot(s): {last["episodes"]} episodes ({60 * last["episodes"] / last["t"]:.1f}'
              f'/min), {last["transitions"]} transitions, {last["updates"]} updates '
              f'({sum(ups) / len(ups):.1f}/s), success over the last 20 episodes '
              f'{last["success"]:.2f}' + (f'; {per}' if per else ''), flush=True)
    keys = sorted({k for r in all_rows for k in r})
    with open(out / 'robots.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(all_rows)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for n in a.robots:
        rows = [r for r in all_rows if r['robots'] == n]
        ax1.plot([r['episodes'] for r in rows], [r['success'] for r in rows], marker='.',
                 label=f'{n} robot(s), all')
        for rid in sorted({k[:-8] for r in rows for k in r
                           if k.endswith('_success') and k != 'success'}):
            pts = [(r[f'{rid}_episodes'], r[f'{rid}_success']) for r in rows
                   if f'{rid}_success' in r]
            ax1.plot(*zip(*pts), linestyle='--', label=f'{n} robots: {rid}')
        ax2.plot([r['t'] for r in rows], [r['episodes'] for r in rows], label=f'{n} robot(s)')
    ax1.set_xlabel('finished episodes')
    ax1.set_ylabel('success rate (moving window of 20)')
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(fontsize=7)
    ax2.set_xlabel('wall seconds')
    ax2.set_ylabel('finished episodes')
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / 'robots.png', dpi=110)
    print(f'wrote {out}/robots.csv and robots.png')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
