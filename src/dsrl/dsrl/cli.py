"""
The ``dsrl`` command: ``dsrl bringup`` starts the DSRL node graph without ros2 launch.

``dsrl bringup [--sim] [--role robot|learner|all] [--params-file F] [--lockstep] [--duration S]``
starts every node of :mod:`dsrl.graph` for the role as its own OS process (in its own process
group) with ``--ros-args --params-file F -p ...``, prefixes and forwards their output, and stops
them all on Ctrl-C / SIGTERM / the end of ``--duration``: SIGINT first, SIGTERM after
``--stop-timeout`` seconds, SIGKILL after as many again. If a node exits by itself, the others are
stopped and the exit status is 1; a clean requested stop exits 0. ``--record [DIR]`` adds the
recorder (``dsrl record``) as one more process, started first.

Bags (rosbag2 MCAP): ``dsrl record`` (:mod:`dsrl.record`) and ``dsrl replay`` (:mod:`dsrl.replay`)
speak ROS 2; ``dsrl info``, ``dsrl analyze``, ``dsrl to-buffer`` and ``dsrl to-demos`` need no ROS
(:mod:`dsrl_core.bags.cli`). Errors in them print one line and exit non-zero, no traceback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Optional

from dsrl_core.bags import cli as bag_cli
import yaml

from dsrl import graph, record, replay

CLEAN_CODES = (0, -signal.SIGINT, 128 + signal.SIGINT)


class Supervisor:
    """Child processes with prefixed output and an escalating shutdown."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.children: list[tuple[str, subprocess.Popen, threading.Thread]] = []

    def say(self, name: str, text: str) -> None:
        """Write one prefixed line."""
        with self.lock:
            self.out.write(f'[{name}] {text}\n')
            self.out.flush()

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        """Start ``cmd`` in its own process group and forward its output line by line."""
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        thread = threading.Thread(target=self._forward, args=(name, proc), daemon=True)
        thread.start()
        self.children.append((name, proc, thread))
        self.say('dsrl', f'started {name} (pid {proc.pid})')
        return proc

    def _forward(self, name: str, proc: subprocess.Popen) -> None:
        for raw in iter(proc.stdout.readline, b''):
            self.say(name, raw.decode('utf-8', 'replace').rstrip('\n'))
        proc.stdout.close()

    def exited(self) -> list[tuple[str, int]]:
        """Return (name, exit code) of the children that have exited."""
        return [(name, proc.returncode) for name, proc, _ in self.children
                if proc.poll() is not None]

    def _signal_alive(self, sig: int) -> None:
        for name, proc, _ in self.children:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass

    def _wait_all(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(proc.poll() is not None for _, proc, _ in self.children):
                return True
            time.sleep(0.05)
        return all(proc.poll() is not None for _, proc, _ in self.children)

    def shutdown(self, timeout: float) -> bool:
        """Stop every child (SIGINT, then SIGTERM, then SIGKILL); True if all stopped cleanly."""
        clean = True
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, timeout),
                          (signal.SIGKILL, 5.0)):
            alive = [name for name, proc, _ in self.children if proc.poll() is None]
            if not alive:
                break
            if sig != signal.SIGINT:
                clean = False
                self.say('dsrl', f'{", ".join(alive)} still running: sending {sig.name}')
            self._signal_alive(sig)
            if self._wait_all(wait):
                break
        for name, proc, thread in self.children:
            thread.join(timeout=2.0)
            if proc.returncode not in CLEAN_CODES:
                clean = False
                self.say('dsrl', f'{name} exited with code {proc.returncode}')
        return clean


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``dsrl`` command."""
    parser = argparse.ArgumentParser(prog='dsrl', description='DSRL for ROS 2.')
    sub = parser.add_subparsers(dest='command', required=True)
    b = sub.add_parser('bringup', help='start the DSRL node graph (each node its own process)')
    b.add_argument('--sim', action='store_true',
                   help='simulated arm: sim node, sim resets, a weights key generated for the run')
    b.add_argument('--role', choices=graph.ROLES, default='all',
                   help='robot (sim/reward/policy), learner, or all (default)')
    b.add_argument('--params-file', default='',
                   help='params YAML (default: the installed share/dsrl/config/dsrl.yaml)')
    b.add_argument('--lockstep', action='store_true',
                   help='sim only: lockstep simulation on /clock (use_sim_time on every node)')
    b.add_argument('--use-sim-time', action='store_true', help='run every node on /clock')
    b.add_argument('--robots', type=int, default=1,
                   help='robots feeding the one learner: robot nodes run once per robot in '
                        'namespaces /arm0, /arm1, ... (default 1, no namespace)')
    b.add_argument('--duration', type=float, default=0.0,
                   help='stop everything after this many seconds (0 = until Ctrl-C)')
    b.add_argument('--only', default='',
                   help='comma-separated node names: start only these nodes of the role')
    b.add_argument('--stop-timeout', type=float, default=10.0,
                   help='seconds to wait after SIGINT (and again after SIGTERM) before escalating')
    b.add_argument('--record', nargs='?', const='', default=None, metavar='DIR',
                   help='also record a bag (dsrl record) into DIR (default: a new folder under '
                        '<$DSRL_DATA or runs/dsrl>/bags/)')
    b.add_argument('--record-images', choices=('off', 'raw', 'jpeg', 'png'), default='off',
                   help='camera frames in the recording (default off)')
    b.add_argument('--dry-run', action='store_true', help='print the commands and exit')
    record.add_arguments(sub.add_parser(
        'record', help='record the DSRL topics into a rosbag2 MCAP bag'))
    replay.add_arguments(sub.add_parser(
        'replay', help='republish a bag on ROS 2 with its original timing'))
    bag_cli.add_commands(sub)
    return parser


def wait_for_key(path: str, sup: Supervisor, stop: threading.Event, timeout: float) -> bool:
    """Wait until the learner has written the run's key file; False if it never came."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not stop.is_set():
        if os.path.isfile(path) and os.path.getsize(path) > 0:
            return True
        if sup.exited():
            return False
        time.sleep(0.05)
    return False


