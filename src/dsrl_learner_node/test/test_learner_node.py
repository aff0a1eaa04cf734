"""Integration tests: the learner node as a real process, fed transitions over DDS."""

import glob
import os
import pathlib
import subprocess
import sys
import time

from dsrl_core.policy.base import load_plugin
from dsrl_core.rl import DSRLSAC
from dsrl_core.rl.learner_params import LearnerNodeParams
from dsrl_core.rl.serialize import actor_shapes, unpack_actor
from dsrl_core.sim.demos import collect_demos, save_demos
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from dsrl_msgs.msg import ActorWeights, EpisodeStatus, Transition
from dsrl_msgs.srv import SaveCheckpoint

pytestmark = pytest.mark.ros

ROOT = pathlib.Path(__file__).resolve().parents[3]
PARAMS = ROOT / 'config' / 'dsrl.yaml'
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
SMALL = {'hidden': [32, 32], 'batch_size': 16, 'utd_ratio': 2, 'warmup_transitions': 5,
         'publish_every': 4, 'log_every': 4, 'stats_period_s': 0.5, 'checkpoint_every_s': 0.0}


def start_learner(ros_env, log_path, **overrides):
    """Start the learner node process with config/dsrl.yaml plus ``-p`` overrides."""
    args = [sys.executable, '-m', 'dsrl_learner_node.learner_node', '--ros-args',
            '--params-file', str(PARAMS)]
    for k, v in overrides.items():
        v = str(v).lower() if isinstance(v, bool) else v
        args += ['-p', f'{k}:={v}']
    log = open(log_path, 'w')
    return subprocess.Popen(args, env=ros_env, stdout=log, stderr=subprocess.STDOUT), log


def stop(proc, log):
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()
    return proc.returncode


