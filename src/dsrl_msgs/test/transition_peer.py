"""
Publisher / subscriber of dsrl_msgs/Transition for the cross-process test.

python transition_peer.py pub N
python transition_peer.py sub N RESULT_JSON
"""

from array import array
import json
import sys
import time

import rclpy
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

from dsrl_msgs.msg import Transition

QOS = QoSProfile(depth=2000, history=HistoryPolicy.KEEP_LAST,
                 reliability=ReliabilityPolicy.RELIABLE)
OBS_DIM, T, A = 8, 4, 3


def make(i: int) -> Transition:
    """Build transition number i with content derived from i."""
    m = Transition()
    m.robot_id = 'arm0'
    m.episode_id = i // 15
    m.step_index = i % 15
    m.obs = [float(i + k) for k in range(OBS_DIM)]
    m.next_obs = [float(i + k + 1) for k in range(OBS_DIM)]
    m.noise = [0.001 * (i + k) for k in range(T * A)]
    m.action = [-0.001 * (i + k) for k in range(T * A)]
    m.reward = -1.0 if i % 15 else 0.0
    m.terminated = i % 15 == 14
    m.actor_version = i // 100
    m.obs_dim, m.chunk_length, m.action_dim, m.executed_steps = OBS_DIM, T, A, T
    return m


def check(m: Transition) -> bool:
    """Whether m carries exactly the content make(i) gave it (i recovered from obs[0])."""
    i = int(m.obs[0])
    ref = make(i)
    return (list(m.obs) == list(ref.obs) and list(m.next_obs) == list(ref.next_obs)
            and list(m.noise) == list(array('f', ref.noise))
            and list(m.action) == list(array('f', ref.action))
            and m.reward == ref.reward and m.terminated == ref.terminated
            and m.episode_id == ref.episode_id and m.step_index == ref.step_index
            and m.actor_version == ref.actor_version and m.robot_id == 'arm0'
            and (m.obs_dim, m.chunk_length, m.action_dim) == (OBS_DIM, T, A))


def pub(n: int) -> int:
    """Wait for a subscriber, publish n transitions, linger until they are delivered."""
    rclpy.init()
    node = rclpy.create_node('transition_pub')
    p = node.create_publisher(Transition, 'transitions', QOS)
    deadline = time.monotonic() + 30
    while p.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print('no subscriber matched', file=sys.stderr)
            return 2
        rclpy.spin_once(node, timeout_sec=0.05)
    for i in range(n):
        p.publish(make(i))
    p.wait_for_all_acked(rclpy.duration.Duration(seconds=30))
    node.destroy_node()
    rclpy.shutdown()
    return 0


def sub(n: int, result_path: str) -> int:
    """Receive until n transitions arrived (or 60 s), write counts to result_path."""
    rclpy.init()
    node = rclpy.create_node('transition_sub')
    got = {'received': 0, 'bad': 0, 'indices': []}

    def cb(m: Transition) -> None:
        got['received'] += 1
        got['indices'].append(int(m.obs[0]))
        if not check(m):
            got['bad'] += 1

    node.create_subscription(Transition, 'transitions', cb, QOS)
    deadline = time.monotonic() + 60
    while got['received'] < n and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    with open(result_path, 'w') as f:
        json.dump(got, f)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == '__main__':
    if sys.argv[1] == 'pub':
        sys.exit(pub(int(sys.argv[2])))
    sys.exit(sub(int(sys.argv[2]), sys.argv[3]))
