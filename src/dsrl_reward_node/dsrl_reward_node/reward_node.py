"""
Reward/episode node: camera frames -> success detection -> reward, episode phases and resets.

Thin wrapper (all logic in dsrl_core): ``dsrl_core.detect`` scores frames, ``dsrl_core.episode``
runs READY -> RUNNING -> SUCCESS/TIMEOUT/ABORTED -> RESETTING -> READY. Parameters: the
``RewardNodeParams`` schema (``config/dsrl.yaml``, block ``reward_node``).

Topics: subscribes the image topic (sensor-data QoS) unless ``image_source`` is ``realsense``, and
``joint_states_topic``; publishes ``reward`` (dsrl_msgs/StepReward, one per control step while
RUNNING, stamped with the camera image scored for that step), ``success_detection``
(dsrl_msgs/SuccessDetection, per frame), ``debug_image`` (sensor_msgs/Image rgb8, when
subscribed), ``episode_status`` (reliable, transient-local, depth 1; on every change and every
``status_period_s``), and the home path on ``controller_topic``.
Services: ``episode_command`` (dsrl_msgs/EpisodeCommand), ``human_label`` (dsrl_msgs/HumanLabel);
client of ``sim_reset_service`` (std_srvs/Trigger) when ``sim`` is true.

Steps: in real time (``use_sim_time`` false) a control-rate timer runs one step with the newest
scored frame. On sim time (the simulated arm in lockstep, one frame per simulated step) every newly
stamped frame is one step, scored before its reward is published, so the reward stamped t always
describes the frame (and the sim state) stamped t.
"""

from __future__ import annotations

import sys
from typing import Optional

from dsrl_core.detect.camera import CameraNotFoundError, FrameHealth, RealSenseSource
from dsrl_core.detect.color import annotate, ColorDetector
from dsrl_core.detect.reward_params import RewardNodeParams
from dsrl_core.episode import EpisodeManager, Phase, TERMINAL
from dsrl_core.images import fill_image_msg, ImageError, msg_to_rgb
from dsrl_core.params import declare_schema, ParamError
from dsrl_core.teleop import interpolate_path
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from dsrl_msgs.msg import EpisodeStatus, StepReward, SuccessDetection
from dsrl_msgs.srv import EpisodeCommand, HumanLabel

STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)



