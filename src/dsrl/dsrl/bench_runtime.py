"""
Runtime benchmark of the ROS 2 graph (prints figures, asserts nothing).

    python -m dsrl.bench_runtime [--seconds 60] [--transitions 10000] [--rate 100] [--out DIR]

Three parts, each printing its figures as ratios measured in this one run:

1. In-process (no ROS): the policy node's per-chunk work with the noise actor (actor forward +
   ``sample()``) against the base policy alone with N(0, I) noise -> steering overhead; bare
   ``sample()`` p50/p99 at batch 1.
2. Live, real time: ``dsrl bringup --sim`` (sim arm at 10 Hz wall time, reward node, policy node,
   learner training at its configured update-to-data ratio on the same machine) for ``--seconds``.
   The policy node's timing log gives the control-cycle p99 / control period, observation ->
   command p50/p99 (against bare ``sample()`` p99) and the weights publish -> applied latency.
3. Learner alone: a publisher process sends ``--transitions`` Transitions at ``--rate`` Hz to
   the learner node (reliable, deep queue) with an update-to-data ratio so high that it is never
   short of data; the learner's summary lines give the transitions received (lost = sent -
   received) and its updates/s over the receiving period, compared with the same ``Trainer``
   loop in-process on the same buffer size while the same publisher process runs (and quiet).

Each node process logs to ``--out`` (default ``runs/bench_runtime``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import re
import secrets
import signal
import subprocess
import sys
import time
from typing import Iterator

from dsrl_core.bench.policy import time_ms
import numpy as np
import torch
import yaml

from dsrl import graph


def in_process(repeats: int) -> dict:
    """Part 1: steering overhead and bare sample() latency (1 torch thread, as the node)."""
    from dsrl_core.policy.base import sample_numpy
    from dsrl_core.policy.diffusion import load_policy
    from dsrl_core.policy.policy_params import PolicyNodeParams
    from dsrl_core.policy.runtime import NoiseSource
    torch.set_num_threads(1)
    p = PolicyNodeParams()
    policy = load_policy()
    meta = policy.meta
    src = NoiseSource(meta, p.actor_hidden, p.actor_layer_norm, p.action_magnitude, 'train')
    src.version = 1  # as if learner weights had been applied: the actor runs
    obs = np.zeros(meta.obs_dim, np.float32)
    obs_t = torch.from_numpy(obs[None])
    gen = torch.Generator().manual_seed(0)
    # interleave the two so that a load change on the machine hits both alike
    steered, base, bare = [], [], []
    for _ in range(repeats // 20):
        steered.append(time_ms(lambda: sample_numpy(policy, obs, src.noise(obs)), 20))
        base.append(time_ms(lambda: sample_numpy(
            policy, obs, torch.randn(meta.noise_shape, generator=gen).numpy()), 20))
        bare.append(time_ms(lambda: policy.sample(
            obs_t, torch.randn((1, *meta.noise_shape), generator=gen)), 20))
    steered, base, bare = (np.concatenate(x) for x in (steered, base, bare))
    return {'steered_p50': float(np.median(steered)), 'base_p50': float(np.median(base)),
            'bare_p50': float(np.median(bare)), 'bare_p99': float(np.percentile(bare, 99))}


def bench_env(domain: int) -> dict:
    """Environment of the benchmark's node processes: its own domain, local discovery, no key."""
    env = dict(os.environ)
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    env.pop('DSRL_WEIGHTS_KEY', None)
    env.pop('DSRL_WEIGHTS_KEY_FILE', None)
    return env


