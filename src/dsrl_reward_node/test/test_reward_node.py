"""Integration tests: the reward node as a real process, fed rendered sim frames over DDS."""

import subprocess
import sys
import time

from dsrl_core.sim.push_env import HOME_QPOS, JOINT_LIMITS, PushEnv
import numpy as np
import pytest

from dsrl_msgs.msg import EpisodeStatus as S
from dsrl_msgs.srv import EpisodeCommand as C
from dsrl_msgs.srv import HumanLabel

pytestmark = pytest.mark.ros


@pytest.fixture(scope='module')
def frames():
    with PushEnv(render_size=(96, 96)) as env:
        env.reset(seed=0, options={'object_xy': (0.265, 0.005)})
        inside = env.render().copy()
        env.reset(seed=0, options={'object_xy': (0.26, 0.16)})
        outside = env.render().copy()
    return inside, outside


def test_detector_success_reward_and_sim_reset(run, frames):
    inside, outside = frames
    proc, d = run(k_consecutive=3, result_hold_s=0.3)
    d.frame = outside
    d.spin(0.5)
    res = d.command(C.Request.COMMAND_START)
    assert res.accepted and res.phase == S.PHASE_RUNNING and res.episode_id == 1
    assert not d.command(C.Request.COMMAND_START).accepted  # already running
    d.spin(0.5)
    d.frame = inside
    st = d.wait_phase(S.PHASE_SUCCESS, reason='detector')
    assert st.success and st.episode_id == 1 and st.human_label == S.LABEL_NONE
    d.wait_phase(S.PHASE_READY, reason='sim_reset')
    assert d.resets == 1
    phases = [p for p, _ in d.phases()]
    assert phases[-4:] == [S.PHASE_RUNNING, S.PHASE_SUCCESS, S.PHASE_RESETTING, S.PHASE_READY] \
        or S.PHASE_RESETTING in phases
    assert d.rewards[-1] == 0.0 and set(d.rewards[:-1]) == {-1.0} and len(d.rewards) >= 4
    assert st.episode_return == pytest.approx(sum(d.rewards))
    # every reward is stamped with a frame the driver published, in order, for episode 1
    stamps = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in d.reward_msgs]
    assert set(stamps) <= d.image_stamps and stamps == sorted(stamps)
    assert all(m.header.frame_id == 'camera' and m.episode_id == 1 for m in d.reward_msgs)
    last = d.reward_msgs[-1]
    assert last.success and last.terminated and not last.truncated
    assert not any(m.success or m.terminated or m.truncated for m in d.reward_msgs[:-1])
    dec = [m for m in d.detections if m.decision]
    assert dec and dec[0].consecutive == 3 and dec[0].method == 'color'
    assert all(m.object_visible for m in d.detections)
    assert d.debug and (d.debug[-1].height, d.debug[-1].width) == (96, 96)


def test_timeout_human_label_bad_frames_camera_loss(run, frames):
    inside, outside = frames
    proc, d = run(time_limit_s=1.0, camera_timeout_s=0.5, result_hold_s=0.2)
    d.frame = outside
    d.spin(0.3)
    assert d.command(C.Request.COMMAND_START).accepted
    st = d.wait_phase(S.PHASE_TIMEOUT, reason='time_limit')
    assert not st.success and 9 <= st.length <= 12
    # The last reward of the episode may arrive after the status (two topics, no ordering).
    assert d.spin(3.0, lambda: d.reward_msgs and d.reward_msgs[-1].truncated)
    assert not d.reward_msgs[-1].terminated
    d.wait_phase(S.PHASE_READY)
    # human label overrides the detector (the puck is outside)
    assert not d.call(d.label_client, HumanLabel.Request(success=True)).accepted  # reset
    assert d.command(C.Request.COMMAND_START).accepted
    d.spin(0.3)
    res = d.call(d.label_client, HumanLabel.Request(success=True, episode_id=2, note='t'))
    assert res.accepted, res.message
    st = d.wait_phase(S.PHASE_SUCCESS, reason='human_label')
    assert st.success and st.human_label == S.LABEL_SUCCESS and st.episode_id == 2
    d.wait_phase(S.PHASE_READY)
    # malformed frames are counted and rejected, the node keeps running
    from sensor_msgs.msg import Image
    for _ in range(3):
        d.image_pub.publish(Image(encoding='rgb8', height=96, width=96, step=288, data=b'x' * 10))
    d.spin(0.3)
    assert proc.poll() is None
    # camera lost while RUNNING -> ABORTED
    assert d.command(C.Request.COMMAND_START).accepted
    d.spin(0.3)
    d.frame = None
    t0 = time.monotonic()
    st = d.wait_phase(S.PHASE_ABORTED, reason='camera_lost')
    assert time.monotonic() - t0 < 2.0 and st.episode_id == 3 and not st.success
    d.wait_phase(S.PHASE_READY, reason='sim_reset')  # the sim reset needs no camera
    res = d.command(C.Request.COMMAND_START)
    assert not res.accepted and 'camera not healthy' in res.message
    d.frame = outside
    d.spin(0.5)
    assert d.command(C.Request.COMMAND_START).accepted


