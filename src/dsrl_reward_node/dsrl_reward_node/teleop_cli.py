"""
Keyboard teleop for resets (``dsrl_teleop``): jog joints during RESETTING, confirm, label, e-stop.

Reads single key presses from the terminal in raw mode (termios/tty; from a pipe, one character
at a time, so it can be scripted). Key logic and the safety clamps are ``dsrl_core.teleop``; the
joint limits, ``max_step`` and ``jog_step`` come from the reward node's parameters (``--params``
YAML, block ``reward_node``; defaults of ``RewardNodeParams`` otherwise), so teleop and the
scripted home path share one clamp. Commands go to the same ros2_control topic
(std_msgs/Float64MultiArray). The phase comes from ``episode_status``; ``c`` calls
``episode_command`` RESET_DONE, ``y``/``n`` call ``human_label``, space publishes a hold command
and calls ``episode_command`` ABORT.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import termios
import threading
import tty
from typing import Optional

from dsrl_core.detect.calibrate import load_params
from dsrl_core.teleop import HELP, TeleopCore
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from dsrl_msgs.msg import EpisodeStatus
from dsrl_msgs.srv import EpisodeCommand, HumanLabel

STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


class TeleopNode(Node):
    """Turns key presses (from a queue) into commands, labels and service calls."""

    def __init__(self, params, keys: 'queue.Queue[str]', namespace: str = '') -> None:
        """Create publishers, subscriptions and clients; poll ``keys`` at 50 Hz."""
        super().__init__('dsrl_teleop', namespace=namespace)
        self.p = params
        self.core = TeleopCore(params.joint_limits, params.jog_step, params.max_step)
        self.keys = keys
        self.phase: Optional[int] = None
        self.measured: Optional[np.ndarray] = None
        self.target: Optional[np.ndarray] = None
        self.done = False
        self.cmd_pub = self.create_publisher(Float64MultiArray, params.controller_topic, 10)
        self.create_subscription(EpisodeStatus, 'episode_status', self.on_status, STATUS_QOS)
        self.create_subscription(JointState, params.joint_states_topic, self.on_joints, 10)
        self.cmd_client = self.create_client(EpisodeCommand, 'episode_command')
        self.label_client = self.create_client(HumanLabel, 'human_label')
        self.create_timer(0.02, self.poll_keys)
        self.say(HELP)

    def say(self, text: str) -> None:
        """Log a line (the terminal is in raw mode: logging keeps lines intact)."""
        self.get_logger().info(text)

    def on_status(self, msg: EpisodeStatus) -> None:
        """Track the episode phase; a new phase re-bases jogs on the measured position."""
        if msg.phase != self.phase:
            self.target = None
        self.phase = msg.phase

    def on_joints(self, msg: JointState) -> None:
        """Track the measured joint positions in command order."""
        try:
            idx = [list(msg.name).index(n) for n in self.p.joint_names]
            self.measured = np.array([msg.position[i] for i in idx], dtype=np.float64)
        except (ValueError, IndexError):
            self.get_logger().warning('joint_states lacks the configured joints',
                                      throttle_duration_sec=5.0)

    def poll_keys(self) -> None:
        """Handle every key waiting in the queue."""
        while not self.done:
            try:
                key = self.keys.get_nowait()
            except queue.Empty:
                return
            self.on_key(key)

    def on_key(self, key: str) -> None:
        """Apply one key."""
        current = self.target if self.target is not None else self.measured
        act = self.core.handle_key(key, self.phase, current)
        if act.kind == 'jog':
            self.target = act.target
            self.cmd_pub.publish(Float64MultiArray(data=act.target.tolist()))
        elif act.kind == 'estop':
            if act.target is not None:
                self.cmd_pub.publish(Float64MultiArray(data=act.target.tolist()))
            self.call(self.cmd_client, EpisodeCommand.Request(
                command=EpisodeCommand.Request.COMMAND_ABORT, reason='teleop_estop'))
        elif act.kind == 'confirm':
            self.call(self.cmd_client, EpisodeCommand.Request(
                command=EpisodeCommand.Request.COMMAND_RESET_DONE, reason='teleop_confirm'))
        elif act.kind == 'label':
            self.call(self.label_client, HumanLabel.Request(success=act.success,
                                                            note='teleop'))
        elif act.kind == 'quit':
            self.done = True
        if act.kind == 'refused':
            self.get_logger().warning(act.message)
        else:
            self.say(act.message)

    def call(self, client, request) -> None:
        """Call a service asynchronously and log its answer."""
        if not client.service_is_ready():
            self.get_logger().error(f'service {client.srv_name} not available')
            return
        fut = client.call_async(request)
        fut.add_done_callback(lambda f: self.say(
            f'{client.srv_name}: {"accepted" if f.result().accepted else "REFUSED"}: '
            f'{f.result().message}'))


def read_keys(stream, keys: 'queue.Queue[str]') -> None:
    """Put every character of ``stream`` into ``keys`` (raw mode when it is a terminal)."""
    fd = stream.fileno()
    old = termios.tcgetattr(fd) if os.isatty(fd) else None
    try:
        if old is not None:
            tty.setcbreak(fd)
        while True:
            ch = os.read(fd, 1).decode(errors='replace')
            if not ch:
                keys.put('x')
                return
            if ch != '\n':
                keys.put(ch)
    finally:
        if old is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the keyboard teleop until x / Ctrl-C / end of input."""
    argv = sys.argv[1:] if argv is None else argv
    ros_args = argv[argv.index('--ros-args'):] if '--ros-args' in argv else []
    own = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    ap = argparse.ArgumentParser(description='Keyboard teleop for resets between episodes.')
    ap.add_argument('--params', default=os.environ.get('DSRL_PARAMS', ''),
                    help='params YAML with a reward_node block (limits, max_step, topics)')
    ap.add_argument('--namespace', default='', help='namespace of the reward node')
    args = ap.parse_args(own)
    params = load_params(args.params or None)
    keys: 'queue.Queue[str]' = queue.Queue()
    rclpy.init(args=['teleop'] + ros_args)
    node = TeleopNode(params, keys, args.namespace)
    threading.Thread(target=read_keys, args=(sys.stdin, keys), daemon=True).start()
    try:
        while rclpy.ok() and not node.done:
            rclpy.spin_once(node, timeout_sec=0.1)
        for _ in range(5):  # let pending service answers arrive
            rclpy.spin_once(node, timeout_sec=0.05)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
