"""Integration tests: policy + sim + reward node as real processes (lockstep and real time)."""

import re
import signal
import time

from dsrl_core.policy.policy_params import PolicyNodeParams
from dsrl_core.rl.networks import TanhGaussianActor
from dsrl_core.rl.serialize import hmac_tag, pack_actor, payload_sha256
from dsrl_core.sim.push_env import JOINT_LIMITS
import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosproc import Peer
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
import torch

from dsrl_msgs.msg import ActorWeights, EpisodeStatus, StepReward, Transition

pytestmark = pytest.mark.ros
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
KEY = 'test-key-0123456789abcdef'
MAX_STEP = 0.1
STEP_NS = 100_000_000


def ns(stamp):
    return stamp.sec * 1_000_000_000 + stamp.nanosec


class PolicyPeer(Peer):
    def __init__(self, ros_env):
        super().__init__(ros_env, 'policy_test')
        n = self.node
        self.transitions, self.commands, self.statuses = [], [], []
        self.rewards = {}
        self.joint_pos = None
        n.create_subscription(Transition, '/dsrl/transitions', self.transitions.append,
                              QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        n.create_subscription(Float64MultiArray, '/forward_position_controller/commands',
                              self.on_command, 100)
        n.create_subscription(EpisodeStatus, 'episode_status', self.statuses.append, LATCHED)
        n.create_subscription(StepReward, 'reward',
                              lambda m: self.rewards.__setitem__(ns(m.header.stamp), m), 1000)
        n.create_subscription(JointState, '/joint_states', self.on_joints, 100)
        self.weights_pub = n.create_publisher(ActorWeights, '/dsrl/actor_weights', LATCHED)
        self.estop_client = n.create_client(SetBool, '/dsrl/estop')

    def on_joints(self, msg):
        self.joint_pos = np.array(msg.position)

    def on_command(self, msg):
        episode = self.statuses[-1].episode_id if self.statuses else 0
        self.commands.append((time.monotonic(), episode, np.array(msg.data), self.joint_pos))

    def episode(self):
        return self.statuses[-1].episode_id if self.statuses else 0

    def commands_between(self, t0, t1):
        return [c for c in self.commands if t0 <= c[0] < t1]


def weights_msg(version, key=KEY, obs_dim=8, corrupt=None):
    torch.manual_seed(version)
    magnitude = PolicyNodeParams.action_magnitude  # what the node runs with (config/dsrl.yaml)
    actor = TanhGaussianActor(8, 12, (128, 128, 128), magnitude)
    payload, sha, tag = pack_actor(actor.state_dict(), version, key.encode())
    if corrupt == 'payload':  # garbage that is correctly hashed and signed, not safetensors
        payload = b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1}' + b'x' * 50
        sha, tag = payload_sha256(payload), hmac_tag(payload, version, key.encode())
    msg = ActorWeights(version=version, payload=list(payload), sha256=sha, hmac_sha256=tag,
                       obs_dim=obs_dim, chunk_length=4, action_dim=3,
                       architecture='tanh_gaussian_mlp:128x128x128:layernorm',
                       algorithm='dsrl_sac', action_magnitude=magnitude)
    return msg


def check_commands(commands, pause_s=0.25):
    """
    Check every command is within the joint limits and max_step of the one before.

    After a pause inside an episode (e-stop, stale joint states) the policy steps from the
    measured pose; the test saw that pose a moment later, so it allows 0.05 rad of motion there.
    """
    prev_t, prev_episode, prev = -1e9, None, None
    for t, episode, q, measured in commands:
        assert np.all(q >= JOINT_LIMITS[:, 0] - 1e-9) and np.all(q <= JOINT_LIMITS[:, 1] + 1e-9)
        if episode == prev_episode and t - prev_t < pause_s:
            # A cut chunk (stale actions dropped) restarts from the measured pose, which trails
            # the last command by the controller's tracking error: allow 0.02 rad of it.
            assert np.max(np.abs(q - prev)) <= MAX_STEP + 0.02, (q, prev)
        elif measured is not None and episode == prev_episode:
            # (at an episode change the sim reset teleports the arm; the test's view of the
            # measured pose may still be the pre-reset one, so only limits are checked there)
            assert np.max(np.abs(q - measured)) <= MAX_STEP + 0.05, (q, measured)
        prev_t, prev_episode, prev = t, episode, q


def running_rate(commands):
    """Median commands per second inside an episode (first to last command of each)."""
    rates = []
    for e in {c[1] for c in commands}:
        ts = [c[0] for c in commands if c[1] == e]
        if len(ts) > 10:
            rates.append((len(ts) - 1) / (ts[-1] - ts[0]))
    return float(np.median(rates)) if rates else 0.0