def test_real_robot_home_path_and_teleop(run, ros_env, tmp_path):
    proc, d = run(sim_reset=False, sim=False, result_hold_s=0.2, max_step=0.1, jog_step=0.05)
    d.frame = np.zeros((96, 96, 3), np.uint8)
    d.joints = np.zeros(3)
    d.echo_commands = True
    teleop = subprocess.Popen([sys.executable, '-m', 'dsrl_reward_node.teleop_cli'],
                              env=ros_env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        d.spin(6.0)  # teleop discovers the node and receives the latched episode status
        assert d.command(C.Request.COMMAND_START).accepted
        d.spin(0.5)
        teleop.stdin.write(b'qqw')
        teleop.stdin.flush()
        d.spin(1.0)
        assert d.commands == [], 'teleop moved the arm outside RESETTING'
        assert d.command(C.Request.COMMAND_ABORT).accepted
        d.wait_phase(S.PHASE_ABORTED, reason='test')
        d.wait_phase(S.PHASE_RESETTING)
        assert d.spin(10.0, lambda: np.allclose(d.joints, HOME_QPOS))
        path = np.array([c for _, c in d.commands])
        steps = np.abs(np.diff(np.vstack([np.zeros(3), path]), axis=0))
        assert len(path) >= 15 and steps.max() <= 0.1 + 1e-9
        assert np.all(path >= JOINT_LIMITS[:, 0]) and np.all(path <= JOINT_LIMITS[:, 1])
        d.spin(0.5)
        assert d.statuses[-1].phase == S.PHASE_RESETTING  # waits for the human confirmation
        n = len(d.commands)
        teleop.stdin.write(b'q')
        teleop.stdin.flush()
        assert d.spin(3.0, lambda: len(d.commands) > n)
        np.testing.assert_allclose(d.commands[-1][1], HOME_QPOS + [0.05, 0, 0])
        teleop.stdin.write(b'c')
        teleop.stdin.flush()
        d.wait_phase(S.PHASE_READY, reason='teleop_confirm')
        teleop.stdin.write(b'x')
        teleop.stdin.flush()
        out = teleop.communicate(timeout=10)[0].decode()
    finally:
        if teleop.poll() is None:
            teleop.kill()
    assert teleop.returncode == 0, out
    assert out.count('refused: jogging only during RESETTING (phase is RUNNING)') == 3, out


def test_realsense_recording_source(run, ros_env, tmp_path, frames):
    """image_source realsense with a recorded file the test makes: detection and camera loss."""
    from dsrl_core.detect.camera import write_recording
    inside, outside = frames
    path = tmp_path / 'rec.db3'
    # playback runs in real time from the node's start: 6 s of 'outside' leave room for a slow
    # start-up (the START below comes after READY), then 1 s of 'inside', then the file ends
    write_recording(str(path), [outside] * 180 + [inside] * 30, fps=30)
    proc, d = run(image_source='realsense', camera_file=str(path), camera_fps=30,
                  camera_timeout_s=0.5, result_hold_s=0.2)
    # READY comes at start-up, before playback delivers its first frame: until then the node
    # rightly refuses START ('camera not healthy'), so ask again for a few seconds
    deadline = time.monotonic() + 4.0
    res = d.command(C.Request.COMMAND_START)
    while not res.accepted and 'camera not healthy' in res.message and time.monotonic() < deadline:
        d.spin(0.2)
        res = d.command(C.Request.COMMAND_START)
    assert res.accepted, res.message
    st = d.wait_phase(S.PHASE_SUCCESS, timeout=20.0, reason='detector')
    assert st.episode_id == 1
    # detections and status are different topics: the positive one may arrive after the status
    assert d.spin(5.0, lambda: any(m.decision for m in d.detections)), 'no positive detection'
    assert any(not m.decision for m in d.detections)
    d.wait_phase(S.PHASE_READY)  # the recording ends: the camera is lost, START is refused
    d.spin(2.0)
    assert not d.command(C.Request.COMMAND_START).accepted


def test_no_camera_exits_with_clear_error(ros_env):
    import pyrealsense2 as rs
    if len(rs.context().query_devices()) > 0:
        pytest.skip('a RealSense is connected')
    out = subprocess.run([sys.executable, '-m', 'dsrl_reward_node.reward_node', '--ros-args',
                          '-p', 'image_source:=realsense'], env=ros_env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2
    assert 'no RealSense camera found' in out.stderr and 'Traceback' not in out.stderr


def test_bad_parameter_exits_with_clear_error(ros_env):
    out = subprocess.run([sys.executable, '-m', 'dsrl_reward_node.reward_node', '--ros-args',
                          '-p', 'detector:=magic'], env=ros_env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2
    assert "detector must be one of ('color', 'classifier'), got 'magic'" in out.stderr
