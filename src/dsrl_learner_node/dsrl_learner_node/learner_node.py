"""
Learner node: transitions in, HMAC-signed noise-actor weights out, training in between.

Thin wrapper (the logic is in ``dsrl_core.rl``): the transitions callback converts and checks each
message (``trainer.check_transition``) and inserts it into the replay buffer, taking every queued
one in the same executor cycle (see ``DRAIN_PAUSE_S``); ONE training thread
runs ``Trainer.train`` whenever updates are due (update-to-data ratio against arriving data, idle
otherwise, nothing before the warm-up) and publishes the weights every ``publish_every`` updates.
Parameters: the ``LearnerNodeParams`` schema (``config/dsrl.yaml``, block ``learner_node``).

Topics: subscribes ``transitions_topic`` (dsrl_msgs/Transition, reliable, deep queue) and
``episode_status_topic`` (dsrl_msgs/EpisodeStatus, reliable, transient-local); publishes
``weights_topic`` (dsrl_msgs/ActorWeights, reliable, transient-local, depth 1). Service
``/dsrl/save_checkpoint`` (dsrl_msgs/SaveCheckpoint). TensorBoard scalars go to
``tensorboard_dir``; checkpoints to ``checkpoint_dir`` (resumed from at start when ``resume``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional
import warnings

from dsrl_core.params import declare_schema, ParamError
from dsrl_core.policy.base import load_plugin
from dsrl_core.rl import checkpoint as ck
from dsrl_core.rl.buffer import ReplayBuffer
from dsrl_core.rl.keys import resolve_key, WeightsKeyError
from dsrl_core.rl.learner_params import LearnerNodeParams
from dsrl_core.rl.offline import load_offline_demos
from dsrl_core.rl.trainer import (
    architecture_string,
    build_algorithm,
    check_transition,
    EpisodeStats,
    StatsAccumulator,
    Trainer,
    TransitionRejected,
)
import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
import torch
from torch.utils.tensorboard import SummaryWriter

from dsrl_learner_node.conversions import transition_from_msg, weights_msg
from dsrl_msgs.msg import ActorWeights, EpisodeStatus, Transition
from dsrl_msgs.srv import SaveCheckpoint

LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
TERMINAL_PHASES = (EpisodeStatus.PHASE_SUCCESS, EpisodeStatus.PHASE_TIMEOUT,
                   EpisodeStatus.PHASE_ABORTED)
# After a spin that took transitions the executor pauses this long, so the next wake drains the
# queued ones in one callback instead of one executor cycle each: rclpy's per-cycle Python work
# (wait set, task) holds the GIL the training thread needs (bench_runtime part 3).
DRAIN_PAUSE_S = 0.02



class LearnerNode(Node):
    """Asynchronous DSRL learner for any number of policy nodes."""

    def __init__(self) -> None:
        """Declare parameters, load key, policy meta and checkpoint, create the interfaces."""
        super().__init__('learner_node')
        p: LearnerNodeParams = declare_schema(self, LearnerNodeParams)
        self.p = p
        torch.set_num_threads(p.torch_threads)
        if p.cpu_nice > 0:
            os.nice(p.cpu_nice)
        data_dir, self.checkpoint_dir, tb_dir = p.resolved_dirs()
        self.key, key_source = resolve_key(p.key_file, p.sim,
                                           os.path.join(data_dir, 'sim_weights.key'))
        kwargs = {'path': p.policy_path} if p.policy_path else {}
        base = load_plugin(p.policy_plugin, **kwargs)
        self.meta = base.meta
        self.noise_shape = base.meta.noise_shape
        algo = build_algorithm(p, base)
        buffer = ReplayBuffer(self.meta.obs_dim, self.noise_shape, self.noise_shape,
                              p.buffer_capacity)
        self.trainer = Trainer(algo, buffer, p.utd_ratio, p.warmup_transitions, p.batch_size,
                               p.seed)
        self.architecture = architecture_string(p)
        self.received = 0
        self.rejected = 0
        self.published_version = -1
        self.episodes = EpisodeStats(p.success_window)
        self.losses = StatsAccumulator()
        self.resumed_from = self.resume() if p.resume else None
        if self.resumed_from is None and p.warm_start_paths():
            for line in self.trainer.warm_start(p.warm_start_paths(), tuple(p.robot_ids)):
                self.get_logger().info(f'warm start: {line}')
            self.get_logger().info(f'warm start: buffer {len(self.trainer.buffer)} transitions')
        if p.offline_demo_paths():
            offline, lines = load_offline_demos(
                p.offline_demo_paths(), self.meta.obs_dim, self.noise_shape[0],
                self.noise_shape[1], p.offline_step_reward, p.offline_success_reward)
            self.trainer.set_offline(offline, p.offline_ratio)
            for line in lines:
                self.get_logger().info(f'offline demonstrations: {line}')
            self.get_logger().info(f'offline demonstrations: {len(offline)} transitions, '
                                   f'{p.offline_ratio:.0%} of every batch')

        os.makedirs(tb_dir, exist_ok=True)
        self.writer = SummaryWriter(tb_dir)
        self.weights_pub = self.create_publisher(ActorWeights, p.weights_topic, LATCHED_QOS)
        depth_qos = QoSProfile(depth=p.transition_queue_depth,
                               reliability=ReliabilityPolicy.RELIABLE)
        self.transitions_sub = self.create_subscription(Transition, p.transitions_topic,
                                                        self.on_transitions, depth_qos)
        self.took_transitions = False
        for topic in p.status_topics():
            self.create_subscription(EpisodeStatus, topic, self.on_status, LATCHED_QOS)
        self.create_service(SaveCheckpoint, '/dsrl/save_checkpoint', self.on_save)
        self.create_timer(p.stats_period_s, self.on_stats)
        if p.checkpoint_every_s > 0:
            self.create_timer(p.checkpoint_every_s, self.periodic_checkpoint)
        self._rate_mark = (time.monotonic(), self.trainer.num_updates, self.received)
        self._new_data = threading.Event()
        self._stop = threading.Event()
        self.train_error: Optional[BaseException] = None
        if self.trainer.num_updates > 0:
            self.publish_weights()  # a late or restarted policy node gets the resumed actor
        self.thread = threading.Thread(target=self.train_loop, name='dsrl-train', daemon=True)
        self.thread.start()
        self.get_logger().info(
            f'learner up: {p.algorithm}, obs_dim {self.meta.obs_dim}, noise {self.noise_shape}, '
            f'hidden {list(p.hidden)}, batch {p.batch_size}, UTD {p.utd_ratio}, warm-up '
            f'{p.warmup_transitions}, nice +{p.cpu_nice}, key {key_source}, checkpoints '
            f'{self.checkpoint_dir}, '
            f'TensorBoard {tb_dir}'
            + (f', resumed from {self.resumed_from}' if self.resumed_from else ''))

    # ------------------------------------------------------------------ data in
    def on_transitions(self, msg: Transition) -> None:
        """Handle ``msg`` and every transition already queued behind it (one executor cycle)."""
        self.on_transition(msg)
        sub = self.transitions_sub
        for _ in range(self.p.transition_queue_depth):
            with sub.handle:  # what rclpy's executor does to take one message
                taken = sub.handle.take_message(Transition, False)
            if taken is None:
                break
            self.on_transition(taken[0])
        self.took_transitions = True

    def on_transition(self, msg: Transition) -> None:
        """Check one transition and insert it; bad ones are counted and logged, never fatal."""
        self.received += 1
        try:
            arrays = check_transition(transition_from_msg(msg), self.meta.obs_dim,
                                      self.noise_shape, self.p.accepts_robot)
        except TransitionRejected as exc:
            self.rejected += 1
            self.get_logger().warning(
                f'rejected transition from {msg.robot_id!r} (episode {msg.episode_id}, step '
                f'{msg.step_index}): {exc} [{self.rejected} rejected so far]',
                throttle_duration_sec=5.0)
            return
        self.trainer.add(msg.robot_id, arrays)
        done = arrays['terminated'] or arrays['truncated']
        ret = self.episodes.transition(msg.robot_id, int(msg.episode_id), arrays['reward'], done)
        if ret is not None:
            self.writer.add_scalar('transitions/episode_return', ret, self.received)
            self.writer.add_scalar(f'transitions/{msg.robot_id}/episode_return', ret,
                                   self.received)
        self._new_data.set()

    def on_status(self, msg: EpisodeStatus) -> None:
        """Record each finished episode once (success rate, return, length; per robot)."""
        if msg.phase not in TERMINAL_PHASES or msg.episode_id == 0:
            return
        if not self.episodes.episode_end(msg.robot_id, msg.episode_id, msg.success,
                                         msg.episode_return):
            return
        n, r = self.episodes.finished, msg.robot_id
        w = self.writer
        w.add_scalar('episode/success_rate', self.episodes.success_rate(), n)
        w.add_scalar('episode/return', msg.episode_return, n)
        w.add_scalar('episode/length', msg.length, n)
        w.add_scalar(f'episode/{r}/success_rate', self.episodes.success_rate(r), n)
        w.add_scalar(f'episode/{r}/return', msg.episode_return, n)
        w.add_scalar('episode/actor_version', max(self.published_version, 0), n)

    # ------------------------------------------------------------------ training
    def train_loop(self) -> None:
        """Train whenever updates are due; publish every publish_every updates."""
        torch.set_num_threads(self.p.torch_threads)
        every = self.p.publish_every
        try:
            while not self._stop.is_set():
                if self.trainer.updates_due() == 0:
                    self._new_data.wait(0.2)
                    self._new_data.clear()
                    continue
                stats = self.trainer.train(every - self.trainer.num_updates % every)
                self.losses.add(stats)
                n = self.trainer.num_updates
                if self.losses.count >= self.p.log_every:
                    means = self.losses.pop_means()
                    for k, v in means.items():
                        self.writer.add_scalar(f'train/{k}', v, n)
                    if means.get('value_clipped', 0.0) > 0.01:
                        self.get_logger().warning(
                            f"{means['value_clipped']:.1%} of the action critic's TD targets "
                            f'fall outside [value_min, value_max] = [{self.p.value_min}, '
                            f'{self.p.value_max}] and are clamped: widen the range to hold '
                            'the returns', throttle_duration_sec=60.0)
                if n % every == 0:
                    self.publish_weights()
        except Exception as exc:  # surface it: the node must not train silently no more
            if not self.context.ok():
                return  # Ctrl-C shut the ROS context down under us: a clean stop, not a crash
            self.train_error = exc
            self.get_logger().error(f'training thread died: {type(exc).__name__}: {exc}')
            raise

    def publish_weights(self) -> None:
        """Sign and publish the current actor (version = number of updates)."""
        with self.trainer.lock:
            state = self.trainer.algorithm.actor_state_dict()
            version = self.trainer.num_updates
        msg = weights_msg(state, version, self.key, self.meta.obs_dim, self.noise_shape,
                          self.architecture, self.p.algorithm, self.p.action_magnitude)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.weights_pub.publish(msg)
        self.published_version = version

    # ------------------------------------------------------------------ checkpoints
    def resume(self) -> Optional[str]:
        """Load the newest checkpoint of checkpoint_dir, if any (raises CheckpointError)."""
        path = ck.latest_checkpoint(self.checkpoint_dir)
        if path is None:
            return None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always', RuntimeWarning)
            info = ck.read_checkpoint(path, self.trainer.algorithm, self.trainer.buffer)
        for w in caught:  # e.g. generators of another device kind: resumed, not bit-identical
            self.get_logger().warning(f'resume from {path}: {w.message}')
        self.trainer.restore_info(info)
        self.get_logger().info(f'resumed from {path}: {self.trainer.num_updates} updates, '
                               f'buffer {len(self.trainer.buffer)} transitions')
        return path

    def save_checkpoint(self, root: str = '') -> str:
        """Write a checkpoint (consistent: training pauses meanwhile); return its directory."""
        with self.trainer.lock:
            path = ck.write_checkpoint(root or self.checkpoint_dir, self.trainer.algorithm,
                                       self.trainer.buffer, self.trainer.info(),
                                       self.p.keep_checkpoints)
        self.get_logger().info(f'checkpoint {path}: {self.trainer.num_updates} updates, '
                               f'buffer {len(self.trainer.buffer)}')
        return path

    def periodic_checkpoint(self) -> None:
        """Write the periodic checkpoint; failures are logged, training goes on."""
        try:
            self.save_checkpoint()
        except OSError as exc:
            self.get_logger().error(f'periodic checkpoint failed: {exc}')

    def on_save(self, request: SaveCheckpoint.Request,
                response: SaveCheckpoint.Response) -> SaveCheckpoint.Response:
        """Write a checkpoint on request."""
        try:
            response.path = self.save_checkpoint(request.path)
            response.success, response.message = True, 'written'
        except (OSError, ValueError) as exc:
            response.success, response.message = False, f'{type(exc).__name__}: {exc}'
        response.step = self.trainer.num_updates
        return response

    # ------------------------------------------------------------------ statistics
    def on_stats(self) -> None:
        """Write rate scalars and log one summary line."""
        now, updates, received = time.monotonic(), self.trainer.num_updates, self.received
        t0, u0, r0 = self._rate_mark
        self._rate_mark = (now, updates, received)
        ups, tps = (updates - u0) / (now - t0), (received - r0) / (now - t0)
        size = len(self.trainer.buffer)
        w = self.writer
        for key, value in (('rate/updates_per_s', ups), ('rate/transitions_per_s', tps),
                           ('buffer/size', size), ('buffer/rejected', self.rejected),
                           ('weights/version', max(self.published_version, 0))):
            w.add_scalar(key, value, received)
        w.flush()
        self.get_logger().info(
            f'buffer {size}, received {received} ({tps:.1f}/s), rejected {self.rejected}, '
            f'updates {updates} ({ups:.1f}/s), weights v{max(self.published_version, 0)}, '
            f'episodes {self.episodes.finished}, success {self.episodes.success_rate():.2f}'
            + self.per_robot_text())
        if self.train_error is not None:
            raise RuntimeError(f'training thread died: {self.train_error}')

    def per_robot_text(self) -> str:
        """With several robots: ``; arm0 0.60 of 12, arm1 0.50 of 10`` (window rate, episodes)."""
        robots = sorted(self.episodes.per_robot)
        if len(robots) < 2:
            return ''
        return '; ' + ', '.join(
            f'{r} {self.episodes.success_rate(r):.2f} of {self.episodes.count(r)}' for r in robots)

    def close(self, checkpoint: bool) -> None:
        """Stop the training thread, write the exit checkpoint, close TensorBoard."""
        self._stop.set()
        self._new_data.set()
        self.thread.join(timeout=30.0)
        if checkpoint and self.p.checkpoint_on_exit:
            try:
                self.save_checkpoint()
            except OSError as exc:
                self.get_logger().error(f'exit checkpoint failed: {exc}')
        self.writer.close()


def main(args=None) -> int:
    """Run the learner node until shutdown."""
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = LearnerNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.5)
            if node.took_transitions:  # let the next ones queue up (DRAIN_PAUSE_S)
                node.took_transitions = False
                time.sleep(DRAIN_PAUSE_S)
    except (ParamError, WeightsKeyError, ck.CheckpointError, ValueError) as exc:
        print(f'learner_node: {exc}', file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close(checkpoint=code == 0)
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == '__main__':
    sys.exit(main())
