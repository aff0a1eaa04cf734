"""
``dsrl record``: record the DSRL topics of a running graph into a rosbag2 MCAP bag.

The topics (``dsrl_core.bags.recording.plan_topics``) are named by the params file the nodes use.
A topic is subscribed once a publisher of it appears in the ROS graph, with the publishers' type
and a QoS every one of them can serve (reliable only if all are, transient-local only if all are,
so the newest latched ActorWeights / EpisodeStatus arrive too; a 1000-deep queue). Subscriptions
are raw: the serialized CDR bytes are written unchanged with the log time (system clock, ns) of
their arrival (``dsrl_core.bags.writer``). The two derived records (stripped actor weights,
compressed images) are described in ``dsrl_core.bags.recording``.

Every ``flush_period_s`` the pending data goes to disk, so a recorder killed by SIGKILL loses at
most that much; SIGINT/SIGTERM or ``--duration`` close the bag properly. Output: one line per
topic when its recording starts, a progress line every ``status_period_s``, and at the end the
count per topic and where the bag is.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Callable, IO, Optional

from dsrl_core.bags.recording import (
    compress_image,
    IMAGE_MODES,
    load_params,
    plan_topics,
    provenance,
    RecordConfig,
    RecordTopic,
    strip_weights,
)
from dsrl_core.bags.types import make_typestore
from dsrl_core.bags.writer import BagWriteError, BagWriter
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from dsrl import graph
from dsrl.bag_ros import describe_qos, import_message, qos_to_bag, subscription_qos

# Seconds between looks at the ROS graph for publishers of topics not yet recorded.
DISCOVERY_PERIOD_S = 0.2


class Recorder(Node):
    """Subscribes (raw) to the planned topics as their publishers appear; writes the bag."""

    def __init__(self, cfg: RecordConfig, plan: list[RecordTopic], writer: BagWriter,
                 out: IO[str]) -> None:
        """Create the discovery, flush and status timers."""
        super().__init__('dsrl_recorder')
        self.cfg, self.writer, self.out = cfg, writer, out
        self.pending = {t.topic: t for t in plan}
        self.subs: dict[str, object] = {}
        self.received: dict[str, int] = {}
        self.sources: dict[str, str] = {}  # bag topic -> recorded topic
        self.last_image_ns: dict[str, int] = {}
        self.failed: Optional[str] = None
        self.create_timer(DISCOVERY_PERIOD_S, self.discover)
        self.create_timer(cfg.flush_period_s, self.flush)
        if cfg.status_period_s > 0:
            self.create_timer(cfg.status_period_s, self.status)
        self.discover()

    def say(self, text: str) -> None:
        """Write one progress line."""
        self.out.write(f'dsrl record: {text}\n')
        self.out.flush()

    def discover(self) -> None:
        """Subscribe to each planned topic whose publishers have appeared."""
        for topic, spec in list(self.pending.items()):
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue
            del self.pending[topic]
            types = sorted({i.topic_type for i in infos})
            if len(types) > 1:
                self.say(f'{topic} is published with several types {types}: recording '
                         f'{types[0]} only')
            msgtype = types[0]
            offered = [i.qos_profile for i in infos]
            qos = subscription_qos(offered, self.cfg.queue_depth)
            bag_topic = spec.bag_topic(self.cfg)
            try:
                cls = import_message(msgtype)
                self.writer.add_topic(bag_topic, spec.bag_type(self.cfg, msgtype),
                                      [qos_to_bag(p) for p in offered])
            except (ValueError, BagWriteError) as exc:
                self.say(f'not recording {topic}: {exc}')
                continue
            self.received[topic] = 0
            self.sources[bag_topic] = topic
            self.subs[topic] = self.create_subscription(
                cls, topic, self._callback(spec, bag_topic), qos, raw=True)
            renamed = f' as {bag_topic}' if bag_topic != topic else ''
            self.say(f'recording {topic} ({msgtype}, {describe_qos(qos)}){renamed}')

    def _callback(self, spec: RecordTopic, bag_topic: str) -> Callable[[bytes], None]:
        cfg, writer, typestore = self.cfg, self.writer, self.writer.typestore
        min_gap_ns = int(1e9 / cfg.image_hz) if spec.role == 'image' and cfg.image_hz else 0
        derive: Optional[Callable[[bytes], bytes]] = None
        if spec.role == 'image' and cfg.images in ('jpeg', 'png'):
            def derive(data: bytes) -> bytes:
                return compress_image(data, typestore, cfg.images, cfg.image_scale,
                                      cfg.jpeg_quality)
        elif spec.role == 'weights' and not cfg.full_weights:
            def derive(data: bytes) -> bytes:
                return strip_weights(data, typestore)
        skipped = [0]

        def on_message(data: bytes) -> None:
            now = time.time_ns()
            self.received[spec.topic] += 1
            if self.failed:
                return
            if min_gap_ns:  # at most image_hz frames per second
                if now - self.last_image_ns.get(spec.topic, -min_gap_ns) < min_gap_ns:
                    return
                self.last_image_ns[spec.topic] = now
            if derive is not None:
                try:
                    data = derive(data)
                except Exception as exc:  # wrong type or encoding: skip, never stop recording
                    skipped[0] += 1
                    if skipped[0] == 1:
                        self.say(f'skipping messages on {spec.topic} that cannot be turned into '
                                 f'{bag_topic}: {type(exc).__name__}: {exc}')
                    return
            try:
                writer.write(bag_topic, now, data)
            except (OSError, BagWriteError) as exc:
                self.failed = f'cannot write {bag_topic}: {exc}'
        return on_message

    def flush(self) -> None:
        """Hand the pending data to the OS (bounds what a kill loses)."""
        if self.failed:
            return
        try:
            self.writer.flush()
        except OSError as exc:
            self.failed = f'cannot flush the bag: {exc}'

    def status(self) -> None:
        """Write a progress line."""
        counts = ', '.join(f'{t} {n}' for t, n in self.writer.counts.items())
        self.say(f'{self.writer.message_count} messages, {self.writer.bytes_written / 1e6:.2f} '
                 f'MB in {len(self.writer.file_paths)} file(s) ({counts or "nothing yet"})')


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``dsrl record`` (one per RecordConfig field)."""
    d = RecordConfig()
    p.add_argument('-o', '--output', default='',
                   help='bag folder to create (default: <$DSRL_DATA or runs/dsrl>/bags/'
                        'dsrl_<time>)')
    p.add_argument('--params-file', default='',
                   help='params YAML naming the topics (default: the installed dsrl.yaml)')
    p.add_argument('--images', choices=IMAGE_MODES, default=d.images,
                   help='camera frames: off (default), raw, or jpeg/png as CompressedImage on '
                        '<topic>/compressed')
    p.add_argument('--image-hz', type=float, default=d.image_hz,
                   help=f'most frames per second recorded (0 = all; default {d.image_hz})')
    p.add_argument('--image-scale', type=float, default=d.image_scale,
                   help='scale of compressed frames (default 1)')
    p.add_argument('--jpeg-quality', type=int, default=d.jpeg_quality, help='JPEG quality')
    p.add_argument('--full-weights', action='store_true',
                   help='record ActorWeights with their payload (default: stripped, on '
                        '<weights topic>/stripped)')
    p.add_argument('--topics', default='',
                   help='comma-separated extra topics to record unchanged')
    p.add_argument('--max-bag-size', type=float, default=0.0, metavar='MB',
                   help='start a new file at this size in MB (0 = never)')
    p.add_argument('--max-bag-duration', type=float, default=0.0, metavar='S',
                   help='start a new file after this many seconds (0 = never)')
    p.add_argument('--compression', choices=('none', 'zstd'), default=d.compression,
                   help='MCAP chunk compression')
    p.add_argument('--flush-period', type=float, default=d.flush_period_s, metavar='S',
                   help=f'seconds between flushes to disk (default {d.flush_period_s})')
    p.add_argument('--status-period', type=float, default=d.status_period_s, metavar='S',
                   help='seconds between progress lines (0 = none)')
    p.add_argument('--duration', type=float, default=0.0,
                   help='stop after this many seconds (0 = until Ctrl-C)')


