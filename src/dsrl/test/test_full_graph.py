"""
The whole sim graph end to end: `dsrl bringup --sim --lockstep`, four node processes.

Sim arm, reward/episode node, policy node and learner node run as separate processes over Fast
DDS from config/dsrl.yaml (only the learner's data folder, warm-up and publish period are changed
to fit a test). A peer in the test's process watches the public topics: transitions reach the
learner with the right shapes, the learner's signed weights come back and the policy node's actor
version rises (transitions stamped with a version > 0), and every command on the controller topic
stays inside the joint limits and the maximum step.
"""

import pathlib
import re
import subprocess
import sys

from dsrl_core.sim.push_env import JOINT_LIMITS
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
import yaml

from dsrl import graph
from dsrl_msgs.msg import ActorWeights, EpisodeStatus, Transition

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'dsrl_sim_node' / 'test'))
from rosproc import Peer, stop  # noqa: E402,I001

pytestmark = pytest.mark.ros
ROOT = pathlib.Path(__file__).resolve().parents[3]
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


class GraphPeer(Peer):
    """Records transitions, commands, episode phases and weight versions."""

    def __init__(self, ros_env):
        super().__init__(ros_env, 'full_graph_test')
        n = self.node
        self.transitions, self.commands, self.statuses, self.weights = [], [], [], []
        n.create_subscription(Transition, '/dsrl/transitions', self.transitions.append,
                              QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        n.create_subscription(Float64MultiArray, '/forward_position_controller/commands',
                              self.on_command, 100)
        n.create_subscription(EpisodeStatus, 'episode_status', self.statuses.append, LATCHED)
        n.create_subscription(ActorWeights, '/dsrl/actor_weights',
                              lambda m: self.weights.append(m.version), LATCHED)
        self.measured = None
        n.create_subscription(JointState, '/joint_states',
                              lambda m: setattr(self, 'measured', np.array(m.position)), 100)

    def on_command(self, msg):
        episode = self.statuses[-1].episode_id if self.statuses else 0
        self.commands.append((episode, np.array(msg.data), self.measured))


def run_bringup(ros_env, tmp_path, peer, done, extra=()):
    """
    Run ``dsrl bringup --sim --lockstep`` (small learner settings) until ``done()``; stop it.

    The peer spins meanwhile. Returns the bringup's log text; asserts it stopped cleanly.
    """
    doc = yaml.safe_load((ROOT / 'config' / 'dsrl.yaml').read_text())
    doc['learner_node']['ros__parameters'].update(
        data_dir=str(tmp_path / 'data'), warmup_transitions=20, utd_ratio=2, publish_every=10,
        stats_period_s=2.0)
    params = tmp_path / 'dsrl.yaml'
    params.write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in ros_env.items()
           if k not in ('DSRL_WEIGHTS_KEY_FILE', 'DSRL_WEIGHTS_KEY')}
    log_path = tmp_path / 'bringup.log'
    exe = graph.find_executable(graph.NodeSpec('dsrl', 'dsrl', 'dsrl', 'robot'))
    with open(log_path, 'w') as log:
        proc = subprocess.Popen([exe, 'bringup', '--sim', '--lockstep', '--duration', '150',
                                 '--params-file', str(params), *extra],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ok = peer.spin(140.0, lambda: done() or proc.poll() is not None)
        assert ok and proc.poll() is None, log_path.read_text()[-3000:]
        peer.spin(2.0)
    finally:
        stop(proc, timeout=60)
        peer.close()
    text = log_path.read_text()
    assert proc.returncode == 0 and 'all nodes stopped cleanly' in text, text[-3000:]
    assert 'Traceback' not in text, text
    return text


def test_four_nodes_learn_and_push_weights_back(ros_env, tmp_path):
    doc = yaml.safe_load((ROOT / 'config' / 'dsrl.yaml').read_text())
    max_step = doc['policy_node']['ros__parameters']['max_step']
    magnitude = doc['policy_node']['ros__parameters']['action_magnitude']
    peer = GraphPeer(ros_env)

    def versions():
        return {t.actor_version for t in peer.transitions if t.actor_version > 0}
    # learner weights applied by the policy node: transitions carry a version > 0, twice
    text = run_bringup(ros_env, tmp_path, peer, lambda: len(versions()) >= 2)
    assert len(versions()) >= 2, f'{len(peer.transitions)} transitions, weights {peer.weights}'
    for name in ('sim_node', 'reward_node', 'learner_node', 'policy_node'):
        assert re.search(rf'started {name} \(pid \d+\)', text), name

    # transitions: the learner's contract (shapes, finite values, flags)
    assert len(peer.transitions) >= 20
    for t in peer.transitions:
        assert (t.obs_dim, t.chunk_length, t.action_dim) == (8, 4, 3)
        assert len(t.obs) == len(t.next_obs) == 8 and len(t.noise) == len(t.action) == 12
        assert np.isfinite(np.concatenate([t.obs, t.next_obs, t.noise, t.action])).all()
        assert 1 <= t.executed_steps <= 4 and -4.0 <= t.reward <= 0.0
        assert np.all(np.abs(t.noise) <= magnitude + 1e-6) or t.actor_version == 0
    # the learner heard them: its summary line counts received transitions and published weights
    received = [int(m) for m in re.findall(r'\[learner_node\].*received (\d+)', text)]
    assert received and max(received) >= 20, text[-3000:]
    assert re.search(r'\[policy_node\].*actor version \d+ -> [1-9]\d*', text), text[-3000:]
    # the versions the policy applied are versions the learner published
    applied = {t.actor_version for t in peer.transitions if t.actor_version > 0}
    assert applied <= set(peer.weights) | set(range(max(peer.weights, default=0) + 1))
    # every command inside the joint limits and within max_step of the previous in an episode
    assert len(peer.commands) >= 40
    prev_episode, prev = None, None
    for episode, q, measured in peer.commands:
        assert np.all(q >= JOINT_LIMITS[:, 0] - 1e-9) and np.all(q <= JOINT_LIMITS[:, 1] + 1e-9)
        if episode == prev_episode and prev is not None:
            # within max_step of the previous command, or (first command after a reset, whose
            # episode_status may reach this peer after the command) of the measured pose
            step = min(np.max(np.abs(q - prev)),
                       np.inf if measured is None else np.max(np.abs(q - measured)))
            assert step <= max_step + 0.02, (q, prev, measured)
        prev_episode, prev = episode, q


def test_two_arms_feed_one_learner(ros_env, tmp_path):
    """Two namespaced sim arms (lockstep, each its own /arm<i>/clock) and one learner."""
    peer = GraphPeer(ros_env)
    arm_commands = {'arm0': [], 'arm1': []}
    for arm, got in arm_commands.items():
        peer.node.create_subscription(Float64MultiArray,
                                      f'/{arm}/forward_position_controller/commands',
                                      lambda m, got=got: got.append(np.array(m.data)), 100)

    def applied():
        return {r: {t.actor_version for t in peer.transitions if t.robot_id == r} - {0}
                for r in ('arm0', 'arm1')}

    def per_robot_line():
        return re.search(r'\[learner_node\].*; arm0 [\d.na]+ of ([1-9]\d*), arm1 [\d.na]+ of '
                         r'([1-9]\d*)', (tmp_path / 'bringup.log').read_text())
    text = run_bringup(ros_env, tmp_path, peer,
                       lambda: all(applied().values()) and per_robot_line() is not None,
                       extra=('--robots', '2'))
    for arm in ('arm0', 'arm1'):
        for name in ('sim_node', 'reward_node', 'policy_node'):
            assert re.search(rf'started {arm}/{name} \(pid \d+\)', text), (arm, name)
    assert len(re.findall(r'started learner_node \(pid', text)) == 1
    # both arms ran their own episodes: commands only on their own namespaced topics
    assert len(arm_commands['arm0']) >= 10 and len(arm_commands['arm1']) >= 10
    assert not peer.commands  # nothing on the root-namespace controller topic
    # the one learner's weights reached both policies (each arm's transitions carry a version)
    assert all(applied().values()), applied()
    assert {t.robot_id for t in peer.transitions} == {'arm0', 'arm1'}
    # and the two arms do not replay the same episodes (different sim seeds)
    first = {r: next(t.obs for t in peer.transitions if t.robot_id == r and t.step_index == 0)
             for r in ('arm0', 'arm1')}
    assert not np.allclose(first['arm0'][6:8], first['arm1'][6:8])
