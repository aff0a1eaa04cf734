"""Parameter schema of the learner node (``config/dsrl.yaml``, block ``learner_node``)."""

from __future__ import annotations

import dataclasses
import math
import os

import torch

from dsrl_core.params import check_choice, check_range, ParamError
from dsrl_core.rl.na import NAConfig
from dsrl_core.rl.sac import SACConfig

ALGORITHMS = ('dsrl_sac', 'dsrl_na')


def check_device(device: str) -> None:
    """Raise ParamError unless ``device`` is 'cpu' or a CUDA device torch can use here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ParamError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if dev.type == 'cpu':
        return
    if dev.type != 'cuda':
        raise ParamError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available():
        raise ParamError(f'device {device!r}, but torch {torch.__version__} sees no CUDA device '
                         "on this machine (use 'cpu')")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ParamError(f'device {device!r}, but this machine has '
                         f'{torch.cuda.device_count()} CUDA device(s)')


@dataclasses.dataclass
class LearnerNodeParams:
    """Every parameter of the learner node; the node declares its ROS parameters from it."""

    # Learning algorithm: 'dsrl_na' (noise aliasing; the one that learns on our push task, see
    # docs/benchmarks) or 'dsrl_sac' (SAC on the noise).
    algorithm: str = 'dsrl_na'
    # Base-policy factory 'package.module:function' (gives obs_dim, chunk shape; NA calls it).
    policy_plugin: str = 'dsrl_core.policy.diffusion:load_policy'
    # Base-policy checkpoint passed to the factory as path=...; empty = the factory's default.
    policy_path: str = ''
    # Robot ids whose transitions are accepted; '*' accepts any non-empty id.
    robot_ids: tuple[str, ...] = ('*',)
    # Hidden widths of the actor and critic MLPs.
    hidden: tuple[int, ...] = (128, 128, 128)
    # Transitions per gradient step.
    batch_size: int = 256
    # Gradient updates per arriving transition (update-to-data ratio; DSRL-NA 10, DSRL-SAC 20).
    utd_ratio: int = 10
    # Transitions in the replay buffer before the first update.
    warmup_transitions: int = 100
    # Replay buffer capacity in transitions (the oldest are overwritten).
    buffer_capacity: int = 200000
    # Adam learning rate of actor, critics and temperature.
    lr: float = 0.0003
    # Discount per chunk transition.
    gamma: float = 0.99
    # Polyak rate of the target critics.
    tau: float = 0.005
    # Initial entropy temperature.
    init_alpha: float = 1.0
    # Target entropy of the noise actor.
    target_entropy: float = 0.0
    # The actor's noise lies in [-action_magnitude, action_magnitude] (the authors use 1.0-2.5,
    # typically 1.5; 1.0 keeps the push task's actor near the base policy's likely noise:
    # 0.94-0.98 at 50 episodes over eight seeds, mean 0.97, where 1.5 gets 0.78-0.98, mean 0.91
    # over six; docs/benchmarks session 9). Must match the policy node's.
    action_magnitude: float = 1.0
    # DSRL-NA only: noise-critic distillation steps per update.
    n_distill: int = 2
    # DSRL-NA only: distillation pool, noises decoded once per stored state and relabelled by
    # Q^A at every distillation step (0 = decode fresh noise at every step). With a pool,
    # distillation steps no longer call the base policy, so they are cheap.
    pool_noises: int = 16
    # DSRL-NA only: subtract alpha * log pi in the TD target of Q^A (soft backup).
    backup_entropy: bool = False
    # DSRL-NA only: what the action critic sees of a chunk: 'delta' = each command minus the
    # measured position of its joint (observation 'joint_pos/<joint>'), over delta_scale rad;
    # 'absolute' = commands scaled to [-1, 1] by the policy's action bounds.
    action_input: str = 'delta'
    # DSRL-NA only: scale of the 'delta' chunk input, in command units (rad).
    delta_scale: float = NAConfig.delta_scale
    # DSRL-NA only: how the action critic is fitted to its TD targets: 'mse' = plain regression
    # (the DSRL authors') or 'hl_gauss' = classification over value_bins values evenly spaced
    # in [value_min, value_max] (HL-Gauss cross-entropy, meant to resolve sharp value steps;
    # on the push task no better than 'mse' over 5 seeds, docs/benchmarks session 7).
    critic_loss: str = 'mse'
    # DSRL-NA 'hl_gauss' only: the range must hold the discounted returns the task reaches (no
    # value is below r_min / (1 - gamma) for chunk rewards r in [r_min, 0]: -400 for 4 steps of
    # -1 and gamma 0.99; push-task targets stay above -150); TD targets outside are clamped and
    # counted (TensorBoard 'train/value_clipped', a warning above 1 %).
    value_min: float = NAConfig.value_min
    value_max: float = NAConfig.value_max
    value_bins: int = NAConfig.value_bins
    # Seed of the networks, the updates and the batch sampling.
    seed: int = 0
    # Publish signed actor weights every this many updates.
    publish_every: int = 50
    # File holding the HMAC key of the weights; empty = $DSRL_WEIGHTS_KEY_FILE, $DSRL_WEIGHTS_KEY.
    key_file: str = ''
    # Sim mode: without a key, generate one for this run (written to key_file or the data dir).
    sim: bool = True
    # Root of the learner's data; empty = $DSRL_DATA, else ./runs/dsrl.
    data_dir: str = ''
    # Checkpoint directory; empty = <data_dir>/checkpoints.
    checkpoint_dir: str = ''
    # TensorBoard directory; empty = <data_dir>/logs/tensorboard/learner.
    tensorboard_dir: str = ''
    # Seconds between periodic checkpoints (0 = only on request and at exit).
    checkpoint_every_s: float = 300.0
    # Checkpoints kept in checkpoint_dir (older ones are deleted).
    keep_checkpoints: int = 2
    # Resume from the newest checkpoint in checkpoint_dir at start.
    resume: bool = True
    # Warm start when no checkpoint is resumed: comma-separated bags (dsrl record folders or .mcap
    # files) and/or saved buffers (.npz, e.g. from `dsrl to-buffer`) whose transitions are loaded
    # into the replay buffer (checked like live ones; they earn no updates of their own).
    warm_start: str = ''
    # DSRL-NA only: demonstrations mixed into every batch as offline data (what NA can learn
    # from without the noise): comma-separated demo files (.npz, dsrl_core.sim.demos format, e.g.
    # the BC policy's training demos or `dsrl to-demos` output), cut into chunk transitions of
    # the policy's horizon with the rewards below; empty = online data only. On the push task,
    # the then shipped BC's 8 demos at 0.1 gave no gain (docs/benchmarks, session 6).
    offline_demos: str = ''
    # DSRL-NA only: fraction of every batch drawn from offline_demos.
    offline_ratio: float = 0.1
    # Reward of each demonstration step before success and of the success step; keep them equal
    # to reward_node's step_reward / success_reward (a test checks config/dsrl.yaml).
    offline_step_reward: float = -1.0
    offline_success_reward: float = 0.0
    # Write a checkpoint when the node shuts down cleanly.
    checkpoint_on_exit: bool = True
    # Updates between TensorBoard loss scalars (means over those updates).
    log_every: int = 50
    # Seconds between rate scalars (updates/s, transitions/s, buffer size) and a log line.
    stats_period_s: float = 5.0
    # Episodes in the moving window of the success rate.
    success_window: int = 20
    # torch threads of the training thread (the CPU is shared with the other nodes).
    torch_threads: int = 1
    # Raise the learner process's niceness by this much at start (0 = leave it): on a machine it
    # shares with the policy node, training then yields the CPU to the control loop.
    cpu_nice: int = 19
    # Torch device of the networks ('cpu', 'cuda', 'cuda:1'); DSRL-NA's base policy moves there
    # too. At the default widths a GPU is no faster than the CPU (see the README).
    device: str = 'cpu'
    # Topic of the incoming transitions (dsrl_msgs/Transition).
    transitions_topic: str = '/dsrl/transitions'
    # Topic of the published weights (dsrl_msgs/ActorWeights, transient-local depth 1).
    weights_topic: str = '/dsrl/actor_weights'
    # Topic of the episode status (dsrl_msgs/EpisodeStatus) for episode statistics; with several
    # robots in namespaces, '/{robot}/episode_status' subscribes once per id in robot_ids.
    episode_status_topic: str = 'episode_status'
    # Depth of the reliable transitions subscription queue.
    transition_queue_depth: int = 1000

    def __post_init__(self) -> None:
        check_choice('algorithm', self.algorithm, ALGORITHMS)
        if ':' not in self.policy_plugin:
            raise ParamError("policy_plugin must look like 'package.module:factory', got "
                             f'{self.policy_plugin!r}')
        if not self.robot_ids or any(not r for r in self.robot_ids):
            raise ParamError(f"robot_ids must list non-empty ids (or '*'), got {self.robot_ids}")
        for name in ('batch_size', 'utd_ratio', 'buffer_capacity', 'publish_every', 'log_every',
                     'success_window', 'torch_threads', 'keep_checkpoints',
                     'transition_queue_depth'):
            check_range(name, getattr(self, name), 1)
        check_range('warmup_transitions', self.warmup_transitions, 1, self.buffer_capacity)
        check_range('n_distill', self.n_distill, 0)
        check_range('pool_noises', self.pool_noises, 0)
        check_range('cpu_nice', self.cpu_nice, 0, 19)
        check_range('checkpoint_every_s', self.checkpoint_every_s, 0.0)
        for name in ('offline_ratio', 'offline_step_reward', 'offline_success_reward'):
            if not math.isfinite(getattr(self, name)):
                raise ParamError(f'{name} must be a finite number, got {getattr(self, name)}')
        check_range('offline_ratio', self.offline_ratio, 0.0, 1.0)
        if self.critic_loss != 'mse' and self.algorithm != 'dsrl_na':
            raise ParamError(f'critic_loss {self.critic_loss!r} needs algorithm dsrl_na (it fits '
                             f'the action critic, which {self.algorithm} does not have)')
        if self.offline_demo_paths() and self.algorithm != 'dsrl_na':
            raise ParamError('offline_demos needs algorithm dsrl_na (demonstrations carry no '
                             f'noise for {self.algorithm} to learn from)')
        if self.stats_period_s <= 0:
            raise ParamError(f'stats_period_s must be positive, got {self.stats_period_s}')
        for topic in ('transitions_topic', 'weights_topic', 'episode_status_topic'):
            if not getattr(self, topic):
                raise ParamError(f'{topic} must not be empty')
        if '{robot}' in self.episode_status_topic and '*' in self.robot_ids:
            raise ParamError("episode_status_topic with '{robot}' needs explicit robot_ids, "
                             f'not {list(self.robot_ids)}')
        check_device(self.device)
        try:
            self.algo_config()
        except ValueError as exc:
            raise ParamError(str(exc)) from exc

    def status_topics(self) -> list[str]:
        """Return the episode status topics: one, or one per robot id ('{robot}' in the name)."""
        if '{robot}' not in self.episode_status_topic:
            return [self.episode_status_topic]
        return [self.episode_status_topic.replace('{robot}', r) for r in self.robot_ids]

    def warm_start_paths(self) -> list[str]:
        """Return the warm-start paths (``warm_start`` split at commas, blanks dropped)."""
        return [x.strip() for x in self.warm_start.split(',') if x.strip()]

    def offline_demo_paths(self) -> list[str]:
        """Return the offline demonstration files (``offline_demos`` split at commas)."""
        return [x.strip() for x in self.offline_demos.split(',') if x.strip()]

    def accepts_robot(self, robot_id: str) -> bool:
        """Return whether transitions of ``robot_id`` are accepted."""
        return bool(robot_id) and ('*' in self.robot_ids or robot_id in self.robot_ids)

    def algo_config(self) -> SACConfig:
        """Return the SACConfig (dsrl_sac) or NAConfig (dsrl_na) of these parameters."""
        common = {'hidden': self.hidden, 'batch_size': self.batch_size,
                  'utd_ratio': self.utd_ratio, 'lr': self.lr, 'gamma': self.gamma,
                  'tau': self.tau, 'init_alpha': self.init_alpha,
                  'target_entropy': self.target_entropy,
                  'action_magnitude': self.action_magnitude, 'seed': self.seed}
        if self.algorithm == 'dsrl_na':
            return NAConfig(n_distill=self.n_distill, pool_noises=self.pool_noises,
                            backup_entropy=self.backup_entropy,
                            action_input=self.action_input, delta_scale=self.delta_scale,
                            critic_loss=self.critic_loss, value_min=self.value_min,
                            value_max=self.value_max, value_bins=self.value_bins,
                            **common)
        return SACConfig(**common)

    def resolved_dirs(self, environ: dict | None = None) -> tuple[str, str, str]:
        """Return absolute ``(data_dir, checkpoint_dir, tensorboard_dir)`` after the defaults."""
        env = os.environ if environ is None else environ
        data = self.data_dir or env.get('DSRL_DATA') or os.path.join('runs', 'dsrl')
        data = os.path.abspath(os.path.expanduser(data))
        ckpt = self.checkpoint_dir or os.path.join(data, 'checkpoints')
        tb = self.tensorboard_dir or os.path.join(data, 'logs', 'tensorboard', 'learner')
        return (data, os.path.abspath(os.path.expanduser(ckpt)),
                os.path.abspath(os.path.expanduser(tb)))
