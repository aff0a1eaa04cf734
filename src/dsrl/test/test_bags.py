"""
Recording, replay and analysis of real runs over Fast DDS (``dsrl record`` / ``replay`` / ...).

A real graph (``dsrl bringup --sim --lockstep`` with the sim arm and the reward/episode node, plus
the recorder) runs while a peer in the test's process publishes transitions and signed-size
actor weights as the policy and learner nodes would. The bag is read back with rosbags'
AnyReader (an empty typestore: the definitions stored in the bag) and with the mcap library's
ROS 2 decoder, replayed by another process into the peer, and analysed. A second test kills a
recorder with SIGKILL in the middle of a burst and reads what it left.
"""

import os
import pathlib
import signal
import subprocess
import sys

import cv2
from dsrl.bag_ros import import_message, qos_to_bag, replay_qos, subscription_qos
from dsrl_core.bags.learn import load_transitions
from dsrl_core.bags.reader import open_bag
import numpy as np
import pytest
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    qos_profile_sensor_data,
    QoSProfile,
    ReliabilityPolicy,
)
from rosbags.interfaces import QosDurability, QosReliability

from dsrl import graph
from dsrl_msgs.msg import ActorWeights, Transition

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / 'dsrl_sim_node' / 'test'))
from rosproc import Peer, stop  # noqa: E402,I001

ROOT = pathlib.Path(__file__).resolve().parents[3]
PARAMS = ROOT / 'config' / 'dsrl.yaml'
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
PAYLOAD = bytes(range(256)) * 80  # 20 kB, as a small actor's safetensors would be


def dsrl_cmd():
    return [graph.find_executable(graph.NodeSpec('dsrl', 'dsrl', 'dsrl', 'robot'))]


def make_transition(episode, step, version, last=False):
    t = Transition()
    t.header.stamp.sec, t.header.stamp.nanosec = 100 + episode, step * 400_000_000
    t.robot_id, t.episode_id, t.step_index = 'test_arm', episode, step
    t.obs = [float(episode), float(step)] + [0.5] * 6
    t.next_obs = [float(episode), float(step + 1)] + [0.5] * 6
    t.noise, t.action = [0.25] * 12, [0.1] * 12
    t.reward = 0.0 if last else -4.0
    t.terminated = last and episode != 2
    t.truncated = last and episode == 2
    t.actor_version = version
    t.obs_dim, t.chunk_length, t.action_dim, t.executed_steps = 8, 4, 3, 4
    return t


def make_weights(version):
    w = ActorWeights()
    w.version = version
    w.payload = PAYLOAD
    w.sha256, w.hmac_sha256 = f'{version:064x}', 'ab' * 32
    w.obs_dim, w.chunk_length, w.action_dim = 8, 4, 3
    w.architecture, w.algorithm, w.action_magnitude = 'tanh_gaussian_mlp:8x8', 'dsrl_sac', 1.5
    return w


def test_qos_conversions_between_rclpy_and_bags():
    offered = [LATCHED, QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)]
    sub = subscription_qos(offered, 1000)
    assert (sub.reliability, sub.durability, sub.depth) == (
        ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE, 1000)
    sub = subscription_qos([LATCHED], 1000)
    assert (sub.reliability, sub.durability) == (ReliabilityPolicy.RELIABLE,
                                                 DurabilityPolicy.TRANSIENT_LOCAL)
    stored = qos_to_bag(LATCHED)
    assert (stored.reliability, stored.durability, stored.depth) == (
        QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, 1)
    back = replay_qos([stored])
    assert (back.reliability, back.durability, back.depth, back.history) == (
        ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL, 1, HistoryPolicy.KEEP_LAST)
    sensor = replay_qos([qos_to_bag(qos_profile_sensor_data)])
    assert sensor.reliability == ReliabilityPolicy.BEST_EFFORT and sensor.depth >= 100
    assert import_message('dsrl_msgs/msg/Transition') is Transition
    with pytest.raises(ValueError, match='not installed'):
        import_message('nope_msgs/msg/Nothing')


