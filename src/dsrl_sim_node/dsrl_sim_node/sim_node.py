"""
Simulated arm node: the MuJoCo push task behind the interface of the real arm.

Thin wrapper around ``dsrl_core.sim.runner.SimRunner``. Parameters: the ``SimNodeParams`` schema
(``config/dsrl.yaml``, block ``sim_node``).

Publishes ``joint_states_topic`` (sensor_msgs/JointState: joint1..3 position and velocity),
``image_topic`` (sensor_msgs/Image rgb8) and ``camera_info_topic`` (sensor_msgs/CameraInfo), both
with sensor-data QoS, ``object_pose_topic`` (geometry_msgs/PoseStamped in ``world_frame_id``, as
a tracker would), and in lockstep ``/clock`` (rosgraph_msgs/Clock). Subscribes ``command_topic``
(std_msgs/Float64MultiArray: one position per joint, radians; a wrong length or a non-finite value
is rejected and counted, never fatal). Service ``reset_service`` (std_srvs/Trigger): the next
seeded episode.

Time modes:

* ``realtime``: a steady 10 Hz timer steps the sim holding the newest command; outputs are stamped
  with the node's clock.
* ``lockstep``: every accepted command advances exactly one control step (0.1 s of sim time) at
  once; /clock, joint states, object pose, image and camera info of that step all carry the same
  stamp, the sim time of the state they describe (step k = k * 0.1 s; a reset also takes one step).
  Every other node runs with ``use_sim_time``. When no command arrives for ``idle_step_s`` wall
  seconds the sim steps by itself at 10 Hz, holding the last command, so that sim time (and the
  episode manager's timers) keep going while nobody commands.
"""

from __future__ import annotations

import sys
import time

from dsrl_core.params import declare_schema, ParamError
from dsrl_core.sim.push_env import CONTROL_HZ
from dsrl_core.sim.runner import CommandError, SimFrame, SimRunner
from dsrl_core.sim.sim_params import SimNodeParams
from geometry_msgs.msg import PoseStamped
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from dsrl_sim_node.convert import (
    camera_info_msg,
    clock_msg,
    image_msg,
    joint_state_msg,
    object_pose_msg,
)


class SimNode(Node):
    """The simulated push arm, camera and object tracker."""

    def __init__(self) -> None:
        """Declare parameters, create the sim and the interfaces, publish the first state."""
        super().__init__('sim_node')
        p: SimNodeParams = declare_schema(self, SimNodeParams)
        self.p = p
        self.lockstep = p.time_mode == 'lockstep'
        self.runner = SimRunner(p.seed, (p.image_height, p.image_width))
        cam = self.runner.env.model.camera(self.runner.env.camera).id
        self.fovy = float(self.runner.env.model.cam_fovy[cam])
        self.rejected = 0
        self._last_command = time.monotonic()
        self.clock_pub = self.create_publisher(ClockMsg, '/clock', 10) if self.lockstep else None
        self.joint_pub = self.create_publisher(JointState, p.joint_states_topic, 10)
        self.image_pub = self.create_publisher(Image, p.image_topic, qos_profile_sensor_data)
        self.info_pub = self.create_publisher(CameraInfo, p.camera_info_topic,
                                              qos_profile_sensor_data)
        self.pose_pub = self.create_publisher(PoseStamped, p.object_pose_topic, 10)
        self.create_subscription(Float64MultiArray, p.command_topic, self.on_command, 10)
        self.create_service(Trigger, p.reset_service, self.on_reset)
        self.create_timer(1.0 / CONTROL_HZ, self.on_timer,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.publish(self.runner.frame())
        self.get_logger().info(
            f'sim node up: {p.time_mode}, episode 0 seed {p.seed}, camera '
            f'{p.image_width}x{p.image_height} on {p.image_topic}, commands on {p.command_topic}')

    def publish(self, frame: SimFrame) -> None:
        """Publish one state; in lockstep everything (and /clock) carries its sim time."""
        if self.lockstep:
            stamp = frame.stamp_ns
            self.clock_pub.publish(clock_msg(stamp))
        else:
            stamp = self.get_clock().now().nanoseconds
        p = self.p
        self.joint_pub.publish(joint_state_msg(p.joint_names, frame.obs, stamp))
        self.pose_pub.publish(object_pose_msg(frame.obs, p.world_frame_id, stamp))
        self.image_pub.publish(image_msg(frame.image, p.camera_frame_id, stamp))
        self.info_pub.publish(camera_info_msg(p.image_width, p.image_height, self.fovy,
                                              p.camera_frame_id, stamp))

    def on_command(self, msg: Float64MultiArray) -> None:
        """Hold a joint-position command; in lockstep advance one step with it at once."""
        try:
            self.runner.command(msg.data)
        except CommandError as exc:
            self.rejected += 1
            self.get_logger().warning(f'rejected command #{self.rejected}: {exc}',
                                      throttle_duration_sec=2.0)
            return
        if self.lockstep:
            self._last_command = time.monotonic()
            self.publish(self.runner.step())

    def on_timer(self) -> None:
        """Real time: one step per tick. Lockstep: step only when commands stopped coming."""
        if self.lockstep and time.monotonic() - self._last_command < self.p.idle_step_s:
            return
        self.publish(self.runner.step())

    def on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        """Start the next seeded episode and publish its first state."""
        frame = self.runner.reset()
        self.publish(frame)
        response.success = True
        response.message = (f'episode {frame.episode} (seed {self.p.seed + frame.episode}), '
                            f'puck at {frame.obs[6]:.3f}, {frame.obs[7]:.3f} m')
        self.get_logger().info(f'reset: {response.message}')
        return response

    def destroy_node(self) -> None:
        """Release the renderer, then destroy the node."""
        self.runner.close()
        super().destroy_node()


def main(args=None) -> int:
    """Run the sim node until shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        node = SimNode()
        rclpy.spin(node)
    except ParamError as exc:
        print(f'sim_node: {exc}', file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            print(f'sim_node stopping: {node.runner.step_index} steps, {node.runner.commands} '
                  f'commands, {node.rejected} rejected commands', flush=True)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
