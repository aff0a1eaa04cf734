"""
rclpy <-> bag conversions shared by the recorder and the replayer (pure functions, no node).

* QoS: the recorder stores the publishers' offered QoS in the bag as rosbags ``Qos`` tuples and
  subscribes with a profile every publisher can serve (like ``ros2 bag record``): reliable only
  if all publishers are reliable, transient-local only if all are, a deep keep-last queue. The
  replayer publishes with the recorded reliability and durability.
* Message classes: ``pkg/msg/Name`` -> the generated Python class (for typed raw pub/sub).
"""

from __future__ import annotations

import importlib
from typing import Any, Sequence

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

_NS = 1_000_000_000


def import_message(msgtype: str) -> Any:
    """Return the Python class of ``pkg/msg/Name``; raise ValueError if it is not installed."""
    parts = msgtype.split('/')
    if len(parts) == 2:
        parts = [parts[0], 'msg', parts[1]]
    if len(parts) != 3:
        raise ValueError(f'{msgtype!r} is not a message type name (pkg/msg/Name)')
    try:
        return getattr(importlib.import_module(f'{parts[0]}.{parts[1]}'), parts[2])
    except (ImportError, AttributeError) as exc:
        raise ValueError(f'message type {msgtype} is not installed in this environment: '
                         f'{exc}') from exc


def _time(d: Any) -> QosTime:
    ns = int(d.nanoseconds)
    return QosTime(ns // _NS, ns % _NS)


def qos_to_bag(profile: QoSProfile) -> Qos:
    """Return a rosbags ``Qos`` of an rclpy profile (e.g. a publisher's offered QoS)."""
    return Qos(
        history=QosHistory[profile.history.name],
        depth=int(profile.depth),
        reliability=QosReliability[profile.reliability.name],
        durability=QosDurability[profile.durability.name],
        deadline=_time(profile.deadline),
        lifespan=_time(profile.lifespan),
        liveliness=QosLiveliness[profile.liveliness.name],
        liveliness_lease_duration=_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions))


def subscription_qos(offered: Sequence[QoSProfile], depth: int) -> QoSProfile:
    """Return a profile compatible with every offered profile, keep-last ``depth``."""
    reliable = bool(offered) and all(
        p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    latched = bool(offered) and all(
        p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def replay_qos(recorded: Sequence[Qos], min_depth: int = 100) -> QoSProfile:
    """
    Return the publisher profile of a replayed topic from its recorded offered QoS.

    Reliability and durability are the recorded ones (reliable / transient-local only if every
    recorded publisher was); the depth is the recorded one, at least ``min_depth`` for volatile
    topics (a deeper queue only avoids drops) and exactly as recorded for transient-local ones
    (a late subscriber gets as much history as it did originally). Nothing recorded: reliable,
    volatile, ``min_depth``.
    """
    reliable = all(q.reliability == QosReliability.RELIABLE for q in recorded)
    latched = bool(recorded) and all(q.durability == QosDurability.TRANSIENT_LOCAL
                                     for q in recorded)
    depth = max((q.depth for q in recorded), default=0)
    depth = max(1, depth) if latched else max(min_depth, depth)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        liveliness=LivelinessPolicy.AUTOMATIC)


def describe_qos(profile: QoSProfile) -> str:
    """Return e.g. ``reliable/transient_local depth 1``."""
    return (f'{profile.reliability.name.lower()}/{profile.durability.name.lower()} '
            f'depth {profile.depth}')

