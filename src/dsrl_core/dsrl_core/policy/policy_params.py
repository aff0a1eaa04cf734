"""Parameter schema of the policy node (``config/dsrl.yaml``, block ``policy_node``)."""

from __future__ import annotations

import dataclasses

from dsrl_core.params import check_choice, check_range, ParamError
from dsrl_core.sim.push_env import JOINT_LIMITS, JOINT_NAMES, OBS_NAMES


@dataclasses.dataclass
class PolicyNodeParams:
    """Every parameter of the policy node; the node declares its ROS parameters from it."""

    # Name of the arm this node drives (Transition.robot_id).
    robot_id: str = 'arm0'
    # Base policy factory 'package.module:factory' (the base-policy contract).
    policy_plugin: str = 'dsrl_core.policy.diffusion:load_policy'
    # Checkpoint passed to the factory as path=...; empty = the factory's default (shipped BC).
    policy_path: str = ''
    # Noise choice: 'train' (stochastic actor), 'eval' (deterministic actor), 'warmup' (always
    # N(0, I): warm-up data or the BC baseline). Actor version 0 always gives N(0, I).
    mode: str = 'train'
    # Exploration in 'train' mode: 'episode' keeps the actor's standard-normal draw for a whole
    # episode (temporally correlated, a consistent behaviour per episode), 'chunk' draws anew for
    # every chunk.
    exploration: str = 'chunk'
    # 'realtime' (a steady control-rate timer executes the chunk) or 'lockstep' (one action per
    # simulated step, sent when that step's observation and reward have arrived; use_sim_time).
    time_mode: str = 'realtime'
    # Observation layout expected from the checkpoint (PolicyMeta.obs_names), in order; entries are
    # joint_pos/<joint> and joint_vel/<joint> (joint_states_topic), object/x|y|z (object topic).
    obs_names: tuple[str, ...] = OBS_NAMES
    # Joint names in command order (must equal the checkpoint's action_names).
    joint_names: tuple[str, ...] = JOINT_NAMES
    # Lower joint position limits in radians; every command is clamped to them.
    joint_limits_low: tuple[float, ...] = tuple(float(v) for v in JOINT_LIMITS[:, 0])
    # Upper joint position limits in radians.
    joint_limits_high: tuple[float, ...] = tuple(float(v) for v in JOINT_LIMITS[:, 1])
    # Largest change of any joint target per command in radians (from the previous command, or
    # from the measured position for the first command after a pause).
    max_step: float = 0.1
    # Wall seconds after which joint states count as stale: no new commands until fresh ones.
    joint_state_timeout_s: float = 0.5
    # An action more than this late (seconds after its due time) is dropped, not executed.
    stale_action_s: float = 0.05
    # Wall seconds to wait for the rewards of a finished chunk before publishing what arrived.
    reward_timeout_s: float = 5.0
    # Seconds between timing log lines (control cycle, observation -> command and weights
    # publish -> applied percentiles); 0 = never.
    timing_log_period_s: float = 30.0
    # Hidden widths of the noise actor (must match the learner's).
    actor_hidden: tuple[int, ...] = (128, 128, 128)
    # LayerNorm in the noise actor (must match the learner's).
    actor_layer_norm: bool = True
    # Noise bound: the actor's w lies in [-action_magnitude, action_magnitude] (must match the
    # learner's).
    action_magnitude: float = 1.0
    # File holding the HMAC key of ActorWeights; empty = $DSRL_WEIGHTS_KEY_FILE, $DSRL_WEIGHTS_KEY.
    weights_key_file: str = ''
    # The HMAC key itself (sim bringups only, which generate one per run); empty = use the file.
    weights_key: str = ''
    # sensor_msgs/JointState input topic.
    joint_states_topic: str = '/joint_states'
    # geometry_msgs/PoseStamped input topic of the object pose.
    object_pose_topic: str = '/object_pose'
    # std_msgs/Float64MultiArray output topic (ros2_control forward_command_controller).
    command_topic: str = '/forward_position_controller/commands'
    # dsrl_msgs/StepReward input topic (the reward node's 'reward').
    reward_topic: str = 'reward'
    # dsrl_msgs/EpisodeStatus input topic (reliable, transient-local).
    episode_status_topic: str = 'episode_status'
    # dsrl_msgs/Transition output topic (reliable, deep queue).
    transitions_topic: str = '/dsrl/transitions'
    # Queue depth of the transitions publisher.
    transitions_depth: int = 1000
    # dsrl_msgs/ActorWeights input topic (reliable, transient-local, depth 1).
    weights_topic: str = '/dsrl/actor_weights'
    # std_msgs/Bool e-stop topic (true = stop commands at once; false = release).
    estop_topic: str = '/dsrl/estop'
    # std_srvs/SetBool e-stop service (data true = stop, false = release).
    estop_service: str = '/dsrl/estop'
    # Seed of the noise (N(0, I) and the stochastic actor).
    seed: int = 0
    # torch CPU threads of this node.
    torch_threads: int = 1

    def __post_init__(self) -> None:
        """Validate values and cross-field consistency."""
        check_choice('mode', self.mode, ('train', 'eval', 'warmup'))
        check_choice('exploration', self.exploration, ('episode', 'chunk'))
        check_choice('time_mode', self.time_mode, ('realtime', 'lockstep'))
        n = len(self.joint_names)
        if n == 0 or len(self.joint_limits_low) != n or len(self.joint_limits_high) != n:
            raise ParamError(f'joint_names, joint_limits_low, joint_limits_high need equal '
                             f'lengths, got {n}, {len(self.joint_limits_low)}, '
                             f'{len(self.joint_limits_high)}')
        if any(lo >= hi for lo, hi in zip(self.joint_limits_low, self.joint_limits_high)):
            raise ParamError('every joint_limits_low must be below joint_limits_high')
        for name in ('max_step', 'joint_state_timeout_s', 'stale_action_s', 'reward_timeout_s',
                     'action_magnitude'):
            if not getattr(self, name) > 0:
                raise ParamError(f'{name} must be positive, got {getattr(self, name)}')
        if not self.actor_hidden or any(h <= 0 for h in self.actor_hidden):
            raise ParamError(f'actor_hidden must be positive widths, got {self.actor_hidden}')
        if not self.obs_names:
            raise ParamError('obs_names must not be empty')
        check_range('transitions_depth', self.transitions_depth, 1)
        check_range('timing_log_period_s', self.timing_log_period_s, 0.0)
        check_range('seed', self.seed, 0)
        check_range('torch_threads', self.torch_threads, 1)
        if ':' not in self.policy_plugin:
            raise ParamError(f"policy_plugin must look like 'package.module:factory', "
                             f'got {self.policy_plugin!r}')
