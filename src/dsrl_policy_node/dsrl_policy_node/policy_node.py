"""
Policy node: the frozen base policy, steered by the noise actor, drives the arm at control rate.

Thin wrapper around ``dsrl_core.policy.runtime`` (observation layout, safety clamp, noise actor,
chunk timing) and the base-policy contract (``load_plugin``). Parameters: the
``PolicyNodeParams`` schema (``config/dsrl.yaml``, block ``policy_node``).

Subscribes ``joint_states_topic`` (sensor_msgs/JointState), ``object_pose_topic``
(geometry_msgs/PoseStamped), ``reward_topic`` (dsrl_msgs/StepReward), ``episode_status_topic``
(dsrl_msgs/EpisodeStatus, reliable transient-local), ``weights_topic`` (dsrl_msgs/ActorWeights,
reliable transient-local depth 1) and ``estop_topic`` (std_msgs/Bool). Publishes
``command_topic`` (std_msgs/Float64MultiArray) and ``transitions_topic`` (dsrl_msgs/Transition,
reliable, ``transitions_depth`` deep). Service ``estop_service`` (std_srvs/SetBool).

The control loop runs in its own callback group (timer; in lockstep also straight from the input
callback that completes a state), on one executor thread with the inputs: at a chunk boundary it
applies verified new weights, assembles the observation, asks the actor for w and the base
policy for the chunk; each action is due at ``start + i / control_hz`` and sent clamped (joint
limits, ``max_step``), or dropped when more than ``stale_action_s`` late. It acts only while the
episode is RUNNING, the e-stop is released and joint states are fresh.
One Transition is published per executed chunk once its rewards (matched by stamp) are in.

Lockstep (``time_mode`` lockstep, ``use_sim_time`` true): the loop is woken by every input; an
action is sent when the observation of the state it is due at has arrived and, after the first
command of an episode, the reward stamped with that state too, so the sim (which steps once per
command) never runs ahead of the reward node.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional

from dsrl_core.episode import Phase
from dsrl_core.params import declare_schema, ParamError
from dsrl_core.policy.base import load_plugin, sample_numpy
from dsrl_core.policy.policy_params import PolicyNodeParams
from dsrl_core.policy.runtime import (
    ActiveChunk,
    assemble_obs,
    clamp_command,
    NoiseSource,
    ObsLayoutError,
    parse_obs_layout,
    RewardBook,
    StepRewardRecord,
    TimingStats,
)
from dsrl_core.rl.keys import ENV_KEY, ENV_KEY_FILE, read_key_file
from dsrl_core.rl.serialize import WeightsRejected
from geometry_msgs.msg import PoseStamped
import numpy as np
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import SetBool
import torch

from dsrl_msgs.msg import ActorWeights, EpisodeStatus, StepReward, Transition
from dsrl_policy_node.convert import (
    command_msg,
    joint_state_fields,
    pose_xyz,
    time_to_ns,
    transition_msg,
)

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)



def load_key(p: PolicyNodeParams) -> Optional[bytes]:
    """Return the weights key: parameter, key file or $DSRL_WEIGHTS_KEY_FILE, $DSRL_WEIGHTS_KEY."""
    if p.weights_key:
        return p.weights_key.encode()
    path = p.weights_key_file or os.environ.get(ENV_KEY_FILE, '')
    if path:
        return read_key_file(path)
    text = os.environ.get(ENV_KEY, '').strip()
    return text.encode() if text else None


class PolicyNode(Node):
    """DSRL policy node for one arm (see the module docstring)."""

    def __init__(self) -> None:
        """Declare parameters, load the base policy and the actor, create the interfaces."""
        super().__init__('policy_node')
        p: PolicyNodeParams = declare_schema(self, PolicyNodeParams)
        self.p = p
        torch.set_num_threads(p.torch_threads)
        self.policy = load_plugin(p.policy_plugin,
                                  **({'path': p.policy_path} if p.policy_path else {}))
        meta = self.meta = self.policy.meta
        self.layout = parse_obs_layout(p.obs_names, meta)
        if len(p.joint_names) != meta.act_dim or (
                meta.action_names and tuple(meta.action_names) != tuple(p.joint_names)):
            raise ObsLayoutError(f'joint_names {list(p.joint_names)} do not match the '
                                 f"checkpoint's actions {list(meta.action_names)} "
                                 f'(act_dim {meta.act_dim})')
        self.lockstep = p.time_mode == 'lockstep'
        if self.lockstep and not self.get_parameter('use_sim_time').value:
            raise ParamError('time_mode lockstep needs use_sim_time:=true')
        self.noise = NoiseSource(meta, p.actor_hidden, p.actor_layer_norm, p.action_magnitude,
                                 p.mode, p.seed, p.exploration)
        self.key = load_key(p)
        self.low = np.asarray(p.joint_limits_low)
        self.high = np.asarray(p.joint_limits_high)
        self.dt_ns = int(round(1e9 / meta.control_hz))
        self.stale_ns = int(p.stale_action_s * 1e9)
        self.early_ns = self.dt_ns // 2 if not self.lockstep else 0
        self.lock = threading.Lock()
        # Inputs (written by the input callbacks, read by the control loop, under self.lock).
        self.joints: dict = {}
        self.joint_ns = -1
        self.joint_wall = -1e9
        self.obj = np.zeros(3)
        self.obj_ns = -1
        self.phase, self.episode_id, self.ended_episode = Phase.READY, 0, -1
        self.estop = False
        self.rewards = RewardBook()
        # Control state.
        self.chunk: Optional[ActiveChunk] = None
        self.pending: list[dict] = []
        self.last_cmd: Optional[np.ndarray] = None
        self.last_cmd_ns: Optional[int] = None
        self.step_index = 0
        self.chunk_episode = -1
        self.counts = {'commands': 0, 'dropped': 0, 'transitions': 0, 'stale_holds': 0}
        # Timing: control-cycle wall time, observation read -> first command of its chunk, and
        # weights publish stamp -> applied at a chunk boundary (this node's clock).
        self.timing = TimingStats()
        self.weights_stamp_ns: dict[int, int] = {}
        self.chunk_obs_t: Optional[float] = None

        self.io_group = MutuallyExclusiveCallbackGroup()
        self.control_group = MutuallyExclusiveCallbackGroup()
        io = self.io_group
        self.cmd_pub = self.create_publisher(Float64MultiArray, p.command_topic, 10)
        self.tr_pub = self.create_publisher(
            Transition, p.transitions_topic,
            QoSProfile(depth=p.transitions_depth, reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(JointState, p.joint_states_topic, self.on_joints, 10,
                                 callback_group=io)
        self.create_subscription(PoseStamped, p.object_pose_topic, self.on_pose, 10,
                                 callback_group=io)
        self.create_subscription(StepReward, p.reward_topic, self.on_reward, 100,
                                 callback_group=io)
        self.create_subscription(EpisodeStatus, p.episode_status_topic, self.on_status, LATCHED,
                                 callback_group=io)
        self.create_subscription(ActorWeights, p.weights_topic, self.on_weights, LATCHED,
                                 callback_group=io)
        self.create_subscription(Bool, p.estop_topic, self.on_estop_topic, 10, callback_group=io)
        self.create_service(SetBool, p.estop_service, self.on_estop_service, callback_group=io)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if self.lockstep:
            # Lockstep: the input callbacks run the control step themselves as soon as a state's
            # inputs are complete (see _wake); the timer only catches what nothing woke.
            self.create_timer(0.05, self.control_step, callback_group=self.control_group,
                              clock=steady)
        else:
            self.create_timer(1.0 / meta.control_hz, self.control_step,
                              callback_group=self.control_group, clock=steady)
        if p.timing_log_period_s > 0:
            self.create_timer(p.timing_log_period_s, self.log_timing, callback_group=io,
                              clock=steady)
        self.get_logger().info(
            f'policy node up: {p.policy_plugin} (obs {meta.obs_dim}, chunk {meta.horizon} x '
            f'{meta.act_dim} at {meta.control_hz} Hz), mode {p.mode} (exploration per '
            f'{p.exploration}), {p.time_mode}, actor '
            f'{self.noise.architecture}, weights key '
            f'{"set" if self.key else "MISSING (all weights will be rejected)"}')

    # ------------------------------------------------------------------ inputs
    def _wake(self) -> None:
        """
        Lockstep: run the control step now, in the calling input callback (outside self.lock).

        The step acts only once the state's observation and reward are complete, so the sim
        advances as soon as the policy can answer instead of on the next timer tick.
        """
        if self.lockstep:
            self.control_step()

    def on_joints(self, msg: JointState) -> None:
        """Keep the newest joint positions/velocities, their stamp and wall arrival time."""
        try:
            fields = joint_state_fields(msg)
        except ValueError as exc:
            self.get_logger().warning(f'bad joint state: {exc}', throttle_duration_sec=5.0)
            return
        with self.lock:
            self.joints, self.joint_ns = fields, time_to_ns(msg.header.stamp)
            self.joint_wall = time.monotonic()
        self._wake()

    def on_pose(self, msg: PoseStamped) -> None:
        """Keep the newest object position and its stamp."""
        with self.lock:
            self.obj, self.obj_ns = pose_xyz(msg), time_to_ns(msg.header.stamp)
        self._wake()

    def on_reward(self, msg: StepReward) -> None:
        """File a step reward under its stamp; an episode-ending one stops acting at once."""
        with self.lock:
            rec = StepRewardRecord(float(msg.reward), bool(msg.terminated), bool(msg.truncated),
                                   int(msg.episode_id))
            self.rewards.add(time_to_ns(msg.header.stamp), rec)
            if rec.terminated or rec.truncated:
                self.ended_episode = rec.episode_id
        self._wake()

    def on_status(self, msg: EpisodeStatus) -> None:
        """Track the episode phase and id."""
        with self.lock:
            self.phase, self.episode_id = Phase(msg.phase), int(msg.episode_id)
        self._wake()

    def on_weights(self, msg: ActorWeights) -> None:
        """Verify new actor weights (HMAC, hash, compatibility); keep them for a chunk boundary."""
        with self.lock:
            try:
                self.noise.offer(int(msg.version), bytes(msg.payload), msg.sha256,
                                 msg.hmac_sha256, self.key, int(msg.obs_dim),
                                 int(msg.chunk_length), int(msg.action_dim), msg.architecture,
                                 float(msg.action_magnitude))
            except WeightsRejected as exc:
                self.get_logger().warning(
                    f'rejected actor weights v{msg.version} (rejection #{self.noise.rejected}): '
                    f'{exc.reason}; keeping v{self.noise.version}')
                return
            stamp = time_to_ns(msg.header.stamp)
            # (timed in real time only: in lockstep this node's clock is a sim's /clock, which
            # the learner's stamp need not follow)
            if stamp > 0 and not self.lockstep:
                self.weights_stamp_ns[int(msg.version)] = stamp
                self.timing.add('weights_verified',
                                (self.get_clock().now().nanoseconds - stamp) / 1e6)
        self.get_logger().info(f'actor weights v{msg.version} verified; applied at the next '
                               'chunk boundary')

    def set_estop(self, on: bool, source: str) -> None:
        """Engage or release the e-stop; engaged, no command leaves this node from now on."""
        with self.lock:
            changed = self.estop != on
            self.estop = on
            if on and self.chunk is not None:
                self._finish(self.chunk, cut=True)
        if changed:
            text = f'E-STOP {"ENGAGED" if on else "released"} ({source})'
            if on:
                self.get_logger().error(text)
            else:
                self.get_logger().info(text)
        self._wake()

    def on_estop_topic(self, msg: Bool) -> None:
        """E-stop topic: true stops commands, false releases."""
        self.set_estop(bool(msg.data), 'topic')

    def on_estop_service(self, request: SetBool.Request,
                         response: SetBool.Response) -> SetBool.Response:
        """E-stop service: data true stops commands, false releases."""
        self.set_estop(bool(request.data), 'service')
        response.success = True
        response.message = f'e-stop {"engaged" if request.data else "released"}'
        return response

    # ------------------------------------------------------------------ control loop
    def control_step(self) -> None:
        """One pass of the control loop (timer or wake-up); passes that command are timed."""
        t0 = time.perf_counter()
        with self.lock:
            before = self.counts['commands']
            self._control()
            self._flush()
            if self.counts['commands'] != before:
                self.timing.add('cycle', (time.perf_counter() - t0) * 1e3)

    def log_timing(self) -> None:
        """Log the timing percentiles (see TimingStats.line)."""
        with self.lock:
            text = self.timing.line(self.dt_ns / 1e6)
        self.get_logger().info(text)

    def _now_ns(self) -> int:
        return self.joint_ns if self.lockstep else self.get_clock().now().nanoseconds

    def _obs(self) -> np.ndarray:
        return assemble_obs(self.layout, self.joints, self.obj)

    def _control(self) -> None:
        if self.joint_ns < 0:
            return
        now = self._now_ns()
        running = self.phase == Phase.RUNNING and self.episode_id != self.ended_episode
        c = self.chunk
        if c is not None and (self.estop or not running or self.episode_id != c.episode_id):
            self._finish(c, cut=True)
            c = None
        if not running or self.estop:
            return
        age = time.monotonic() - self.joint_wall
        if age > self.p.joint_state_timeout_s:
            self.counts['stale_holds'] += 1
            self.last_cmd = None
            self.get_logger().warning(
                f'joint_states stale ({age:.2f} s old > {self.p.joint_state_timeout_s} s): '
                'holding, no new commands', throttle_duration_sec=2.0)
            return
        if self.lockstep:
            if self.obj_ns != self.joint_ns:
                return  # this state's observation is not complete yet
            if self.last_cmd_ns is not None and now > self.last_cmd_ns and \
                    not self.rewards.has(now):
                return  # the reward of this state has not arrived yet
        if c is not None and c.finished and now >= c.due_ns(c.horizon) - self.early_ns:
            self._finish(c, cut=False)
            c = None
        if c is None:
            c = self._start_chunk(now)
        i = c.take(now, self.stale_ns, self.early_ns)
        if c.dropped:
            self.get_logger().warning(
                f'{c.dropped} stale action(s) dropped (> {self.p.stale_action_s} s late); '
                'ending the chunk, replanning from the current observation',
                throttle_duration_sec=2.0)
            self._finish(c, cut=True)
            return
        if i is None:
            return
        ref = self.last_cmd if self.last_cmd is not None else np.array(
            [self.joints[n][0] for n in self.p.joint_names])
        q = clamp_command(c.actions[i], ref, self.low, self.high, self.p.max_step)
        self.cmd_pub.publish(command_msg(q))
        if self.chunk_obs_t is not None:
            self.timing.add('obs_to_command', (time.perf_counter() - self.chunk_obs_t) * 1e3)
            self.chunk_obs_t = None
        c.record(q)
        self.last_cmd, self.last_cmd_ns = q, now
        self.counts['commands'] += 1

    def _start_chunk(self, now: int) -> ActiveChunk:
        changed = self.noise.apply()
        if changed is not None:
            stamp = self.weights_stamp_ns.pop(changed[1], None)
            late = ''
            if stamp is not None:
                ms = (self.get_clock().now().nanoseconds - stamp) / 1e6
                self.timing.add('weights_applied', ms)
                late = f', {ms:.0f} ms after the learner published it'
            self.weights_stamp_ns.clear()
            self.get_logger().info(f'actor version {changed[0]} -> {changed[1]} '
                                   f'(applied at a chunk boundary{late})')
        if self.episode_id != self.chunk_episode:
            self.chunk_episode, self.step_index = self.episode_id, 0
            self.last_cmd, self.last_cmd_ns = None, None
        self.chunk_obs_t = time.perf_counter()
        obs = self._obs()
        w = self.noise.noise(obs, self.episode_id)
        actions = sample_numpy(self.policy, obs, w)
        self.chunk = ActiveChunk(obs=obs, obs_stamp_ns=self.joint_ns, start_ns=now,
                                 dt_ns=self.dt_ns, noise=w, actions=actions,
                                 episode_id=self.episode_id,
                                 actor_version=self.noise.version, step_index=self.step_index)
        self.step_index += 1
        return self.chunk

    def _finish(self, c: ActiveChunk, cut: bool) -> None:
        """End the current chunk; keep its transition until its rewards are in."""
        self.chunk = None
        self.counts['dropped'] += c.dropped
        if cut:
            self.last_cmd = None
        if c.sent == 0:
            return
        rows = list(c.rows) + [c.rows[-1]] * (c.horizon - len(c.rows))
        # Lockstep: the chunk ends at the state after its last executed step, which may not have
        # arrived yet when the chunk is cut; in real time it ends now.
        end = c.due_ns(c.sent) if self.lockstep else self.joint_ns
        self.pending.append({'chunk': c, 'rows': np.array(rows[:c.horizon]), 'next_obs': None,
                             'end_ns': end, 'cut': cut, 'wall': time.monotonic()})

    def _flush(self) -> None:
        """Publish the transitions whose rewards are in (or waited for long enough)."""
        for t in self.pending:
            if t['next_obs'] is None and (self.joint_ns >= t['end_ns'] or time.monotonic() -
                                          t['wall'] > self.p.reward_timeout_s):
                t['next_obs'] = self._obs()
        while self.pending and self.pending[0]['next_obs'] is not None:
            t = self.pending[0]
            c: ActiveChunk = t['chunk']
            got = self.rewards.window(c.obs_stamp_ns, t['end_ns'], c.episode_id)
            newest = max((s for s, r in self.rewards.rewards.items()
                          if r.episode_id == c.episode_id), default=-1)
            ended = any(r.terminated or r.truncated for r in got)
            if not (newest >= t['end_ns'] or ended or
                    time.monotonic() - t['wall'] > self.p.reward_timeout_s):
                return
            self.pending.pop(0)
            terminated = any(r.terminated for r in got)
            truncated = any(r.truncated for r in got) or (t['cut'] and not terminated)
            self.tr_pub.publish(transition_msg(
                stamp_ns=c.start_ns, robot_id=self.p.robot_id, episode_id=c.episode_id,
                step_index=c.step_index, obs=c.obs, next_obs=t['next_obs'], noise=c.noise,
                action=t['rows'], reward=sum(r.reward for r in got), terminated=terminated,
                truncated=truncated, actor_version=c.actor_version, executed_steps=c.sent))
            self.counts['transitions'] += 1
            self.rewards.prune(c.obs_stamp_ns)

    def summary(self) -> str:
        """Counters for the log."""
        n = self.counts
        return (f"commands {n['commands']}, dropped stale actions {n['dropped']}, "
                f"transitions {n['transitions']}, weights rejected {self.noise.rejected}, "
                f'actor v{self.noise.version}')


def main(args=None) -> int:
    """Run the policy node until shutdown."""
    rclpy.init(args=args)
    node = None
    try:
        node = PolicyNode()
        # One thread: rclpy's MultiThreadedExecutor (Kilted wheels) left this node's input
        # callbacks unserved for seconds at a time under load (lockstep fell to 16-66 commands
        # in 30 s instead of ~660). Every callback here is short (a chunk is one ~5 ms sample()),
        # so the control loop keeps its own callback group and its timing on one thread.
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (ParamError, ObsLayoutError, ValueError, FileNotFoundError, TypeError) as exc:
        print(f'policy_node: {exc}', file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # Ctrl-C shuts the context down under the executor's threads (RCLError 'context is not
        # valid'): that is a clean stop; anything while the context is alive is a real error.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            print(f'policy_node stopping: {node.summary()}', flush=True)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