def stop(proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Stop a node or bringup process as Ctrl-C would; kill it after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


TIMING = re.compile(r'timing: cycle n=(\d+) p50=([\d.na]+) p99=([\d.na]+) ms \(p99/period '
                    r'([\d.na]+)\), obs->command n=(\d+) p50=([\d.na]+) p99=([\d.na]+) ms, '
                    r'weights publish->verified n=(\d+) p50=([\d.na]+) p99=([\d.na]+) ms, '
                    r'weights publish->applied n=(\d+) p50=([\d.na]+) p99=([\d.na]+) ms')


def live_graph(seconds: float, out: pathlib.Path, domain: int) -> dict:
    """Part 2: the real-time sim graph with the learner training; parse the policy timing."""
    doc = yaml.safe_load(pathlib.Path(graph.default_params_file()).read_text())
    pol = doc['policy_node']['ros__parameters']
    pol['timing_log_period_s'] = max(5.0, seconds / 4)
    learner = doc['learner_node']['ros__parameters']
    learner.update(data_dir=str(out / 'learner_live'), resume=False, checkpoint_on_exit=False,
                   warmup_transitions=30)
    params = out / 'live.yaml'
    params.write_text(yaml.safe_dump(doc))
    exe = graph.find_executable(graph.NodeSpec('dsrl', 'dsrl', 'dsrl', 'robot'))
    log_path = out / 'live_bringup.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([exe, 'bringup', '--sim', '--duration', str(seconds),
                                 '--params-file', str(params)],
                                env=bench_env(domain), stdout=log, stderr=subprocess.STDOUT)
    try:
        proc.wait(timeout=seconds + 120)
    except subprocess.TimeoutExpired:
        stop(proc)
    text = log_path.read_text()
    lines = TIMING.findall(text)
    if not lines:
        raise RuntimeError(f'no timing line from the policy node; see {log_path}')
    g = lines[-1]
    ups = [float(x) for x in re.findall(r'\[learner_node\].*updates \d+ \(([\d.]+)/s\)', text)]
    return {'cycles': int(g[0]), 'cycle_p50': float(g[1]), 'cycle_p99': float(g[2]),
            'cycle_p99_over_period': float(g[3]), 'obs_cmd_n': int(g[4]),
            'obs_cmd_p50': float(g[5]), 'obs_cmd_p99': float(g[6]), 'verified_n': int(g[7]),
            'verified_p50': float(g[8]), 'verified_p99': float(g[9]), 'weights_n': int(g[10]),
            'weights_p50': float(g[11]), 'weights_p99': float(g[12]),
            'learner_ups_live': float(np.median(ups[1:])) if len(ups) > 1 else float('nan'),
            'log': str(log_path)}


