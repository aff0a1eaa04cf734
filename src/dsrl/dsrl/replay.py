"""
``dsrl replay BAG``: republish a recorded bag on ROS 2 with its original timing.

Each selected topic gets a publisher of its recorded type with the recorded reliability and
durability (``dsrl.bag_ros.replay_qos``); the serialized messages are published unchanged, message
``i`` at ``start + (t_i - t_0) / rate`` (log times). ``--loop`` repeats until Ctrl-C, ``--topics``
selects topics, ``--wait-for-subscribers`` holds the start until every topic has a subscriber (so
that nothing is published into the void), ``--delay`` waits before the first message. A bag whose
recorder was killed is replayed up to its last recovered message (the damage is printed first).
At the end: messages published per topic.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import IO, Optional

from dsrl_core.bags.reader import BagError, open_bag
import rclpy
from rclpy.duration import Duration
from rclpy.qos import ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from tqdm import tqdm

from dsrl.bag_ros import describe_qos, import_message, replay_qos


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``dsrl replay``."""
    p.add_argument('bag', help='bag folder or .mcap file')
    p.add_argument('--rate', type=float, default=1.0, help='speed factor (2 = twice as fast)')
    p.add_argument('--topics', default='', help='comma-separated topics (default: all)')
    p.add_argument('--loop', action='store_true', help='start over at the end, until Ctrl-C')
    p.add_argument('--delay', type=float, default=0.5,
                   help='seconds between creating the publishers and the first message')
    p.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='S',
                   help='wait up to S seconds until every replayed topic has a subscriber')
    p.add_argument('--progress', action='store_true', help='show a progress bar')


def _sleep_until(target: float, stop: list[str]) -> bool:
    """Sleep until the monotonic time ``target`` in small steps; False if asked to stop."""
    while not stop:
        left = target - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, 0.05))
    return False


def replay(args: argparse.Namespace, out: IO[str]) -> int:
    """Run ``dsrl replay``; return the exit status."""
    if args.rate <= 0:
        print(f'dsrl replay: --rate must be positive, got {args.rate}', file=sys.stderr)
        return 2
    try:
        bag = open_bag(args.bag)
        topics = ([t.strip() for t in args.topics.split(',') if t.strip()]
                  or sorted(bag.topics))
        unknown = [t for t in topics if t not in bag.topics]
        if unknown:
            raise BagError(f'{args.bag}: no topic(s) {unknown} in this bag; it has '
                           f'{sorted(bag.topics)}')
        classes = {t: import_message(bag.topics[t].msgtype) for t in topics}
    except (BagError, ValueError) as exc:
        print(f'dsrl replay: {exc}', file=sys.stderr)
        return 2
    for note in bag.notes:
        out.write(f'dsrl replay: note: {note}\n')
    for damage in bag.damage:
        out.write(f'dsrl replay: damaged: {damage}\n')
    total = sum(bag.topics[t].count for t in topics)
    if total == 0:
        print(f'dsrl replay: {args.bag}: no messages on {topics}', file=sys.stderr)
        return 1
    # SIGINT and SIGTERM stop the replay between two messages
    stop: list[str] = []
    rclpy.init(args=['--ros-args'], signal_handler_options=SignalHandlerOptions.NO)
    old = {s: signal.signal(s, lambda n, _: stop.append(signal.Signals(n).name))
           for s in (signal.SIGINT, signal.SIGTERM)}
    node = rclpy.create_node('dsrl_replay')
    counts = dict.fromkeys(topics, 0)
    status = 0
    why = 'done'
    try:
        pubs = {}
        for t in topics:
            qos = replay_qos(bag.topics[t].qos)
            pubs[t] = node.create_publisher(classes[t], t, qos)
            out.write(f'dsrl replay: {t} ({bag.topics[t].msgtype}, {describe_qos(qos)}): '
                      f'{bag.topics[t].count} messages\n')
        out.write(f'dsrl replay: {total} messages on {len(topics)} topics from {bag.path} at '
                  f'rate {args.rate:g}{" (loop)" if args.loop else ""}\n')
        out.flush()
        if args.wait_for_subscribers > 0:
            end = time.monotonic() + args.wait_for_subscribers
            while time.monotonic() < end and not stop and not all(
                    p.get_subscription_count() > 0 for p in pubs.values()):
                time.sleep(0.05)
            alone = [t for t, p in pubs.items() if p.get_subscription_count() == 0]
            if alone:
                out.write(f'dsrl replay: no subscriber after {args.wait_for_subscribers:g} s on '
                          f'{", ".join(alone)}: replaying anyway\n')
        _sleep_until(time.monotonic() + args.delay, stop)
        passes = 0
        while not stop:
            passes += 1
            bar = tqdm(total=total, unit='msg', desc=f'replay {passes}', disable=not args.progress,
                       mininterval=1.0)
            t0: Optional[int] = None
            start = time.monotonic()
            for m in bag.messages(topics, decode=False):
                t0 = m.log_time_ns if t0 is None else t0
                if not _sleep_until(start + (m.log_time_ns - t0) / 1e9 / args.rate, stop):
                    break
                pubs[m.topic].publish(m.raw)
                counts[m.topic] += 1
                bar.update(1)
            bar.close()
            if not args.loop:
                break
        if stop:
            why = f'stopped by {stop[0]}'
        # reliable messages still in flight are delivered before the publishers go away
        for t, p in pubs.items():
            if p.qos_profile.reliability == ReliabilityPolicy.RELIABLE and not stop:
                p.wait_for_all_acked(Duration(seconds=5.0))
    except BagError as exc:
        print(f'dsrl replay: {exc}', file=sys.stderr)
        why, status = 'failed', 1
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    out.write(f'dsrl replay: {why}: published {sum(counts.values())} messages\n')
    for t in topics:
        out.write(f'  {t:45s} {counts[t]:8d}\n')
    out.flush()
    return status