@pytest.mark.ros
def test_bringup_record_then_read_replay_and_analyze(ros_env, tmp_path):
    bag_dir = tmp_path / 'run1'
    env = {k: v for k, v in ros_env.items()
           if k not in ('DSRL_WEIGHTS_KEY_FILE', 'DSRL_WEIGHTS_KEY')}
    log_path = tmp_path / 'bringup.log'
    peer = Peer(ros_env, 'bag_test_peer')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            dsrl_cmd() + ['bringup', '--sim', '--lockstep', '--only', 'sim_node,reward_node',
                          '--params-file', str(PARAMS), '--record', str(bag_dir),
                          '--record-images', 'png', '--duration', '60'],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    sent_transitions = []
    try:
        tr_pub = peer.node.create_publisher(Transition, '/dsrl/transitions', DEEP)
        w_pub = peer.node.create_publisher(ActorWeights, '/dsrl/actor_weights', LATCHED)
        w_pub.publish(make_weights(1))  # latched: reaches the recorder whenever it subscribes
        def graph_up():
            return (tr_pub.get_subscription_count() > 0 and w_pub.get_subscription_count() > 0
                    and peer.node.get_publishers_info_by_topic('/episode_status')
                    and peer.node.get_publishers_info_by_topic('/joint_states'))
        assert peer.spin(40.0, graph_up), log_path.read_text()[-3000:]
        hashes = {t: str(peer.node.get_publishers_info_by_topic(t)[0].topic_type_hash)
                  for t in ('/joint_states', '/episode_status', '/dsrl/transitions')}
        for episode, version in ((1, 1), (2, 1), (3, 2)):
            if version == 2:
                w_pub.publish(make_weights(2))
            for step in range(5):
                t = make_transition(episode, step, version, last=step == 4)
                tr_pub.publish(t)
                sent_transitions.append(t)
                peer.spin(0.05)
        peer.spin(3.0)  # sim and reward node keep going; the recorder flushes
    finally:
        rc = stop(proc, timeout=40)
    text = log_path.read_text()
    assert rc == 0 and 'all nodes stopped cleanly' in text and 'Traceback' not in text, text
    assert 'started recorder' in text, text
    assert '[recorder] dsrl record: stopped by SIGINT:' in text, text
    assert f'bag {bag_dir}' in text

    # our reader: every topic of the run, the custom types decoded
    bag = open_bag(bag_dir)
    assert not bag.damage and not bag.notes
    counts = {t: i.count for t, i in bag.topics.items()}
    for topic in ('/joint_states', '/object_pose', '/episode_status', '/success_detection',
                  '/reward', '/camera/camera/color/image_raw/compressed'):
        assert counts.get(topic, 0) >= 3, counts
    assert counts['/dsrl/transitions'] == 15 and counts['/dsrl/actor_weights/stripped'] == 2
    assert '/dsrl/actor_weights' not in counts  # payloads are not recorded by default
    for topic, line_count in counts.items():  # the recorder's final lines give the counts
        assert f'[recorder]   {topic}' in text and f' {line_count}' in text
    assert bag.provenance['dsrl.params_yaml'] == PARAMS.read_text()
    assert bag.provenance['dsrl.actor_weights'].startswith('stripped')
    info = bag.metadata['rosbag2_bagfile_information']
    stored = {t['topic_metadata']['name']: t['topic_metadata']['type_description_hash']
              for t in info['topics_with_message_count']}
    for topic, h in hashes.items():  # the type hashes the ROS graph announces
        assert stored[topic] == h, topic

    # rosbags' AnyReader, no default typestore: decodes from the definitions in the bag
    from rosbags.highlevel import AnyReader
    with AnyReader([bag_dir]) as reader:
        got = {}
        for conn, _, raw in reader.messages():
            got.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    nonzero = {t: n for t, n in counts.items() if n}  # a publisher appeared, never published
    assert {t: len(v) for t, v in got.items()} == nonzero
    obs = [list(t.obs) for t in got['/dsrl/transitions']]
    assert obs == [list(np.float32(t.obs)) for t in sent_transitions]
    assert [t.terminated for t in got['/dsrl/transitions']] == [t.terminated
                                                                for t in sent_transitions]
    weights = got['/dsrl/actor_weights/stripped']
    assert [w.version for w in weights] == [1, 2] and all(w.payload.size == 0 for w in weights)
    assert weights[1].sha256 == f'{2:064x}' and weights[1].architecture == 'tanh_gaussian_mlp:8x8'
    frame = got['/camera/camera/color/image_raw/compressed'][0]
    assert 'png' in frame.format
    assert cv2.imdecode(frame.data, cv2.IMREAD_COLOR).shape == (96, 96, 3)

    # the mcap library with its ROS 2 decoder
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    mcap_counts = {}
    for f in bag_dir.glob('*.mcap'):
        with f.open('rb') as fh:
            for _, channel, _, decoded in make_reader(
                    fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
                mcap_counts[channel.topic] = mcap_counts.get(channel.topic, 0) + 1
                if channel.topic == '/dsrl/transitions':
                    last = decoded
    assert mcap_counts == nonzero and last.step_index == 4 and last.episode_id == 3

    # replay into another process (this one) with the recorded QoS: the same counts arrive
    replayed = [t for t in counts if t != '/camera/camera/color/image_raw/compressed']
    received = dict.fromkeys(replayed, 0)

    def counter(topic):
        def on_message(_):
            received[topic] += 1
        return on_message
    for topic in replayed:
        latched = topic in ('/episode_status', '/dsrl/actor_weights/stripped')
        qos = (QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL) if latched else DEEP)
        peer.node.create_subscription(import_message(bag.topics[topic].msgtype), topic,
                                      counter(topic), qos, raw=True)
    replay_log = tmp_path / 'replay.log'
    with open(replay_log, 'w') as log:
        rep = subprocess.Popen(dsrl_cmd() + ['replay', str(bag_dir), '--rate', '4',
                                             '--wait-for-subscribers', '30',
                                             '--topics', ','.join(replayed)],
                               env=ros_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        peer.spin(60.0, lambda: received == {t: counts[t] for t in replayed}
                  or rep.poll() is not None)
        peer.spin(1.0)
        rep.wait(timeout=30)
    finally:
        if rep.poll() is None:
            rep.kill()
            rep.wait()
        peer.close()
    rtext = replay_log.read_text()
    assert rep.returncode == 0 and 'Traceback' not in rtext, rtext
    assert received == {t: counts[t] for t in replayed}, (received, rtext)
    assert f'published {sum(counts[t] for t in replayed)} messages' in rtext

    # analysis and the replay buffer from the same bag
    out = subprocess.run(dsrl_cmd() + ['analyze', str(bag_dir), '-o', str(tmp_path / 'an')],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in ('summary.md', 'episodes.csv', 'versions.csv', 'latency.csv', 'latency.png',
                 'detector.png'):
        assert (tmp_path / 'an' / name).is_file(), name
    assert 'joint_states interval' in (tmp_path / 'an' / 'summary.md').read_text()
    buffer, report = load_transitions([bag_dir])
    assert len(buffer) == 15 and report.actor_versions == {1: 10, 2: 5}
    assert report.robot_index == {'test_arm': 0}


@pytest.mark.ros
def test_killed_recorder_leaves_a_readable_bag(ros_env, tmp_path):
    bag_dir = tmp_path / 'killed'
    log_path = tmp_path / 'record.log'
    peer = Peer(ros_env, 'kill_test_peer')
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'dsrl.cli', 'record', '-o', str(bag_dir), '--params-file',
             str(PARAMS), '--flush-period', '0.2', '--status-period', '0'],
            env=ros_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        pub = peer.node.create_publisher(Transition, '/dsrl/transitions', DEEP)
        assert peer.spin(30.0, lambda: pub.get_subscription_count() > 0), log_path.read_text()
        for step in range(100):
            pub.publish(make_transition(1, step, 0))
            peer.spin(0.005)
        peer.spin(1.0)  # flushed: these 100 are on disk
        for step in range(100, 400):  # a burst, and the recorder dies in the middle of it
            pub.publish(make_transition(1, step, 0))
            peer.spin(0.002)
            if step == 250:
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        peer.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (bag_dir / 'metadata.yaml').exists()
    bag = open_bag(bag_dir)
    assert 'metadata.yaml is missing' in bag.notes[0] and len(bag.damage) == 1
    steps = [m.msg.step_index for m in bag.messages(['/dsrl/transitions'])]
    assert 100 <= len(steps) <= 400 and steps == list(range(len(steps)))
    damage = bag.damage[0]
    assert damage.messages == len(steps) and 'did not finish' in str(damage)
    # rosbags cannot open it (no metadata.yaml, no MCAP footer); the dsrl tools can
    from rosbags.highlevel import AnyReader, AnyReaderError
    with pytest.raises((AnyReaderError, FileNotFoundError)):
        with AnyReader([bag_dir]):
            pass
    out = subprocess.run(dsrl_cmd() + ['info', str(bag_dir)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and 'damaged:' in out.stdout and 'Traceback' not in out.stderr
    assert f'{len(steps)} messages recovered' in out.stdout


def test_record_and_replay_refuse_bad_arguments_without_traceback(tmp_path):
    (tmp_path / 'exists').mkdir()
    (tmp_path / 'exists' / 'x').write_text('x')
    out = subprocess.run(dsrl_cmd() + ['record', '-o', str(tmp_path / 'exists')],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and 'exists already' in out.stderr and 'Traceback' not in out.stderr
    out = subprocess.run(dsrl_cmd() + ['replay', str(tmp_path / 'nothing')],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and 'no such bag' in out.stderr and 'Traceback' not in out.stderr
    (tmp_path / 'bad.mcap').write_bytes(b'\x89MCAP0\r\n' + b'\x00' * 50)
    out = subprocess.run(dsrl_cmd() + ['analyze', str(tmp_path / 'bad.mcap')],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and 'Traceback' not in out.stderr, out.stderr
    out = subprocess.run(dsrl_cmd() + ['bringup', '--record', str(tmp_path / 'exists'),
                                       '--dry-run'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and 'exists already' in out.stderr
    out = subprocess.run(dsrl_cmd() + ['bringup', '--sim', '--record', str(tmp_path / 'new'),
                                       '--record-images', 'jpeg', '--dry-run'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert out.stdout.splitlines()[0].startswith('recorder: ')
    assert 'record --params-file' in out.stdout and '--images jpeg' in out.stdout
