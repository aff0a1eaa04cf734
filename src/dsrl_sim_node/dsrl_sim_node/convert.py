"""
Pure conversions of the sim node: numpy/sim state -> ROS messages (no node, no spinning).

Stamps are integer nanoseconds; ``ns_to_time`` makes the builtin_interfaces/Time of them.
"""

from __future__ import annotations

import math
from typing import Sequence

from builtin_interfaces.msg import Time
from dsrl_core.images import fill_image_msg
from dsrl_core.sim.push_env import PUCK_RADIUS
from geometry_msgs.msg import PoseStamped
import numpy as np
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState

NS = 1_000_000_000


def ns_to_time(stamp_ns: int) -> Time:
    """Return a builtin_interfaces/Time for ``stamp_ns`` nanoseconds (must be >= 0)."""
    if stamp_ns < 0:
        raise ValueError(f'stamp must be >= 0 ns, got {stamp_ns}')
    return Time(sec=int(stamp_ns // NS), nanosec=int(stamp_ns % NS))


def time_to_ns(t: Time) -> int:
    """Return the nanoseconds of a builtin_interfaces/Time."""
    return int(t.sec) * NS + int(t.nanosec)


def clock_msg(stamp_ns: int) -> Clock:
    """Return the /clock message for sim time ``stamp_ns``."""
    return Clock(clock=ns_to_time(stamp_ns))


def joint_state_msg(names: Sequence[str], obs: np.ndarray, stamp_ns: int) -> JointState:
    """Return JointState (position, velocity) from a push-task observation [8]."""
    n = len(names)
    msg = JointState(name=list(names))
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.position = [float(v) for v in obs[:n]]
    msg.velocity = [float(v) for v in obs[n:2 * n]]
    return msg


def object_pose_msg(obs: np.ndarray, frame_id: str, stamp_ns: int) -> PoseStamped:
    """Return the puck pose (centre at half its height, identity orientation) from obs [8]."""
    msg = PoseStamped()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.pose.position.x, msg.pose.position.y = float(obs[6]), float(obs[7])
    msg.pose.position.z = float(PUCK_RADIUS / 2)
    msg.pose.orientation.w = 1.0
    return msg


def image_msg(rgb: np.ndarray, frame_id: str, stamp_ns: int) -> Image:
    """Return an rgb8 Image of ``rgb`` [H, W, 3]."""
    msg = fill_image_msg(Image(), rgb, 'rgb8')
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    return msg


def camera_info_msg(width: int, height: int, fovy_deg: float, frame_id: str,
                    stamp_ns: int) -> CameraInfo:
    """Return a pinhole CameraInfo (no distortion) for a camera with vertical field of view."""
    if width <= 0 or height <= 0 or not 0 < fovy_deg < 180:
        raise ValueError(f'bad camera: {width}x{height}, fovy {fovy_deg} deg')
    f = 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    msg = CameraInfo(width=int(width), height=int(height), distortion_model='plumb_bob')
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.d = [0.0] * 5
    msg.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg
