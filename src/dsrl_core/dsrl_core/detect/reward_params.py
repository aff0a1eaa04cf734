"""Parameter schema of the reward/episode node (``config/dsrl.yaml``, block ``reward_node``)."""

from __future__ import annotations

import dataclasses

from dsrl_core.detect.color import ColorConfig
from dsrl_core.params import check_choice, check_range, ParamError

# The sim goal disc projected into the 96 x 96 overhead camera (``simcam.goal_polygon(96, 96)``).
SIM_GOAL_POLYGON_96 = (
    47.5, 42.19, 46.36, 42.34, 45.29, 42.78, 44.37, 43.49, 43.67, 44.4, 43.23, 45.47, 43.08,
    46.62, 43.23, 47.76, 43.67, 48.83, 44.37, 49.74, 45.29, 50.45, 46.36, 50.89, 47.5, 51.04,
    48.64, 50.89, 49.71, 50.45, 50.63, 49.74, 51.33, 48.83, 51.77, 47.76, 51.92, 46.62, 51.77,
    45.47, 51.33, 44.4, 50.63, 43.49, 49.71, 42.78, 48.64, 42.34)


@dataclasses.dataclass
class RewardNodeParams:
    """Every parameter of the reward/episode node; the node declares its ROS parameters from it."""

    # Name of the arm this node serves (EpisodeStatus.robot_id).
    robot_id: str = 'arm0'
    # Where frames come from: 'topic' (sensor_msgs/Image) or 'realsense' (pyrealsense2).
    image_source: str = 'topic'
    # Image topic subscribed with sensor-data QoS when image_source is 'topic'.
    image_topic: str = '/camera/camera/color/image_raw'
    # RealSense colour stream width in pixels (image_source 'realsense').
    camera_width: int = 640
    # RealSense colour stream height in pixels.
    camera_height: int = 480
    # RealSense colour stream rate in frames per second.
    camera_fps: int = 30
    # Recorded RealSense file (.bag/.db3) to play instead of a device; empty = live device.
    camera_file: str = ''
    # Serial number of the RealSense to open; empty = the first one found.
    camera_serial: str = ''
    # Seconds without a frame after which the camera is unhealthy (lost while RUNNING = ABORTED).
    camera_timeout_s: float = 1.0
    # Success detector: 'color' (HSV blob in goal polygon) or 'classifier' (CNN).
    detector: str = 'color'
    # Lower HSV bound of the object colour (OpenCV: H 0-179, S/V 0-255); H low > H high wraps.
    hsv_low: tuple[int, ...] = (170, 120, 80)
    # Upper HSV bound of the object colour.
    hsv_high: tuple[int, ...] = (10, 255, 255)
    # Goal region polygon in pixels of a region_width x region_height image, flat [x0, y0, ...].
    goal_polygon: tuple[float, ...] = SIM_GOAL_POLYGON_96
    # Width in pixels of the image the polygon was drawn on (scaled to other frame sizes).
    region_width: int = 96
    # Height in pixels of the image the polygon was drawn on.
    region_height: int = 96
    # Smallest object blob in pixels (smaller = object not visible).
    min_blob_area: int = 4
    # Per-frame test: 'centroid' (blob centroid inside polygon) or 'fraction' (score >= min).
    criterion: str = 'centroid'
    # Minimum fraction of the blob inside the polygon for criterion 'fraction'.
    min_inside_fraction: float = 0.5
    # Consecutive frames the per-frame test must hold before success is declared.
    k_consecutive: int = 3
    # Classifier checkpoint directory (model.safetensors + config.json) for detector 'classifier'.
    classifier_path: str = ''
    # Classifier probability at or above which a frame counts as success.
    classifier_threshold: float = 0.5
    # Episode time limit in seconds (RUNNING -> TIMEOUT).
    time_limit_s: float = 6.0
    # Control steps per second: one reward is published per step while RUNNING.
    control_rate_hz: float = 10.0
    # Reward of every step before success (sparse default -1).
    step_reward: float = -1.0
    # Reward of the success step.
    success_reward: float = 0.0
    # Simulated arm: RESETTING calls sim_reset_service and advances by itself.
    sim: bool = True
    # std_srvs/Trigger service that resets the simulated scene.
    sim_reset_service: str = '/sim/reset'
    # Seconds to wait for the sim reset service before retrying.
    sim_reset_timeout_s: float = 5.0
    # Go from SUCCESS/TIMEOUT/ABORTED to RESETTING by itself after result_hold_s.
    auto_reset: bool = True
    # Start the next episode by itself when READY.
    auto_start: bool = False
    # Seconds a terminal phase is held (and published) before the automatic reset.
    result_hold_s: float = 0.5
    # Seconds between periodic EpisodeStatus messages (also published on every change).
    status_period_s: float = 1.0
    # ros2_control forward_command_controller topic (std_msgs/Float64MultiArray, radians).
    controller_topic: str = '/forward_position_controller/commands'
    # sensor_msgs/JointState topic giving the arm's measured joint positions.
    joint_states_topic: str = '/joint_states'
    # Joint names, in command order.
    joint_names: tuple[str, ...] = ('joint1', 'joint2', 'joint3')
    # Lower joint position limits in radians (one per joint).
    joint_limits_low: tuple[float, ...] = (-1.6, -2.4, -2.4)
    # Upper joint position limits in radians (one per joint).
    joint_limits_high: tuple[float, ...] = (1.6, 2.4, 2.4)
    # Largest change of any joint target per command in radians (home path and teleop).
    max_step: float = 0.1
    # Teleop jog increment in radians per key press.
    jog_step: float = 0.05
    # Scripted home path on a real robot: joint waypoints in radians, flat [q0..qJ-1, ...].
    home_path: tuple[float, ...] = (-1.45, 1.55, 1.45)
    # Commands per second while sending the home path.
    home_rate_hz: float = 10.0
    # Publish the annotated debug image on 'debug_image'.
    debug_image: bool = True
    # Directory where frames are saved with human labels (classifier data); empty = off.
    label_dir: str = ''

    def __post_init__(self) -> None:
        """Validate values and cross-field consistency."""
        check_choice('image_source', self.image_source, ('topic', 'realsense'))
        check_choice('detector', self.detector, ('color', 'classifier'))
        for name in ('camera_width', 'camera_height', 'camera_fps', 'region_width',
                     'region_height'):
            check_range(name, getattr(self, name), 1)
        for name in ('camera_timeout_s', 'time_limit_s', 'control_rate_hz', 'sim_reset_timeout_s',
                     'status_period_s', 'max_step', 'jog_step', 'home_rate_hz'):
            if not getattr(self, name) > 0:
                raise ParamError(f'{name} must be positive, got {getattr(self, name)}')
        check_range('result_hold_s', self.result_hold_s, 0.0)
        check_range('classifier_threshold', self.classifier_threshold, 0.0, 1.0)
        if self.detector == 'classifier' and not self.classifier_path:
            raise ParamError("detector 'classifier' needs classifier_path")
        if self.jog_step > self.max_step:
            raise ParamError(f'jog_step {self.jog_step} exceeds max_step {self.max_step}')
        n = len(self.joint_names)
        if n == 0 or len(self.joint_limits_low) != n or len(self.joint_limits_high) != n:
            raise ParamError(f'joint_names, joint_limits_low, joint_limits_high need equal '
                             f'lengths, got {n}, {len(self.joint_limits_low)}, '
                             f'{len(self.joint_limits_high)}')
        if any(lo >= hi for lo, hi in zip(self.joint_limits_low, self.joint_limits_high)):
            raise ParamError('every joint_limits_low must be below joint_limits_high')
        if not self.home_path or len(self.home_path) % n:
            raise ParamError(f'home_path needs a multiple of {n} values, got '
                             f'{len(self.home_path)}')
        try:
            self.color_config()
        except ValueError as exc:
            raise ParamError(f'colour detector settings: {exc}') from exc

    def color_config(self) -> ColorConfig:
        """Return the colour detector's settings."""
        return ColorConfig(hsv_low=tuple(self.hsv_low), hsv_high=tuple(self.hsv_high),
                           polygon=tuple(self.goal_polygon),
                           region_size=(self.region_width, self.region_height),
                           min_blob_area=self.min_blob_area, criterion=self.criterion,
                           min_inside_fraction=self.min_inside_fraction,
                           k_consecutive=self.k_consecutive)

    @property
    def joint_limits(self):
        """Joint limits as a numpy array [J, 2] in radians."""
        import numpy as np
        return np.stack([self.joint_limits_low, self.joint_limits_high], axis=1).astype(float)
