"""
The ROS-free bag commands: ``info``, ``analyze``, ``to-buffer``, ``to-demos``.

They are subcommands of ``dsrl`` (the bringup CLI adds them) and of
``python -m dsrl_core.bags`` (no ROS needed). A bag that cannot be read, or options that do not
fit, give one line on stderr naming the file and the problem and exit status 1 (2 for usage
errors), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Optional, Sequence

COMMANDS = ('info', 'analyze', 'to-buffer', 'to-demos')


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the bag subcommands to a subparsers object."""
    p = sub.add_parser('info', help='topics, counts, damage and provenance of bags')
    p.add_argument('bags', nargs='+', help='bag folders or .mcap files')
    p.add_argument('--provenance', action='store_true',
                   help='also print the stored configuration, git revision and checkpoints')

    p = sub.add_parser('analyze', help='success, returns, actor versions, timing: CSV, PNG, '
                                       'summary.md')
    p.add_argument('bags', nargs='+', help='bag folders or .mcap files, in run order')
    p.add_argument('-o', '--out', default='',
                   help='output folder (default: <first bag>_analysis next to it)')
    p.add_argument('--window', type=int, default=20, help='episodes in the moving success rate')
    p.add_argument('--progress', action='store_true', help='show progress bars')

    p = sub.add_parser('to-buffer', help='recorded transitions into a replay buffer (.npz)')
    p.add_argument('bags', nargs='+', help='bag folders or .mcap files')
    p.add_argument('-o', '--out', required=True,
                   help='replay buffer file (ReplayBuffer.save format, as replay.npz of a '
                        'learner checkpoint)')
    p.add_argument('--capacity', type=int, default=0, help='buffer capacity (0 = all)')
    p.add_argument('--topic', default='/dsrl/transitions', help='transitions topic')
    p.add_argument('--robot-ids', default='*', help="comma-separated robot ids ('*' = any)")
    p.add_argument('--progress', action='store_true', help='show progress bars')

    p = sub.add_parser('to-demos', help='teleop bags into BC demonstrations (.npz, the format '
                                        'of dsrl_core.sim.demos)')
    p.add_argument('bags', nargs='+', help='bag folders or .mcap files')
    p.add_argument('-o', '--out', required=True, help='demonstrations file (.npz)')
    p.add_argument('--hz', type=float, default=10.0,
                   help='steps per second (the control rate; 0 = one step per command)')
    p.add_argument('--segment', choices=('auto', 'status', 'gap'), default='auto',
                   help='episodes from episode_status RUNNING spans, or command pauses')
    p.add_argument('--gap', type=float, default=2.0,
                   help='seconds without commands that end an episode (gap segmentation)')
    p.add_argument('--only-success', action='store_true', help='keep successful episodes only')
    p.add_argument('--joint-names', default='joint1,joint2,joint3',
                   help='joint names in command order')
    p.add_argument('--progress', action='store_true', help='show progress bars')


def run(args: argparse.Namespace, out: IO[str]) -> int:
    """Run one of the bag subcommands; return the exit status."""
    from dsrl_core.bags.reader import BagError
    try:
        return _COMMANDS[args.command](args, out)
    except (BagError, ValueError, OSError) as exc:
        print(f'dsrl {args.command}: {exc}', file=sys.stderr)
        return 1


def _info(args: argparse.Namespace, out: IO[str]) -> int:
    from dsrl_core.bags.reader import open_bag
    for path in args.bags:
        bag = open_bag(path)
        out.write(bag.describe() + '\n')
        if args.provenance:
            for key, value in sorted(bag.provenance.items()):
                out.write(f'  {key}: {value}\n')
    return 0


def _analyze(args: argparse.Namespace, out: IO[str]) -> int:
    from dsrl_core.bags.analysis import AnalysisConfig, analyze
    target = args.out or os.path.abspath(args.bags[0]).rstrip('/') + '_analysis'
    result = analyze(args.bags, target, AnalysisConfig(window=args.window), args.progress)
    for d in result.bags:
        for damage in d.bag.damage:
            out.write(f'damaged: {damage}\n')
    out.write(f'{len(result.episodes)} episodes, success rate {result.success_rate:.3f}; '
              f'{len(result.versions)} actor version(s); {len(result.latency)} timing '
              f'metric(s)\n')
    for name, why in result.skipped.items():
        out.write(f'{name} not drawn: {why}\n')
    out.write(f'wrote {len(result.files)} files to {result.out_dir} (summary.md)\n')
    return 0


def _to_buffer(args: argparse.Namespace, out: IO[str]) -> int:
    from dsrl_core.bags.learn import load_transitions
    if args.capacity < 0:
        raise ValueError(f'--capacity must be >= 0, got {args.capacity}')
    ids = tuple(r.strip() for r in args.robot_ids.split(',') if r.strip()) or ('*',)
    buffer, report = load_transitions(args.bags, capacity=args.capacity, topic=args.topic,
                                      robot_ids=ids, progress=args.progress)
    buffer.save(args.out)
    out.write(f'{report}\nwrote {len(buffer)} transitions (obs {buffer.obs_dim}, noise '
              f'{buffer.noise_shape}) to {args.out}\n')
    return 0


def _to_demos(args: argparse.Namespace, out: IO[str]) -> int:
    import json

    from dsrl_core.bags.learn import bag_to_demos, DemoConfig
    from dsrl_core.sim.demos import save_demos
    cfg = DemoConfig(hz=args.hz, segment=args.segment, gap_s=args.gap,
                     only_success=args.only_success,
                     joint_names=tuple(j.strip() for j in args.joint_names.split(',')
                                       if j.strip()))
    demos = bag_to_demos(args.bags, cfg, progress=args.progress)
    save_demos(demos, args.out)
    meta = json.loads(str(demos['meta_json']))
    out.write(f'wrote {args.out}: {len(demos["episode_ends"])} episodes '
              f'({int(demos["success"].sum())} successful), {len(demos["obs"])} steps at '
              f'{meta["sampling"]}; skipped: {meta["skipped"] or "nothing"}\n')
    return 0


_COMMANDS = {'info': _info, 'analyze': _analyze, 'to-buffer': _to_buffer, 'to-demos': _to_demos}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m dsrl_core.bags``."""
    parser = argparse.ArgumentParser(prog='python -m dsrl_core.bags',
                                     description='Read, analyse and learn from DSRL bags '
                                                 '(no ROS needed).')
    add_commands(parser.add_subparsers(dest='command', required=True))
    return run(parser.parse_args(argv), sys.stdout)