@contextlib.contextmanager
def bench_node(domain: int, name: str) -> Iterator:
    """Yield an rclpy node of this process on its own context in ``domain`` (local discovery)."""
    import rclpy
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node(name, context=ctx)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def publish_transitions(n: int, rate: float, topic: str, domain: int,
                        wait_for_subscriber: bool) -> None:
    """Publish ``n`` random push-task Transitions at ``rate`` Hz (the load generator of part 3)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from dsrl_msgs.msg import Transition

    with bench_node(domain, 'bench_publisher') as node:
        pub = node.create_publisher(Transition, topic,
                                    QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        rng = np.random.default_rng(0)
        if wait_for_subscriber:
            end = time.monotonic() + 60
            while pub.get_subscription_count() == 0 and time.monotonic() < end:
                time.sleep(0.1)
            if pub.get_subscription_count() == 0:
                raise RuntimeError('the learner never subscribed')
            time.sleep(1.0)
        t0 = time.monotonic()
        for i in range(n):
            m = Transition(robot_id='bench', episode_id=i // 15, step_index=i % 15, obs_dim=8,
                           chunk_length=4, action_dim=3, executed_steps=4, actor_version=0)
            m.obs = rng.standard_normal(8).astype(np.float32).tolist()
            m.next_obs = rng.standard_normal(8).astype(np.float32).tolist()
            m.noise = rng.standard_normal(12).astype(np.float32).tolist()
            m.action = rng.uniform(-1, 1, 12).astype(np.float32).tolist()
            m.reward = -4.0
            m.truncated = i % 15 == 14
            pub.publish(m)
            delay = t0 + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if (i + 1) % max(1, n // 10) == 0:
                print(f'  published {i + 1}/{n}', flush=True)
        print(f'published {n} in {time.monotonic() - t0:.3f} s', flush=True)


def _publisher(n: int, rate: float, topic: str, domain: int, wait: bool,
               log: pathlib.Path) -> subprocess.Popen:
    code = ('from dsrl.bench_runtime import publish_transitions as p; '
            f'p({n}, {rate}, {topic!r}, {domain}, {wait})')
    with open(log, 'w') as f:
        return subprocess.Popen([sys.executable, '-c', code], env=bench_env(domain), stdout=f,
                                stderr=subprocess.STDOUT)


def node_updates_per_s(log_text: str, sent: int) -> float:
    """
    Updates/s of the learner node over its whole receiving period, from its summary lines.

    The first line that shows updates and the last one before everything was received bound
    the period (per-line rates of a ~100 ms update are too coarse to take a median of).
    """
    line = re.compile(r'\[(\d+\.\d+)\] \[learner_node\]: buffer \d+, received (\d+) .*'
                      r'updates (\d+) \(')
    points = [(float(t), int(u)) for t, r, u in line.findall(log_text)
              if int(u) > 0 and int(r) < sent]
    if len(points) < 2:
        return 0.0
    (t0, u0), (t1, u1) = points[0], points[-1]
    return (u1 - u0) / (t1 - t0)


def learner_alone(n: int, rate: float, out: pathlib.Path, domain: int,
                  in_process_s: float = 30.0) -> dict:
    """
    Part 3: transitions lost at ``rate`` Hz, learner updates/s in the node vs in-process.

    The load generator (a publisher process at ``rate`` Hz) also runs during the in-process
    loop, publishing to no one, so both figures share the machine the same way and their ratio
    is the node's own cost; the in-process figure on a quiet machine is printed too.
    """
    from dsrl_core.policy.diffusion import load_policy
    from dsrl_core.rl.buffer import ReplayBuffer
    from dsrl_core.rl.learner_params import LearnerNodeParams
    from dsrl_core.rl.trainer import build_algorithm, Trainer

    doc = yaml.safe_load(pathlib.Path(graph.default_params_file()).read_text())
    lp = doc['learner_node']['ros__parameters']
    lp.update(data_dir=str(out / 'learner_alone'), resume=False, checkpoint_on_exit=False,
              checkpoint_every_s=0.0, warmup_transitions=256, utd_ratio=100000, cpu_nice=0,
              stats_period_s=2.0, sim=True)
    params = out / 'learner.yaml'
    params.write_text(yaml.safe_dump({'learner_node': doc['learner_node']}))
    env = bench_env(domain)
    key = out / 'bench.key'
    key.write_text(secrets.token_hex(32))
    env['DSRL_WEIGHTS_KEY_FILE'] = str(key)
    log_path = out / 'learner_alone.log'
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([sys.executable, '-m', 'dsrl_learner_node.learner_node',
                                 '--ros-args', '--params-file', str(params)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    pub_log = out / 'publisher.log'
    try:
        pub = _publisher(n, rate, lp['transitions_topic'], domain, True, pub_log)
        while pub.poll() is None:
            time.sleep(0.5)
            if proc.poll() is not None:
                raise RuntimeError(f'the learner node exited; see {log_path}')
        done = re.search(r'published \d+ in ([\d.]+) s', pub_log.read_text())
        if pub.returncode != 0 or done is None:
            raise RuntimeError(f'the publisher failed; see {pub_log}')
        sent_s = float(done.group(1))
        pattern = re.compile(r'received (\d+) \(')
        end = time.monotonic() + 30
        received = 0
        while time.monotonic() < end:
            found = pattern.findall(log_path.read_text())
            received = int(found[-1]) if found else 0
            if received >= n:
                break
            time.sleep(0.5)
    finally:
        stop(proc)
    text = log_path.read_text()
    ups_node = node_updates_per_s(text, n)
    rejected = [int(x) for x in re.findall(r'rejected (\d+),', text)]

    # the same loop in-process: Trainer.train in chunks of publish_every on a full buffer
    p = LearnerNodeParams(**{k: v for k, v in lp.items()
                             if k in LearnerNodeParams.__dataclass_fields__})
    torch.set_num_threads(p.torch_threads)
    base = load_policy()
    meta = base.meta
    buf = ReplayBuffer(meta.obs_dim, meta.noise_shape, meta.noise_shape, p.buffer_capacity)
    rng = np.random.default_rng(0)
    for i in range(n):
        buf.add(rng.standard_normal(8), rng.standard_normal((4, 3)), rng.uniform(-1, 1, (4, 3)),
                -4.0, rng.standard_normal(8), False, i % 15 == 14, 0)
    trainer = Trainer(build_algorithm(p, base), buf, p.utd_ratio, p.warmup_transitions,
                      p.batch_size, p.seed)
    trainer.train(p.publish_every)

    def rate_for(seconds: float) -> float:
        t0, done = time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            done += len(trainer.train(p.publish_every))
        return done / (time.monotonic() - t0)

    quiet = rate_for(in_process_s)
    load = _publisher(int(rate * (in_process_s + 30)), rate, lp['transitions_topic'], domain,
                      False, out / 'publisher_control.log')
    try:
        time.sleep(3.0)
        loaded = rate_for(in_process_s)
    finally:
        stop(load, timeout=10.0)
    return {'sent': n, 'rate': rate, 'sent_s': sent_s, 'received': received,
            'rejected': rejected[-1] if rejected else 0, 'ups_node': ups_node,
            'ups_in_process': loaded, 'ups_in_process_quiet': quiet, 'log': str(log_path)}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument('--seconds', type=float, default=60.0, help='live graph duration')
    ap.add_argument('--transitions', type=int, default=10000)
    ap.add_argument('--rate', type=float, default=100.0, help='transitions per second')
    ap.add_argument('--repeats', type=int, default=400, help='in-process timing repeats')
    ap.add_argument('--domain', type=int, default=77, help='ROS_DOMAIN_ID of the runs')
    ap.add_argument('--parts', default='1,2,3', help='which parts to run')
    ap.add_argument('--out', default='runs/bench_runtime')
    a = ap.parse_args(argv)
    out = pathlib.Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    parts = {int(x) for x in a.parts.split(',') if x}
    bare_p99 = float('nan')
    if 1 in parts:
        r = in_process(a.repeats)
        bare_p99 = r['bare_p99']
        print(f"[1] per-chunk work, 1 thread: with the noise actor p50 {r['steered_p50']:.3f} ms, "
              f"base policy alone p50 {r['base_p50']:.3f} ms -> steering overhead "
              f"{r['steered_p50'] / r['base_p50']:.3f}x (target <= 1.05x); bare sample() "
              f"p50 {r['bare_p50']:.3f} ms p99 {bare_p99:.3f} ms", flush=True)
    if 2 in parts:
        print(f'[2] live sim graph, real time, learner training alongside: {a.seconds:g} s ...',
              flush=True)
        r = live_graph(a.seconds, out, a.domain)
        ratio = r['obs_cmd_p99'] / bare_p99 if bare_p99 == bare_p99 else float('nan')
        print(f"[2] control cycle ({r['cycles']} commanding cycles) p50 {r['cycle_p50']:.2f} ms "
              f"p99 {r['cycle_p99']:.2f} ms -> p99 / period {r['cycle_p99_over_period']:.3f} "
              f"(target <= 0.25); observation -> command p50 {r['obs_cmd_p50']:.2f} ms p99 "
              f"{r['obs_cmd_p99']:.2f} ms = {ratio:.2f}x bare sample() p99 (target <= 1.5x); "
              f"weights publish -> verified ({r['verified_n']}) p50 {r['verified_p50']:.1f} ms "
              f"p99 {r['verified_p99']:.1f} ms (target <= 100 ms), -> applied "
              f"({r['weights_n']} swaps) p50 {r['weights_p50']:.0f} ms p99 "
              f"{r['weights_p99']:.0f} ms (at chunk boundaries: chunk = 400 ms, none between "
              f"episodes); "
              f"learner {r['learner_ups_live']:.0f} updates/s alongside. Log: {r['log']}",
              flush=True)
    if 3 in parts:
        print(f'[3] learner alone: {a.transitions} transitions at {a.rate:g} Hz ...', flush=True)
        r = learner_alone(a.transitions, a.rate, out, a.domain)
        lost = r['sent'] - r['received']
        print(f"[3] sent {r['sent']} in {r['sent_s']:.1f} s, received {r['received']} "
              f"(rejected {r['rejected']}) -> lost {lost} (target 0); learner updates/s in the "
              f"node {r['ups_node']:.2f} (while receiving) vs in-process "
              f"{r['ups_in_process']:.2f} (the same publisher running) "
              f"-> {r['ups_node'] / max(r['ups_in_process'], 1e-9):.2f}x (target >= 0.9x); "
              f"in-process on a quiet machine {r['ups_in_process_quiet']:.2f}. "
              f"Log: {r['log']}", flush=True)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