def test_lockstep_episodes_transitions_weights_estop(nodes, ros_env):
    nodes('sim', 'dsrl_sim_node.sim_node', time_mode='lockstep', idle_step_s=0.3)
    nodes('reward', 'dsrl_reward_node.reward_node', use_sim_time=True, auto_start=True,
          time_limit_s=2.0, result_hold_s=0.1)
    policy, policy_log = nodes('policy', 'dsrl_policy_node.policy_node', use_sim_time=True,
                               time_mode='lockstep', weights_key=KEY, max_step=MAX_STEP)
    d = PolicyPeer(ros_env)
    try:
        assert d.spin(30.0, lambda: len(d.transitions) >= 10), 'no transitions'
        t0, e0 = time.monotonic(), d.episode()
        assert d.spin(30.0, lambda: d.episode() >= e0 + 2), f'episodes: {d.episode()}'
        rate = len(d.commands_between(t0, time.monotonic())) / (time.monotonic() - t0)
        # forged, malformed and incompatible weights: rejected, version unchanged
        # The weights topic is latest-only (depth 1): republish each bad message until its
        # verdict is logged, then go on to the next one.
        for bad, version, reason in ((weights_msg(7, key='wrong-key-0123456789'), 7, 'bad tag'),
                                     (weights_msg(8, corrupt='payload'), 8, 'bad safetensors'),
                                     (weights_msg(9, obs_dim=9), 9, 'incompatible shapes')):
            pattern = re.compile(rf'rejected actor weights v{version} '
                                 rf'\(rejection #\d+\): {reason}')
            for _ in range(10):
                d.weights_pub.publish(bad)
                if d.spin(2.0, lambda: pattern.search(policy_log.read_text())):
                    break
            assert pattern.search(policy_log.read_text()), policy_log.read_text()
        n_bad = len(d.transitions)
        d.spin(1.0)
        assert {t.actor_version for t in d.transitions} == {0}
        # a correctly signed one is applied at a chunk boundary
        d.weights_pub.publish(weights_msg(12))
        assert d.spin(15.0, lambda: any(t.actor_version == 12 for t in d.transitions))
        assert len(d.transitions) > n_bad
        assert 'actor version 0 -> 12 (applied at a chunk boundary)' in policy_log.read_text()
        # e-stop: no command after the service answered, until released
        assert d.spin(10.0, lambda: d.statuses[-1].phase == EpisodeStatus.PHASE_RUNNING)
        assert d.call(d.estop_client, SetBool.Request(data=True)).success
        t_stop = time.monotonic()
        d.spin(1.0)
        assert d.commands_between(t_stop, time.monotonic()) == []
        assert d.call(d.estop_client, SetBool.Request(data=False)).success
        t_go = time.monotonic()
        assert d.spin(10.0, lambda: d.commands_between(t_go, time.monotonic()))
        d.spin(0.5)
    finally:
        d.close()
    policy.send_signal(signal.SIGINT)
    policy.wait(timeout=10)
    # every transition: shapes, flags, and the reward = the sum of the StepRewards it covers
    trs = d.transitions
    assert len(trs) >= 12
    first_seen = min(d.rewards)  # the test's subscription may miss the first steps
    for t in trs:
        assert (t.obs_dim, t.chunk_length, t.action_dim) == (8, 4, 3)
        assert len(t.obs) == len(t.next_obs) == 8 and len(t.noise) == len(t.action) == 12
        assert 1 <= t.executed_steps <= 4 and t.robot_id == 'arm0'
        assert not (t.terminated and t.truncated)
        start = ns(t.header.stamp)
        if start < first_seen:
            continue
        covered = [r for s, r in d.rewards.items()
                   if start < s <= start + 4 * STEP_NS and r.episode_id == t.episode_id]
        if t.executed_steps == 4 and not t.truncated:
            assert len(covered) == 4 or t.terminated
        got = [r.reward for s, r in sorted(d.rewards.items())
               if start < s <= start + t.executed_steps * STEP_NS
               and r.episode_id == t.episode_id]
        assert t.reward == pytest.approx(sum(got)), (t, got)
    by_episode = {}
    for t in trs:
        by_episode.setdefault(t.episode_id, []).append(t.step_index)
    assert all(v == list(range(v[0], v[0] + len(v))) for v in by_episode.values())
    assert any(t.truncated for t in trs)  # time limits (and the e-stop) cut chunks short
    check_commands(d.commands)
    print(f'lockstep policy+sim+reward: {rate:.0f} steps/s overall (resets included), '
          f'{running_rate(d.commands):.0f} steps/s while RUNNING, {len(trs)} transitions, '
          f'{len(d.commands)} commands')


def test_realtime_stale_joint_states_stop_commands(nodes, ros_env):
    sim, _ = nodes('sim', 'dsrl_sim_node.sim_node', time_mode='realtime')
    nodes('reward', 'dsrl_reward_node.reward_node', auto_start=True, time_limit_s=60.0,
          camera_timeout_s=10.0)
    policy, policy_log = nodes('policy', 'dsrl_policy_node.policy_node', time_mode='realtime',
                               joint_state_timeout_s=0.3, max_step=MAX_STEP)
    d = PolicyPeer(ros_env)
    try:
        assert d.spin(30.0, lambda: len(d.commands) >= 10), 'no commands'
        sim.send_signal(signal.SIGSTOP)
        t_stop = time.monotonic()
        try:
            d.spin(1.5)
        finally:
            sim.send_signal(signal.SIGCONT)
        late = d.commands_between(t_stop + 0.45, t_stop + 1.5)
        assert late == [], f'{len(late)} commands sent on stale joint states'
        assert len(d.commands_between(t_stop - 1.0, t_stop)) >= 7  # 10 Hz before the stop
        assert 'joint_states stale' in policy_log.read_text()
        t_go = time.monotonic()
        assert d.spin(5.0, lambda: len(d.commands_between(t_go, time.monotonic())) >= 5)
        assert d.transitions and d.statuses[-1].phase == EpisodeStatus.PHASE_RUNNING
    finally:
        d.close()
    check_commands(d.commands)
