"""Pure conversions of the sim node: sim state -> messages."""

from dsrl_core.sim.push_env import PushEnv
from dsrl_sim_node.convert import (
    camera_info_msg,
    clock_msg,
    image_msg,
    joint_state_msg,
    ns_to_time,
    object_pose_msg,
    time_to_ns,
)
import numpy as np
import pytest


def test_stamps_round_trip():
    for t in (0, 1, 100_000_000, 12 * 10 ** 9 + 7):
        assert time_to_ns(ns_to_time(t)) == t
    assert clock_msg(1_500_000_000).clock.sec == 1 and clock_msg(1_500_000_000).clock.nanosec \
        == 500_000_000
    with pytest.raises(ValueError, match='>= 0'):
        ns_to_time(-1)


def test_state_messages_share_stamp_and_values():
    env = PushEnv()
    obs, _ = env.reset(seed=1)
    js = joint_state_msg(('joint1', 'joint2', 'joint3'), obs, 42)
    assert js.name == ['joint1', 'joint2', 'joint3'] and time_to_ns(js.header.stamp) == 42
    np.testing.assert_array_equal(np.float32(js.position), obs[:3])
    np.testing.assert_array_equal(np.float32(js.velocity), obs[3:6])
    pose = object_pose_msg(obs, 'world', 42)
    assert (pose.pose.position.x, pose.pose.position.y) == (float(obs[6]), float(obs[7]))
    assert pose.header.frame_id == 'world' and pose.pose.orientation.w == 1.0
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    img = image_msg(rgb, 'cam', 42)
    assert (img.height, img.width, img.step, img.encoding) == (4, 5, 15, 'rgb8')
    assert bytes(img.data) == rgb.tobytes() and time_to_ns(img.header.stamp) == 42


def test_camera_info_pinhole():
    info = camera_info_msg(96, 96, 90.0, 'cam', 5)
    assert info.k[0] == pytest.approx(48.0) and info.k[2] == pytest.approx(47.5)
    assert info.p[10] == 1.0 and list(info.d) == [0.0] * 5
    with pytest.raises(ValueError, match='bad camera'):
        camera_info_msg(0, 96, 90.0, 'cam', 0)
