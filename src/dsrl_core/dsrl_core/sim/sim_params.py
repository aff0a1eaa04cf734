"""Parameter schema of the simulated arm node (``config/dsrl.yaml``, block ``sim_node``)."""

from __future__ import annotations

import dataclasses

from dsrl_core.params import check_choice, check_range, ParamError
from dsrl_core.sim.push_env import JOINT_NAMES


@dataclasses.dataclass
class SimNodeParams:
    """Every parameter of the simulated arm node; the node declares its ROS parameters from it."""

    # 'realtime' (a wall timer steps at the control rate, holding the last command) or
    # 'lockstep' (each command advances exactly one step; /clock is published).
    time_mode: str = 'realtime'
    # Lockstep: wall seconds without a command after which the sim steps by itself at the real-time
    # rate, holding the last command (so sim time never freezes while nobody commands).
    idle_step_s: float = 0.5
    # Seed of the first episode; episode k (k = 0 at start-up, +1 per reset) uses seed + k.
    seed: int = 0
    # Rendered camera image height in pixels.
    image_height: int = 96
    # Rendered camera image width in pixels.
    image_width: int = 96
    # Joint names published on joint_states_topic and expected in command order.
    joint_names: tuple[str, ...] = JOINT_NAMES
    # sensor_msgs/JointState output topic.
    joint_states_topic: str = '/joint_states'
    # sensor_msgs/Image (rgb8) output topic, published with sensor-data QoS.
    image_topic: str = '/camera/camera/color/image_raw'
    # sensor_msgs/CameraInfo output topic, published with sensor-data QoS.
    camera_info_topic: str = '/camera/camera/color/camera_info'
    # frame_id of the image and camera info.
    camera_frame_id: str = 'camera_color_optical_frame'
    # geometry_msgs/PoseStamped output topic: the puck's pose, as an object tracker would give it.
    object_pose_topic: str = '/object_pose'
    # frame_id of the object pose (the arm base on the table top, z up).
    world_frame_id: str = 'world'
    # ros2_control forward_command_controller input (std_msgs/Float64MultiArray, radians).
    command_topic: str = '/forward_position_controller/commands'
    # std_srvs/Trigger service that starts a new episode (new seeded puck position).
    reset_service: str = '/sim/reset'

    def __post_init__(self) -> None:
        """Validate values."""
        check_choice('time_mode', self.time_mode, ('realtime', 'lockstep'))
        if not self.idle_step_s > 0:
            raise ParamError(f'idle_step_s must be positive, got {self.idle_step_s}')
        check_range('seed', self.seed, 0)
        check_range('image_height', self.image_height, 8, 2048)
        check_range('image_width', self.image_width, 8, 2048)
        if tuple(self.joint_names) != JOINT_NAMES:
            raise ParamError(f'joint_names must be the simulated joints {list(JOINT_NAMES)} '
                             f'(in that order), got {list(self.joint_names)}')
        for name in ('joint_states_topic', 'image_topic', 'camera_info_topic',
                     'object_pose_topic', 'command_topic', 'reset_service'):
            if not getattr(self, name):
                raise ParamError(f'{name} must not be empty')