def config_from_args(args: argparse.Namespace) -> RecordConfig:
    """Return the RecordConfig of parsed ``dsrl record`` arguments (ValueError if invalid)."""
    return RecordConfig(
        output=args.output, params_file=args.params_file, images=args.images,
        image_hz=args.image_hz, image_scale=args.image_scale, jpeg_quality=args.jpeg_quality,
        full_weights=args.full_weights,
        extra_topics=tuple(t.strip() for t in args.topics.split(',') if t.strip()),
        max_bag_size_mb=args.max_bag_size, max_bag_duration_s=args.max_bag_duration,
        compression=args.compression, flush_period_s=args.flush_period,
        status_period_s=args.status_period, duration_s=args.duration)


def record(args: argparse.Namespace, out: IO[str]) -> int:
    """Run ``dsrl record`` until stopped; return the exit status."""
    try:
        cfg = config_from_args(args)
        params_file = os.path.abspath(cfg.params_file or graph.default_params_file())
        plan = plan_topics(load_params(params_file), cfg)
        bag_dir = cfg.output_dir()
        writer = BagWriter(bag_dir, make_typestore(),
                           max_bytes=int(cfg.max_bag_size_mb * 1e6),
                           max_duration_s=cfg.max_bag_duration_s, compression=cfg.compression,
                           provenance=provenance(cfg, params_file))
        writer.open()
    except (ValueError, OSError, BagWriteError) as exc:
        print(f'dsrl record: {exc}', file=sys.stderr)
        return 2
    out.write(f'dsrl record: bag {bag_dir}: waiting for publishers of '
              f'{", ".join(t.topic for t in plan)} (params {params_file})\n')
    out.flush()
    # SIGINT (Ctrl-C, dsrl bringup) and SIGTERM (docker stop) end the loop; the bag is closed
    rclpy.init(args=['--ros-args'], signal_handler_options=SignalHandlerOptions.NO)
    node: Optional[Recorder] = None
    why = 'stopped'
    stop: list[str] = []
    old = {s: signal.signal(s, lambda n, _: stop.append(signal.Signals(n).name))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        node = Recorder(cfg, plan, writer, out)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        end = time.monotonic() + cfg.duration_s if cfg.duration_s > 0 else None
        while rclpy.ok() and not node.failed and not stop:
            executor.spin_once(timeout_sec=0.1)
            if end is not None and time.monotonic() >= end:
                why = f'duration {cfg.duration_s:g} s elapsed'
                break
    except (KeyboardInterrupt, ExternalShutdownException):
        why = 'interrupted'
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if stop:
            why = f'stopped by {stop[0]}'
        failed = node.failed if node is not None else None
        try:
            files = writer.close()
        except OSError as exc:
            failed, files = f'cannot finish the bag: {exc}', writer.files
        received: dict[str, int] = {}
        missing: list[str] = []
        if node is not None:
            received = {b: node.received[t] for b, t in node.sources.items()}
            missing = sorted(node.pending)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    lines = [f'dsrl record: {why}: {writer.message_count} messages in {len(files)} file(s), '
             f'{sum(os.path.getsize(os.path.join(bag_dir, f.path)) for f in files) / 1e6:.2f} '
             f'MB, bag {bag_dir}']
    for topic, conn in writer.connections.items():
        n = received.get(topic, writer.counts[topic])
        extra = f' ({n} received)' if n != writer.counts[topic] else ''
        lines.append(f'  {topic:45s} {conn.msgtype:35s} {writer.counts[topic]:8d}{extra}')
    if missing:
        lines.append(f'  no publisher appeared (not recorded): {", ".join(missing)}')
    out.write('\n'.join(lines) + '\n')
    out.flush()
    if failed:
        print(f'dsrl record: {failed}', file=sys.stderr)
        return 1
    return 0