class RewardNode(Node):
    """Success detection, reward, episode manager and resets for one arm."""

    def __init__(self) -> None:
        """Declare parameters, build the core objects, open the camera, create the interfaces."""
        super().__init__('reward_node')
        p: RewardNodeParams = declare_schema(self, RewardNodeParams)
        self.p = p
        self.manager = EpisodeManager(p.time_limit_s, p.step_reward, p.success_reward, p.sim,
                                      p.auto_reset, p.auto_start, p.result_hold_s)
        if p.detector == 'color':
            self.detector = ColorDetector(p.color_config())
        else:
            from dsrl_core.detect.classifier import ClassifierDetector
            self.detector = ClassifierDetector(p.classifier_path, p.classifier_threshold,
                                               p.k_consecutive)
        self.health = FrameHealth(p.camera_timeout_s)
        self.bad_frames = 0
        self.last_frame: Optional[np.ndarray] = None
        self.joint_pos: Optional[np.ndarray] = None
        self._changes = -1
        self._camera_ok = False
        self._reset_future = None
        self._reset_sent = -1e9
        self._home_queue: list[np.ndarray] = []
        self._home_started = False
        # On sim time every new frame is one control step (see the module docstring).
        self.frame_steps = bool(self.get_parameter('use_sim_time').value) and \
            p.image_source == 'topic'
        self._frame_header = None  # header of the newest scored frame
        self._stepped_ns = -1  # stamp of the newest frame a step was run for

        self.reward_pub = self.create_publisher(StepReward, 'reward', 10)
        self.det_pub = self.create_publisher(SuccessDetection, 'success_detection', 10)
        self.debug_pub = self.create_publisher(Image, 'debug_image', qos_profile_sensor_data)
        self.status_pub = self.create_publisher(EpisodeStatus, 'episode_status', STATUS_QOS)
        self.cmd_pub = self.create_publisher(Float64MultiArray, p.controller_topic, 10)
        self.create_subscription(JointState, p.joint_states_topic, self.on_joint_state, 10)
        self.create_service(EpisodeCommand, 'episode_command', self.on_command)
        self.create_service(HumanLabel, 'human_label', self.on_label)
        self.reset_client = self.create_client(Trigger, p.sim_reset_service) if p.sim else None
        self.camera: Optional[RealSenseSource] = None
        if p.image_source == 'topic':
            self.create_subscription(Image, p.image_topic, self.on_image, qos_profile_sensor_data)
            source = f'topic {p.image_topic}'
        else:
            self.camera = RealSenseSource(p.camera_width, p.camera_height, p.camera_fps,
                                          p.camera_file, p.camera_serial)
            source = self.camera.start()  # raises CameraNotFoundError with a clear message
            # A recording is read one frame per period (its recorded rate); a live camera is
            # polled twice as often as it streams.
            self.create_timer((1.0 if p.camera_file else 0.5) / p.camera_fps, self.poll_camera)
        self.create_timer(1.0 / p.control_rate_hz, self.on_control)
        self.create_timer(p.status_period_s, self.publish_status)
        self.create_timer(1.0 / p.home_rate_hz, self.on_home_tick)
        self.after_change()
        self.get_logger().info(
            f'reward node up: source {source}, detector {p.detector}, '
            f'{"sim reset via " + p.sim_reset_service if p.sim else "real robot resets"}, '
            f'time limit {p.time_limit_s} s, rewards {p.step_reward}/{p.success_reward}')

    # ------------------------------------------------------------------ helpers
    def now(self) -> float:
        """ROS time in seconds (sim time when use_sim_time is set)."""
        return self.get_clock().now().nanoseconds * 1e-9

    def log(self, ok: bool, text: str, error: bool = False) -> None:
        """Log ``text`` as info when ``ok``, else as a warning (or an error)."""
        # rclpy refuses one call site logging at changing severities: one site per level.
        if ok:
            self.get_logger().info(text)
        elif error:
            self.get_logger().error(text)
        else:
            self.get_logger().warning(text)

    def publish_status(self) -> None:
        """Publish EpisodeStatus from the manager."""
        msg = EpisodeStatus()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.robot_id = self.p.robot_id
        for key, value in self.manager.status(self.now()).items():
            setattr(msg, key, value)
        self.status_pub.publish(msg)

    def after_change(self) -> None:
        """Publish and log a phase change; start the reset procedure or a new detection run."""
        if self.manager.changes == self._changes:
            return
        self._changes = self.manager.changes
        m = self.manager
        self.get_logger().info(f'episode {m.episode_id}: {m.phase.name} ({m.reason})'
                               + (f' stage {m.reset_stage}' if m.reset_stage else ''))
        if m.phase == Phase.RUNNING:
            self.detector.reset()
        if m.phase == Phase.RESETTING and m.reset_stage == 'homing' and not self._home_started:
            self.begin_homing()
        if m.phase != Phase.RESETTING:
            self._home_started = False
        self.publish_status()

    # ------------------------------------------------------------------ frames
    def on_image(self, msg: Image) -> None:
        """Convert an image message and score it; bad frames are counted, never fatal."""
        try:
            rgb = msg_to_rgb(msg)
        except ImageError as exc:
            self.bad_frames += 1
            self.get_logger().warning(f'bad image #{self.bad_frames} rejected: {exc}',
                                      throttle_duration_sec=5.0)
            return
        self.process_frame(rgb, msg.header)

    def poll_camera(self) -> None:
        """Score a RealSense frame if one is waiting."""
        got = self.camera.poll()
        if got is not None:
            self.process_frame(got[0], None)

    def process_frame(self, rgb: np.ndarray, header) -> None:
        """Run the detector on one RGB frame and publish its results."""
        now = self.now()
        self.health.frame(now)
        self.last_frame = rgb
        det = self.detector.update(rgb)
        self.manager.observe(det.decision)
        out = SuccessDetection()
        if header is not None:
            out.header = header
        else:
            out.header.stamp = self.get_clock().now().to_msg()
            out.header.frame_id = 'camera_color_optical_frame'
        self._frame_header = out.header
        stamp_ns = out.header.stamp.sec * 1_000_000_000 + out.header.stamp.nanosec
        if self.frame_steps and stamp_ns > self._stepped_ns:
            self._stepped_ns = stamp_ns
            self.run_step(stamp_ns * 1e-9)
        out.score, out.decision, out.method = float(det.score), det.decision, det.method
        out.object_visible, out.consecutive = det.object_visible, det.consecutive
        self.det_pub.publish(out)
        if self.p.debug_image and self.debug_pub.get_subscription_count() > 0:
            poly = (self.detector.polygon_for(rgb.shape[1], rgb.shape[0])
                    if isinstance(self.detector, ColorDetector) else np.zeros((0, 2)))
            img = fill_image_msg(Image(), annotate(rgb, det, poly), 'rgb8')
            img.header = out.header
            self.debug_pub.publish(img)

    def on_joint_state(self, msg: JointState) -> None:
        """Keep the measured joint positions in command order."""
        try:
            idx = [list(msg.name).index(n) for n in self.p.joint_names]
            self.joint_pos = np.array([msg.position[i] for i in idx], dtype=np.float64)
        except (ValueError, IndexError):
            self.get_logger().warning(f'joint_states lacks {list(self.p.joint_names)}',
                                      throttle_duration_sec=5.0)

    # ------------------------------------------------------------------ control
    def on_control(self) -> None:
        """One control step: camera health, reward, automatic transitions, reset progress."""
        now = self.now()
        healthy = self.health.healthy(now)
        if healthy != self._camera_ok:
            self._camera_ok = healthy
            text = (f'camera {"healthy" if healthy else "LOST"} (last frame '
                    f'{self.health.age(now):.2f} s ago, timeout {self.health.timeout_s} s)')
            self.log(healthy, text, error=True)
        if self.manager.phase == Phase.RUNNING and not healthy:
            self.manager.camera_lost(now)
        if not self.frame_steps:
            self.run_step(now)
        self.manager.tick(now, healthy)
        self.after_change()
        if self.manager.phase == Phase.RESETTING and self.manager.reset_stage == 'sim':
            self.drive_sim_reset(now)

    def run_step(self, now: float) -> None:
        """One episode step; while RUNNING publish its reward stamped with the newest frame."""
        reward = self.manager.step(now)
        if reward is not None:
            msg = StepReward(episode_id=self.manager.episode_id, reward=float(reward))
            if self._frame_header is not None:
                msg.header = self._frame_header
            else:
                msg.header.stamp = self.get_clock().now().to_msg()
            rec = self.manager.record
            if self.manager.phase in TERMINAL and rec.end_time is not None:
                msg.success = self.manager.phase == Phase.SUCCESS
                msg.terminated, msg.truncated = bool(rec.terminated), bool(rec.truncated)
            self.reward_pub.publish(msg)
        self.after_change()

    def drive_sim_reset(self, now: float) -> None:
        """Call the sim reset service (retrying after a timeout) and advance when it answers."""
        fut = self._reset_future
        if fut is not None and fut.done():
            self._reset_future = None
            try:
                res = fut.result()
                ok, message = bool(res.success), res.message
            except Exception as exc:  # noqa: BLE001 - a failed call is retried, never fatal
                ok, message = False, str(exc)
            r = self.manager.sim_reset_finished(now, ok, message)
            self.log(ok, r.message)
            self.after_change()
            return
        if fut is not None and now - self._reset_sent < self.p.sim_reset_timeout_s:
            return
        if fut is not None:
            self.get_logger().warning(f'{self.p.sim_reset_service} did not answer in '
                                      f'{self.p.sim_reset_timeout_s} s; retrying')
        if not self.reset_client.service_is_ready():
            if now - self._reset_sent >= self.p.sim_reset_timeout_s:
                self._reset_sent = now
                self.get_logger().warning(f'waiting for sim reset service '
                                          f'{self.p.sim_reset_service}')
            return
        self._reset_future = self.reset_client.call_async(Trigger.Request())
        self._reset_sent = now

    def begin_homing(self) -> None:
        """Real robot: queue the scripted home path from the measured joint positions."""
        if self.joint_pos is None:
            self.get_logger().error('cannot send the home path: no joint_states received yet; '
                                    'will retry', throttle_duration_sec=5.0)
            return
        n = len(self.p.joint_names)
        waypoints = np.asarray(self.p.home_path, dtype=np.float64).reshape(-1, n)
        self._home_queue = interpolate_path(self.joint_pos, waypoints, self.p.joint_limits,
                                            self.p.max_step)
        self._home_started = True
        self.get_logger().info(f'home path: {len(self._home_queue)} commands to '
                               f'{waypoints[-1].round(3).tolist()}')

    def on_home_tick(self) -> None:
        """Send the next home-path command; when done, wait for the human confirmation."""
        m = self.manager
        if m.phase != Phase.RESETTING or m.reset_stage != 'homing':
            self._home_queue = []
            return
        if not self._home_started:
            self.begin_homing()
            return
        if self._home_queue:
            self.cmd_pub.publish(Float64MultiArray(data=self._home_queue.pop(0).tolist()))
            return
        m.homing_finished(self.now())
        self.get_logger().info('home pose reached: reset the scene, then confirm '
                               '(teleop key c, or episode_command RESET_DONE)')
        self.after_change()

    # ------------------------------------------------------------------ services
    def on_command(self, req, res):
        """EpisodeCommand service."""
        now = self.now()
        r = self.manager.command(req.command, now, req.reason, self.health.healthy(now))
        self.log(r.accepted, f'episode_command {req.command} ({req.reason!r}): {r.message}')
        self.after_change()
        res.accepted, res.message = r.accepted, r.message
        res.phase, res.episode_id = int(self.manager.phase), self.manager.episode_id
        return res

    def on_label(self, req, res):
        """HumanLabel service; optionally saves the last frame as classifier training data."""
        r = self.manager.label(req.success, self.now(), req.episode_id, req.note)
        self.log(r.accepted, f'human_label: {r.message}')
        if r.accepted and self.p.label_dir and self.last_frame is not None:
            from dsrl_core.detect.classifier import LabelStore
            try:
                name = LabelStore(self.p.label_dir).save(self.last_frame, req.success,
                                                         self.manager.episode_id, req.note)
                self.get_logger().info(f'labelled frame saved: {self.p.label_dir}/{name}')
            except OSError as exc:
                self.get_logger().error(f'cannot save labelled frame: {exc}')
        self.after_change()
        res.accepted, res.message = r.accepted, r.message
        return res

    def destroy_node(self) -> None:
        """Stop the camera, then destroy the node."""
        if self.camera is not None:
            self.camera.stop()
        super().destroy_node()


def main(args=None) -> int:
    """Run the reward node until shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        node = RewardNode()
        rclpy.spin(node)
    except (ParamError, CameraNotFoundError, FileNotFoundError) as exc:
        print(f'reward_node: {exc}', file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # Ctrl-C shuts the context down while a callback may still be running; its publish then
        # fails ("publisher's context is invalid"). That is a clean stop, anything else is not.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
