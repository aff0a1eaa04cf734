"""Fixtures: the reward node as a process, and a test-side ROS 2 peer that feeds and records it."""

import os
import pathlib
import sys
import time

from dsrl_core.images import fill_image_msg
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from dsrl_msgs.msg import EpisodeStatus, StepReward, SuccessDetection
from dsrl_msgs.srv import EpisodeCommand, HumanLabel

# The process helpers live once, beside the sim node's tests (the policy tests use them too).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'dsrl_sim_node' / 'test'))
import rosproc  # noqa: E402,I001

ROOT = rosproc.ROOT
PARAMS = rosproc.PARAMS
STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
IMAGE_TOPIC = '/camera/camera/color/image_raw'
CMD_TOPIC = '/forward_position_controller/commands'


def start_node(ros_env, log_path, **overrides):
    """Start the reward node process with config/dsrl.yaml plus ``-p`` overrides."""
    return rosproc.start_node(ros_env, log_path, 'dsrl_reward_node.reward_node', **overrides)


stop = rosproc.stop


class Driver:
    """In-process rclpy peer on the test's own ROS domain."""

    def __init__(self, ros_env, sim_reset=True):
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=int(ros_env['ROS_DOMAIN_ID']))
        self.node = rclpy.create_node('test_driver', context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        n = self.node
        self.statuses, self.rewards, self.detections = [], [], []
        self.commands, self.debug = [], []
        self.reward_msgs, self.image_stamps = [], set()
        self.resets = 0
        self.frame = None
        self.joints = None
        self.echo_commands = False
        self.image_pub = n.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
        self.joint_pub = n.create_publisher(JointState, '/joint_states', 10)
        n.create_subscription(EpisodeStatus, 'episode_status', self.statuses.append, STATUS_QOS)
        n.create_subscription(StepReward, 'reward', self.on_reward, 10)
        n.create_subscription(SuccessDetection, 'success_detection', self.detections.append, 10)
        n.create_subscription(Image, 'debug_image', self.debug.append, qos_profile_sensor_data)
        n.create_subscription(Float64MultiArray, CMD_TOPIC, self.on_command, 10)
        self.cmd_client = n.create_client(EpisodeCommand, 'episode_command')
        self.label_client = n.create_client(HumanLabel, 'human_label')
        if sim_reset:
            n.create_service(Trigger, '/sim/reset', self.on_reset)
        n.create_timer(0.05, self.on_timer)

    def on_reset(self, req, res):
        self.resets += 1
        res.success, res.message = True, f'reset {self.resets}'
        return res

    def on_reward(self, msg):
        self.reward_msgs.append(msg)
        self.rewards.append(msg.reward)

    def on_command(self, msg):
        self.commands.append((time.monotonic(), np.array(msg.data)))
        if self.echo_commands:  # a position controller that follows its commands
            self.joints = np.array(msg.data)

    def on_timer(self):
        if self.frame is not None:
            msg = fill_image_msg(Image(), self.frame, 'rgb8')
            msg.header.stamp = self.node.get_clock().now().to_msg()
            msg.header.frame_id = 'camera'
            self.image_stamps.add((msg.header.stamp.sec, msg.header.stamp.nanosec))
            self.image_pub.publish(msg)
        if self.joints is not None:
            self.joint_pub.publish(JointState(name=['joint1', 'joint2', 'joint3'],
                                              position=self.joints.tolist()))

    def spin(self, seconds, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.02)
            if until is not None and until():
                return True
        return until is None

    def phases(self):
        return [(s.phase, s.reason) for s in self.statuses]

    def wait_phase(self, phase, timeout=10.0, reason=None):
        def ok():
            s = self.statuses[-1] if self.statuses else None
            return s is not None and s.phase == phase and (reason is None or s.reason == reason)
        assert self.spin(timeout, ok), f'phase {phase}/{reason} not reached: {self.phases()}'
        return self.statuses[-1]

    def call(self, client, request, timeout=10.0):
        assert self.spin(timeout, client.service_is_ready), f'{client.srv_name} not available'
        fut = client.call_async(request)
        assert self.spin(timeout, fut.done), f'{client.srv_name} did not answer'
        return fut.result()

    def command(self, cmd, reason='test'):
        return self.call(self.cmd_client, EpisodeCommand.Request(command=cmd, reason=reason))

    def close(self):
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


@pytest.fixture
def run(ros_env, tmp_path):
    procs = []

    def launch(sim_reset=True, **params):
        proc, log = start_node(ros_env, tmp_path / 'node.log', **params)
        drv = Driver(ros_env, sim_reset=sim_reset)
        procs.append((proc, log, drv))
        drv.wait_phase(EpisodeStatus.PHASE_READY, timeout=15)
        return proc, drv

    yield launch
    # Stop every process before any check, so a failed check never leaves a node running.
    codes = []
    for proc, log, drv in procs:
        drv.close()
        codes.append(stop(proc))
    for (proc, log, drv), rc in zip(procs, codes):
        log.close()
        text = (tmp_path / 'node.log').read_text()
        assert 'Traceback' not in text, text
        assert rc in (0, -2), text
