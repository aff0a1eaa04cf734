"""Integration tests: the sim node (lockstep) with the reward node, real processes over DDS."""

import time

from dsrl_core.sim.push_env import PushEnv
from dsrl_core.sim.runner import STEP_NS
from geometry_msgs.msg import PoseStamped
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rosproc import Peer
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from dsrl_msgs.msg import EpisodeStatus, StepReward
from dsrl_msgs.srv import EpisodeCommand

pytestmark = pytest.mark.ros
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def ns(stamp):
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class SimPeer(Peer):
    def __init__(self, ros_env):
        super().__init__(ros_env, 'sim_test')
        n = self.node
        self.joints, self.images, self.poses, self.rewards, self.infos = {}, {}, {}, {}, {}
        self.statuses = []
        n.create_subscription(JointState, '/joint_states',
                              lambda m: self.joints.__setitem__(ns(m.header.stamp), m), 100)
        n.create_subscription(Image, '/camera/camera/color/image_raw',
                              lambda m: self.images.__setitem__(ns(m.header.stamp), m),
                              qos_profile_sensor_data)
        n.create_subscription(CameraInfo, '/camera/camera/color/camera_info',
                              lambda m: self.infos.__setitem__(ns(m.header.stamp), m),
                              qos_profile_sensor_data)
        n.create_subscription(PoseStamped, '/object_pose',
                              lambda m: self.poses.__setitem__(ns(m.header.stamp), m), 100)
        n.create_subscription(StepReward, 'reward',
                              lambda m: self.rewards.__setitem__(ns(m.header.stamp), m), 100)
        n.create_subscription(EpisodeStatus, 'episode_status', self.statuses.append, LATCHED)
        self.cmd_pub = n.create_publisher(Float64MultiArray,
                                          '/forward_position_controller/commands', 10)
        self.reset_client = n.create_client(Trigger, '/sim/reset')
        self.episode_client = n.create_client(EpisodeCommand, 'episode_command')

    def newest(self):
        return max(self.joints) if self.joints else -1

    def command(self, q, expect_step=True):
        before = self.newest()
        self.cmd_pub.publish(Float64MultiArray(data=[float(v) for v in q]))
        if expect_step:
            assert self.spin(5.0, lambda: self.newest() > before), 'the sim did not step'
        return self.newest()


def test_lockstep_stamps_state_reset_and_bad_commands(nodes, ros_env):
    sim, sim_log = nodes('sim', 'dsrl_sim_node.sim_node', time_mode='lockstep', idle_step_s=30.0,
                         seed=3)
    nodes('reward', 'dsrl_reward_node.reward_node', use_sim_time=True, time_limit_s=100.0)
    d = SimPeer(ros_env)
    try:
        topics = ('/joint_states', '/camera/camera/color/image_raw', '/object_pose',
                  '/camera/camera/color/camera_info', '/reward')
        assert d.spin(15.0, lambda: all(d.node.count_publishers(t) for t in topics))
        d.spin(0.5)  # let the publishers match our subscriptions too
        # Nothing steps until a command comes: ask for a reset to see the first state.
        res = d.call(d.reset_client, Trigger.Request())
        assert res.success and 'episode 1 (seed 4)' in res.message
        assert d.spin(10.0, lambda: d.newest() == STEP_NS and d.statuses), 'no state/status'
        assert d.spin(10.0, lambda: d.statuses[-1].phase == EpisodeStatus.PHASE_READY)
        start = d.call(d.episode_client, EpisodeCommand.Request(command=0, reason='test'))
        assert start.accepted, start.message
        env = PushEnv(max_steps=1000)
        obs, _ = env.reset(seed=4)
        rng = np.random.default_rng(0)
        stamps, rendered = [], {}
        t0 = time.monotonic()
        for k in range(30):
            q = obs[:3] + rng.uniform(-0.1, 0.1, 3)
            stamps.append(d.command(q))
            obs = env.step(q)[0]
            rendered[stamps[-1]] = (obs.copy(), env.render().copy())
        steps_per_s = 30 / (time.monotonic() - t0)
        assert d.spin(5.0, lambda: all(s in d.rewards and s in d.images and s in d.poses
                                       and s in d.infos for s in stamps))
        # exactly one sim step (0.1 s of sim time) per command, stamps shared by every output
        assert stamps == [STEP_NS * (2 + k) for k in range(30)]
        for s in stamps:
            js, pose, img = d.joints[s], d.poses[s], d.images[s]
            want_obs, want_img = rendered[s]
            np.testing.assert_array_equal(np.float32(js.position), want_obs[:3])
            np.testing.assert_array_equal(np.float32(js.velocity), want_obs[3:6])
            assert list(js.name) == ['joint1', 'joint2', 'joint3']
            np.testing.assert_array_equal(
                np.float32([pose.pose.position.x, pose.pose.position.y]), want_obs[6:8])
            assert pose.header.frame_id == 'world'
            got = np.frombuffer(bytes(img.data), np.uint8).reshape(96, 96, 3)
            assert img.encoding == 'rgb8' and np.mean(got != want_img) < 0.01
            assert s in d.infos and d.infos[s].k[0] > 0
            assert d.rewards[s].reward == -1.0 and d.rewards[s].episode_id == 1
        assert len([s for s in d.rewards if s > stamps[0] - STEP_NS]) == 30, 'one reward a step'
        # malformed commands: rejected and counted, the sim does not step and keeps running
        newest = d.newest()
        for bad in ([0.1, 0.2], [float('nan'), 0.0, 0.0], [], [0.0] * 4):
            d.command(bad, expect_step=False)
        d.spin(0.5)
        assert d.newest() == newest and sim.poll() is None
        assert d.command([0.0, 0.0, 0.0]) == newest + STEP_NS
        assert 'rejected command #1: command has 2 values, expected 3' in sim_log.read_text()
        # reset: a new seeded puck position, one step of sim time later
        before = d.newest()
        res = d.call(d.reset_client, Trigger.Request())
        assert res.success and 'episode 2 (seed 5)' in res.message
        assert d.spin(5.0, lambda: d.newest() == before + STEP_NS)
        want, _ = PushEnv().reset(seed=5)
        p = d.poses[d.newest()].pose.position
        np.testing.assert_array_equal(np.float32([p.x, p.y]), want[6:8])
        print(f'lockstep sim + reward node: {steps_per_s:.0f} commanded steps/s')
        sim.send_signal(2)
        sim.wait(timeout=10)
        assert '33 steps, 31 commands, 4 rejected commands' in sim_log.read_text()
    finally:
        d.close()