def bringup(args: argparse.Namespace, out: IO[str]) -> int:
    """Run the graph until stopped; return the exit status."""
    only = [n.strip() for n in args.only.split(',') if n.strip()]
    try:
        nodes = graph.select(args.role, args.sim, only)
        options = graph.make_options(args.sim, args.use_sim_time, args.lockstep,
                                     robots=args.robots)
        params_file = os.path.abspath(args.params_file or graph.default_params_file())
        if not os.path.isfile(params_file):
            raise FileNotFoundError(f'params file {params_file} does not exist')
        commands = [(i, [graph.find_executable(i.node)] + graph.ros_args(i, params_file, options))
                    for i in graph.instances(nodes, args.robots)]
        if args.record and os.path.exists(args.record):
            raise ValueError(f'--record: {args.record} exists already')
    except (ValueError, FileNotFoundError) as exc:
        print(f'dsrl bringup: {exc}', file=sys.stderr)
        return 2
    recorder = (graph.record_command(params_file, os.path.abspath(args.record) if args.record
                                     else '', args.record_images)
                if args.record is not None else None)
    if args.dry_run:
        if recorder:
            out.write(f'recorder: {" ".join(recorder)}\n')
        for i, cmd in commands:
            out.write(f'{i.label}: {" ".join(cmd)}\n')
        return 0
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    run_dir: Optional[str] = None
    key_path = ''
    if args.robots > 1:
        # namespaced processes need the params blocks under '/**/<node>' keys: a derived copy
        run_dir = tempfile.mkdtemp(prefix='dsrl-run-')
        derived = os.path.join(run_dir, 'params.yaml')
        with open(params_file) as f:
            doc = yaml.safe_load(f)
        with open(derived, 'w') as f:
            yaml.safe_dump(graph.any_namespace_params(doc), f)
        commands = [(i, [a if a != params_file else derived for a in cmd])
                    for i, cmd in commands]
    if graph.needs_generated_key(nodes, args.sim, env):
        if not any(n.name == 'learner_node' for n in nodes):
            print("dsrl bringup: sim mode without the learner needs the learner's key: set "
                  f'{graph.KEY_FILE_ENV} to the file the learner uses', file=sys.stderr)
            return 2
        run_dir = run_dir or tempfile.mkdtemp(prefix='dsrl-run-')
        key_path = os.path.join(run_dir, 'weights.key')
        env[graph.KEY_FILE_ENV] = key_path

    stop = threading.Event()
    reason = {'why': ''}

    def on_signal(signum: int, frame: object) -> None:
        reason['why'] = signal.Signals(signum).name
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    sup = Supervisor(out)
    failed = False
    try:
        sup.say('dsrl', f'bringup role {args.role}{" (sim)" if args.sim else ""}, params '
                        f'{params_file}: {", ".join(i.label for i, _ in commands)}'
                + (' + recorder' if recorder else '')
                + (f' ({args.robots} robots: {", ".join(options["robots"])})'
                   if args.robots > 1 else '')
                + (f'; weights key for this run: {key_path}' if key_path else ''))
        if recorder:  # first, so that it is subscribed when the nodes start publishing
            sup.start('recorder', recorder, env)
        # the learner first, so that nodes verifying weights find the run's key
        ordered = sorted(commands, key=lambda c: c[0].node.name != 'learner_node')
        for inst, cmd in ordered:
            n = inst.node
            if stop.is_set():
                break
            if key_path and n.uses_key and n.name != 'learner_node':
                if not wait_for_key(key_path, sup, stop, 60.0):
                    if not stop.is_set():
                        sup.say('dsrl', f'the learner wrote no key to {key_path}: not starting '
                                        f'{inst.label}')
                        failed = True
                    break
            sup.start(inst.label, cmd, env)
        end = time.monotonic() + args.duration if args.duration > 0 else None
        while not stop.is_set() and not failed:
            dead = sup.exited()
            if dead:
                for name, code in dead:
                    sup.say('dsrl', f'{name} exited unexpectedly with code {code}; stopping '
                                    'the others')
                failed = True
                break
            if end is not None and time.monotonic() >= end:
                reason['why'] = f'duration {args.duration:g} s elapsed'
                break
            time.sleep(0.1)
        if reason['why']:
            sup.say('dsrl', f'{reason["why"]}: stopping {len(sup.children)} node(s)')
    finally:
        clean = sup.shutdown(args.stop_timeout)
        for s, handler in old.items():
            signal.signal(s, handler)
        if run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
    if failed or not clean:
        return 1
    sup.say('dsrl', 'all nodes stopped cleanly')
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the ``dsrl`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == 'bringup':
        return bringup(args, sys.stdout)
    if args.command == 'record':
        return record.record(args, sys.stdout)
    if args.command == 'replay':
        return replay.replay(args, sys.stdout)
    return bag_cli.run(args, sys.stdout)


if __name__ == '__main__':
    sys.exit(main())