class Peer:
    """Test-side ROS 2 participant: publishes transitions, records weights, calls the service."""

    def __init__(self, ros_env):
        os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=int(ros_env['ROS_DOMAIN_ID']))
        self.node = rclpy.create_node('test_peer', context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.weights = []
        self.pub = self.node.create_publisher(
            Transition, '/dsrl/transitions',
            QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.status_pub = self.node.create_publisher(EpisodeStatus, 'episode_status', LATCHED)
        self.node.create_subscription(ActorWeights, '/dsrl/actor_weights', self.weights.append,
                                      LATCHED)
        self.save = self.node.create_client(SaveCheckpoint, '/dsrl/save_checkpoint')
        self.rng = np.random.default_rng(0)

    def spin(self, seconds, until=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.02)
            if until is not None and until():
                return True
        return until is None

    def send(self, n=1, step=0, **kw):
        for i in range(n):
            m = Transition(robot_id='arm0', episode_id=1, step_index=step + i,
                           obs_dim=8, chunk_length=4, action_dim=3, executed_steps=4,
                           reward=-1.0)
            m.obs = self.rng.normal(size=8).astype(np.float32).tolist()
            m.next_obs = self.rng.normal(size=8).astype(np.float32).tolist()
            m.noise = self.rng.normal(size=12).astype(np.float32).tolist()
            m.action = np.zeros(12, np.float32).tolist()
            for k, v in kw.items():
                setattr(m, k, v)
            self.pub.publish(m)

    def wait_subscriber(self, timeout=20.0):
        assert self.spin(timeout, lambda: self.pub.get_subscription_count() > 0), \
            'learner did not subscribe to /dsrl/transitions'

    def call_save(self, timeout=20.0):
        assert self.spin(timeout, self.save.service_is_ready), 'save_checkpoint not available'
        fut = self.save.call_async(SaveCheckpoint.Request())
        assert self.spin(timeout, fut.done), 'save_checkpoint did not answer'
        return fut.result()

    def close(self):
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def expected_shapes():
    p = LearnerNodeParams(hidden=(32, 32))
    return actor_shapes(DSRLSAC(load_plugin(p.policy_plugin).meta,
                                config=p.algo_config()).actor_state_dict())


def verify(msgs, key, shapes):
    for m in msgs:
        unpack_actor(bytes(m.payload), m.sha256, m.hmac_sha256, m.version, key, shapes)
        assert (m.obs_dim, m.chunk_length, m.action_dim) == (8, 4, 3)
        assert m.algorithm == 'dsrl_na' and m.architecture == 'tanh_gaussian_mlp:32x32:layernorm'


def test_train_publish_reject_checkpoint_resume(ros_env, tmp_path):
    key_file = tmp_path / 'run' / 'weights.key'  # sim mode: the learner generates it
    data = tmp_path / 'data'
    params = dict(SMALL, sim=True, key_file=str(key_file), data_dir=str(data))
    proc, log = start_learner(ros_env, tmp_path / 'a.log', **params)
    peer = Peer(ros_env)
    try:
        peer.wait_subscriber()
        key = key_file.read_bytes().strip()
        assert len(key) == 64
        peer.send(4)
        peer.spin(1.0)
        assert peer.weights == []  # below the warm-up: no update, no weights
        # malformed transitions: counted and dropped
        peer.send(1, obs=[0.0] * 7)
        peer.send(1, noise=[float('nan')] * 12)
        peer.send(1, robot_id='')
        peer.send(1, chunk_length=5)
        peer.send(8, step=4)  # 12 valid in all: 2 * (12 - 5 + 1) = 16 updates due
        assert peer.spin(30.0, lambda: peer.weights and peer.weights[-1].version == 16), \
            [m.version for m in peer.weights]
        versions = [m.version for m in peer.weights]
        assert versions == sorted(set(versions)) and versions[0] >= 4
        verify(peer.weights, key, expected_shapes())
        with pytest.raises(Exception, match='bad tag'):
            m = peer.weights[-1]
            unpack_actor(bytes(m.payload), m.sha256, m.hmac_sha256, m.version, b'k' * 32)
        peer.spin(1.5)
        assert peer.weights[-1].version == 16  # idle: no new data, no more updates
        res = peer.call_save()
        assert res.success and res.step == 16 and res.path.startswith(str(data / 'checkpoints'))
        with np.load(os.path.join(res.path, 'replay.npz')) as npz:
            assert len(npz['obs']) == 12 and int(npz['total_added']) == 12
        assert proc.poll() is None
    finally:
        rc = stop(proc, log)
    text = (tmp_path / 'a.log').read_text()
    assert rc == 0 and 'Traceback' not in text, text
    assert 'rejected transition' in text and 'obs has 7 values, expected 8' in text, text
    assert 'rejected 4' in text, text
    assert glob.glob(str(data / 'logs' / 'tensorboard' / 'learner' / 'events.out.tfevents.*'))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(data / 'logs' / 'tensorboard' / 'learner'))
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {'train/critic_loss', 'train/alpha', 'train/q_mean', 'rate/updates_per_s',
            'buffer/size'} <= tags, tags

    # restart: resumes buffer and update count, re-publishes the newest weights at once; now
    # with two scripted demonstrations mixed into every batch (DSRL-NA's offline data)
    demos = tmp_path / 'demos.npz'
    save_demos(collect_demos(n=2, seed=0), str(demos))
    proc, log = start_learner(ros_env, tmp_path / 'b.log', offline_demos=str(demos),
                              offline_ratio=0.25, **params)
    try:
        peer.weights.clear()
        assert peer.spin(30.0, lambda: bool(peer.weights)), 'no weights after restart'
        assert peer.weights[-1].version == 16
        verify(peer.weights, key, expected_shapes())
        peer.wait_subscriber()
        peer.send(2, step=20)  # 4 more updates due
        assert peer.spin(30.0, lambda: peer.weights[-1].version == 20), \
            [m.version for m in peer.weights]
        st = EpisodeStatus(robot_id='arm0', phase=EpisodeStatus.PHASE_SUCCESS, episode_id=1,
                           success=True, episode_return=-3.0, length=12)
        peer.status_pub.publish(st)
        peer.spin(1.0)
    finally:
        rc = stop(proc, log)
        peer.close()
    text = (tmp_path / 'b.log').read_text()
    assert rc == 0 and 'Traceback' not in text, text
    assert 'resumed from' in text and '16 updates, buffer 12 transitions' in text, text
    assert 'episodes 1, success 1.00' in text, text
    assert f'offline demonstrations: {demos}: 2 demonstration episodes' in text, text
    assert '25% of every batch' in text, text


def test_refuses_to_start_without_key_outside_sim(ros_env, tmp_path):
    env = {k: v for k, v in ros_env.items()
           if k not in ('DSRL_WEIGHTS_KEY_FILE', 'DSRL_WEIGHTS_KEY')}
    out = subprocess.run([sys.executable, '-m', 'dsrl_learner_node.learner_node', '--ros-args',
                          '--params-file', str(PARAMS), '-p', 'sim:=false',
                          '-p', f'data_dir:={tmp_path}'],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert 'no weights key' in out.stderr and 'Traceback' not in out.stderr
    assert not (tmp_path / 'sim_weights.key').exists()


def test_refuses_to_start_with_missing_offline_demos(ros_env, tmp_path):
    missing = tmp_path / 'nowhere.npz'
    out = subprocess.run([sys.executable, '-m', 'dsrl_learner_node.learner_node', '--ros-args',
                          '--params-file', str(PARAMS), '-p', f'data_dir:={tmp_path}',
                          '-p', f'offline_demos:={missing}'],
                         env=ros_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert f'offline demonstrations: {missing} does not exist' in out.stderr
    assert 'Traceback' not in out.stderr
