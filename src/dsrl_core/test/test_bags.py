"""
Bags without ROS: writing, reading (rosbags, mcap and our reader), crashes, analysis, learning.

Every bag here is a real rosbag2 MCAP bag written by ``dsrl_core.bags.writer`` from messages
serialized with the typestore the recorder uses; the ROS recorder itself is tested in
``src/dsrl/test/test_bags.py``.
"""

import json
import pathlib
import shutil
import subprocess
import sys

from dsrl_core.bags.analysis import analyze, moving_rate
from dsrl_core.bags.cli import main as bags_main
from dsrl_core.bags.learn import bag_to_demos, DemoConfig, load_transitions
from dsrl_core.bags.reader import BagError, open_bag
from dsrl_core.bags.recording import (
    base_policy_dir,
    compress_image,
    git_revision,
    learner_checkpoint_dir,
    load_params,
    plan_topics,
    provenance,
    RecordConfig,
    strip_weights,
)
from dsrl_core.bags.types import BagTypeError, find_msg_file, make_typestore, normalize_type
from dsrl_core.bags.writer import BagWriteError, BagWriter
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
TS = make_typestore()
NS = 1_000_000_000
T0 = 1_700_000_000 * NS  # a wall-clock log time


def msg(typename, **fields):
    return TS.types[typename](**fields)


def header(ns, frame=''):
    return msg('std_msgs/msg/Header', frame_id=frame,
               stamp=msg('builtin_interfaces/msg/Time', sec=ns // NS, nanosec=ns % NS))


def ser(m):
    return bytes(TS.serialize_cdr(m, m.__msgtype__))


def transition(ns, episode, step, version, reward=-1.0, terminated=False, truncated=False,
               robot='arm0', obs_size=8):
    obs = np.full(obs_size, step, np.float32)
    return msg('dsrl_msgs/msg/Transition', header=header(ns), robot_id=robot, episode_id=episode,
               step_index=step, obs=obs, next_obs=obs + 1, noise=np.full(12, 0.1, np.float32),
               action=np.full(12, 0.2, np.float32), reward=reward, terminated=terminated,
               truncated=truncated, actor_version=version, obs_dim=8, chunk_length=4,
               action_dim=3, executed_steps=4)


def status(ns, episode, phase, success=False, ret=0.0, length=0, reason=''):
    return msg('dsrl_msgs/msg/EpisodeStatus', header=header(ns), robot_id='arm0', phase=phase,
               episode_id=episode, success=success, episode_return=ret, length=length,
               elapsed=length / 10, reason=reason, human_label=0)


def weights(ns, version, payload=b'\x01' * 5000):
    return msg('dsrl_msgs/msg/ActorWeights', header=header(ns), version=version,
               payload=np.frombuffer(payload, np.uint8), sha256='ab' * 32, hmac_sha256='cd' * 32,
               obs_dim=8, chunk_length=4, action_dim=3, architecture='tanh_gaussian_mlp:8x8',
               algorithm='dsrl_sac', action_magnitude=1.5)


def joint_state(ns, q, dq=(0.0, 0.0, 0.0)):
    return msg('sensor_msgs/msg/JointState', header=header(ns), name=['joint1', 'joint2',
                                                                      'joint3'],
               position=np.asarray(q, np.float64), velocity=np.asarray(dq, np.float64),
               effort=np.zeros(0, np.float64))


def command(q):
    layout = msg('std_msgs/msg/MultiArrayLayout', dim=[], data_offset=0)
    return msg('std_msgs/msg/Float64MultiArray', layout=layout, data=np.asarray(q, np.float64))


def pose(ns, x, y):
    p = msg('geometry_msgs/msg/Pose', position=msg('geometry_msgs/msg/Point', x=x, y=y, z=0.0),
            orientation=msg('geometry_msgs/msg/Quaternion', x=0.0, y=0.0, z=0.0, w=1.0))
    return msg('geometry_msgs/msg/PoseStamped', header=header(ns, 'world'), pose=p)


def detection(ns, score, decision):
    return msg('dsrl_msgs/msg/SuccessDetection', header=header(ns), score=score,
               decision=decision, method='color', object_visible=True, consecutive=0)


def image(ns, h=24, w=32):
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, :w // 2, 0] = 255
    return msg('sensor_msgs/msg/Image', header=header(ns, 'camera'), height=h, width=w,
               encoding='rgb8', is_bigendian=0, step=w * 3, data=rgb.reshape(-1))


TOPICS = {'/dsrl/transitions': 'dsrl_msgs/msg/Transition',
          '/episode_status': 'dsrl_msgs/msg/EpisodeStatus',
          '/dsrl/actor_weights/stripped': 'dsrl_msgs/msg/ActorWeights',
          '/success_detection': 'dsrl_msgs/msg/SuccessDetection',
          '/forward_position_controller/commands': 'std_msgs/msg/Float64MultiArray',
          '/joint_states': 'sensor_msgs/msg/JointState',
          '/object_pose': 'geometry_msgs/msg/PoseStamped'}


def run_messages():
    """
    Return a synthetic run as (topic, log ns, message): three episodes at 10 Hz.

    Episode 1 succeeds (actor v0), 2 times out (v1), 3 succeeds by the detector and is then
    labelled a failure by a human (v2). Joint states at 10 Hz, each command 20 ms after them.
    """
    out = []
    t = T0
    for ep, version, reason in ((1, 0, 'detector'), (2, 1, 'time_limit'), (3, 2, 'detector')):
        out.append(('/dsrl/actor_weights/stripped', t, weights(t, version)))
        out.append(('/episode_status', t, status(t, ep, 1)))
        for k in range(8):
            ts = t + k * NS // 10
            out.append(('/joint_states', ts, joint_state(ts, [0.1 * k, 0.0, 0.0])))
            out.append(('/object_pose', ts, pose(ts, 0.2, 0.05)))
            out.append(('/forward_position_controller/commands', ts + 20_000_000,
                        command([0.1 * k + 0.05, 0.0, 0.0])))
            out.append(('/success_detection', ts + 5_000_000,
                        detection(ts, 0.1 * k, k == 7 and ep != 2)))
        for step in range(2):
            last = step == 1
            out.append(('/dsrl/transitions', t + (step + 1) * 4 * NS // 10,
                        transition(t + step * 4 * NS // 10, ep, step, version,
                                   terminated=last and ep != 2, truncated=last and ep == 2)))
        end = t + 8 * NS // 10
        phase = 2 if ep != 2 else 3
        out.append(('/episode_status', end, status(end, ep, phase, ep != 2, -7.0, 8, reason)))
        if ep == 3:  # a human overrides the detector's success
            out.append(('/episode_status', end + NS // 10,
                        status(end + NS // 10, ep, 4, False, -7.0, 8, 'human_label')))
        t = end + NS
    out.sort(key=lambda x: x[1])
    return out


def write_bag(path, messages, **kw):
    w = BagWriter(path, TS, provenance={'dsrl.git_revision': 'cafe', 'dsrl.params_yaml': 'a: 1'},
                  **kw)
    with w:
        for topic, msgtype in TOPICS.items():
            if any(m[0] == topic for m in messages):
                w.add_topic(topic, msgtype)
        for topic, ns, m in messages:
            w.write(topic, ns, ser(m))
    return w


@pytest.fixture(scope='module')
def run_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('bags') / 'run'
    write_bag(path, run_messages())
    return path


def test_bags_package_never_imports_rclpy():
    code = ('import sys, dsrl_core.bags.analysis, dsrl_core.bags.learn, dsrl_core.bags.cli, '
            'dsrl_core.bags.recording, dsrl_core.bags.writer; assert "rclpy" not in sys.modules')
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60)


def test_typestore_definitions_match_rosidl_hashes():
    checked = 0
    for msgtype in ('dsrl_msgs/msg/Transition', 'dsrl_msgs/msg/ActorWeights',
                    'dsrl_msgs/msg/EpisodeStatus', 'dsrl_msgs/msg/StepReward',
                    'dsrl_msgs/msg/SuccessDetection', 'sensor_msgs/msg/JointState',
                    'std_msgs/msg/Float64MultiArray', 'sensor_msgs/msg/CompressedImage'):
        path = find_msg_file(msgtype)
        if path is None or not path.with_suffix('.json').is_file():
            continue
        desc = json.loads(path.with_suffix('.json').read_text())
        want = next(h['hash_string'] for h in desc['type_hashes'] if h['type_name'] == msgtype)
        assert TS.hash_rihs01(msgtype) == want, msgtype
        checked += 1
    if not checked:
        pytest.skip('no installed rosidl type descriptions (.json) to compare with')
    assert normalize_type('dsrl_msgs/Transition') == 'dsrl_msgs/msg/Transition'
    with pytest.raises(BagTypeError, match='no message definition for nope_msgs/msg/X'):
        make_typestore(['nope_msgs/msg/X'])


def test_round_trip_with_rosbags_and_mcap_readers(run_bag):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader
    sent = run_messages()
    bag = open_bag(run_bag)
    assert bag.message_count == len(sent) and not bag.damage and not bag.notes
    assert {t: i.count for t, i in bag.topics.items()} == {
        t: sum(m[0] == t for m in sent) for t in TOPICS}
    got = list(bag.messages())
    assert [(m.topic, m.log_time_ns) for m in got] == [(t, ns) for t, ns, _ in sent]
    trs = [m.msg for m in got if m.topic == '/dsrl/transitions']
    assert [t.step_index for t in trs] == [0, 1] * 3 and trs[0].obs.dtype == np.float32
    assert bag.provenance == {'dsrl.git_revision': 'cafe', 'dsrl.params_yaml': 'a: 1'}
    arr = bag.arrays('/dsrl/transitions', ['header.stamp', 'obs', 'actor_version'])
    assert arr['obs'].shape == (6, 8) and arr['header.stamp'][1] == T0 + 4 * NS // 10
    # rosbags' AnyReader with an empty typestore decodes from the stored definitions
    with AnyReader([run_bag]) as reader:
        assert reader.typestore.fielddefs.keys() >= set(TOPICS.values())
        n = 0
        for conn, ns, raw in reader.messages():
            decoded = reader.deserialize(raw, conn.msgtype)
            n += 1
        assert n == len(sent) and decoded.__msgtype__ == sent[-1][2].__msgtype__
    # the mcap library with its ROS 2 decoder reads the same file, custom types included
    counts, meta = {}, {}
    for f in sorted(run_bag.glob('*.mcap')):
        with f.open('rb') as fh:
            reader = make_reader(fh, decoder_factories=[DecoderFactory()])
            for _, channel, message, decoded in reader.iter_decoded_messages():
                counts[channel.topic] = counts.get(channel.topic, 0) + 1
                if channel.topic == '/dsrl/transitions':
                    last_obs = list(decoded.obs)
            meta = {m.name: dict(m.metadata) for m in reader.iter_metadata()}
    assert counts == {t: i.count for t, i in bag.topics.items()}
    assert last_obs == [1.0] * 8
    assert meta['dsrl']['dsrl.git_revision'] == 'cafe' and 'serialized_metadata' in meta['rosbag2']


def test_split_by_size_and_duration_and_metadata_during_recording(tmp_path):
    sent = [('/dsrl/transitions', T0 + k * NS // 10, transition(T0, 1, k, 0)) for k in range(60)]
    w = BagWriter(tmp_path / 'b', TS, max_bytes=4000).open()
    w.add_topic('/dsrl/transitions', 'dsrl_msgs/msg/Transition')
    for topic, ns, m in sent[:40]:
        w.write(topic, ns, ser(m))
    assert len(w.files) >= 2  # finished splits are a readable bag while recording goes on
    meta = (tmp_path / 'b' / 'metadata.yaml').read_text()
    assert f'b_{len(w.files) - 1}.mcap' in meta and f'b_{len(w.files)}.mcap' not in meta
    w.flush()
    during = open_bag(tmp_path / 'b')
    assert during.message_count == 40 and len(during.damage) == 1 and during.notes
    for topic, ns, m in sent[40:]:
        w.write(topic, ns, ser(m))
    files = w.close()
    bag = open_bag(tmp_path / 'b')
    assert not bag.damage and bag.message_count == 60 and len(files) == len(bag.files) >= 3
    assert [m.msg.step_index for m in bag.messages()] == list(range(60))
    assert sum(f.message_count for f in files) == 60
    w2 = write_bag(tmp_path / 'd', sent, max_duration_s=1.0)
    assert [f.message_count for f in w2.files] == [10] * 6
    with pytest.raises(BagWriteError, match='exists already'):
        BagWriter(tmp_path / 'd', TS).open()
    with pytest.raises(BagWriteError, match='no message definition'):
        with BagWriter(tmp_path / 'e', TS) as w3:
            w3.add_topic('/x', 'unknown_msgs/msg/Nope')


def test_killed_writer_file_is_read_up_to_the_last_flush(tmp_path):
    sent = [('/dsrl/transitions', T0 + k * NS // 10, transition(T0, 1, k, 0)) for k in range(50)]
    w = BagWriter(tmp_path / 'k', TS).open()
    w.add_topic('/dsrl/transitions', 'dsrl_msgs/msg/Transition')
    for i, (topic, ns, m) in enumerate(sent):
        w.write(topic, ns, ser(m))
        if i in (9, 29):
            w.flush()
    # no close(): this is what a SIGKILL leaves (flushed chunks on disk, no summary/footer)
    bag = open_bag(tmp_path / 'k')
    assert 'metadata.yaml is missing' in bag.notes[0]
    assert bag.message_count == 30 and len(bag.damage) == 1
    d = bag.damage[0]
    assert d.messages == 30 and d.last_ns == sent[29][1] and d.readable == d.size
    assert 'did not finish' in str(d) and 'lost' in str(d)
    assert [m.msg.step_index for m in bag.messages()] == list(range(30))
    # cut anywhere: never an exception, a prefix of the messages
    data = (tmp_path / 'k' / 'k_0.mcap').read_bytes()
    w.close()
    full = (tmp_path / 'k' / 'k_0.mcap').read_bytes()
    previous = 0
    for cut in sorted({9, 50, 120, len(data) // 2, len(data) - 1, len(full) - 40, len(full) - 3}):
        p = tmp_path / f'cut{cut}.mcap'
        p.write_bytes(full[:cut])
        b = open_bag(p)
        steps = [m.msg.step_index for m in b.messages()]
        assert steps == list(range(len(steps))) and len(steps) >= previous
        assert b.damage and b.damage[0].readable <= cut
        previous = len(steps)
    assert previous == 50


def test_corrupted_bags_and_unknown_types_give_clear_errors(tmp_path, run_bag):
    (tmp_path / 'garbage.mcap').write_bytes(b'this is not a bag at all' * 10)
    with pytest.raises(BagError, match=r'garbage\.mcap: not an MCAP file'):
        open_bag(tmp_path / 'garbage.mcap')
    with pytest.raises(BagError, match='no such bag'):
        open_bag(tmp_path / 'nothing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='no .mcap files'):
        open_bag(tmp_path / 'empty')
    bad_meta = tmp_path / 'badmeta'
    shutil.copytree(run_bag, bad_meta)
    (bad_meta / 'metadata.yaml').write_text('rosbag2_bagfile_information: [')
    with pytest.raises(BagError, match=r'metadata\.yaml: not a valid rosbag2 metadata'):
        open_bag(bad_meta)
    # bytes flipped inside a finished file: the summary or a message no longer reads
    flipped = tmp_path / 'flipped.mcap'
    data = bytearray((run_bag / 'run_0.mcap').read_bytes())
    data[-200:-60] = b'\xff' * 140
    flipped.write_bytes(bytes(data))
    with pytest.raises(BagError, match=r'flipped\.mcap: corrupted MCAP file'):
        list(open_bag(flipped).messages())
    # ... or inside message data: the chunk CRCs the writer adds catch it
    data = bytearray((run_bag / 'run_0.mcap').read_bytes())
    data[3000:3040] = b'\x07' * 40
    flipped.write_bytes(bytes(data))
    with pytest.raises(BagError, match=r'flipped\.mcap: corrupted MCAP file: Chunk checksum'):
        list(open_bag(flipped).messages())
    flipped.write_bytes(bytes(data[:-100]))  # and in an unfinished file reading stops there
    assert 'corrupted: CRCValidationError' in str(open_bag(flipped).damage[0])
    # a message type whose definition the bag does not hold
    from mcap.writer import Writer
    path = tmp_path / 'nodef.mcap'
    with path.open('wb') as f:
        mw = Writer(f)
        mw.start(profile='ros2', library='test')
        sid = mw.register_schema('foo_msgs/msg/Bar', 'ros2msg', b'')
        cid = mw.register_channel('/bar', 'cdr', sid)
        mw.add_message(cid, log_time=1, data=b'\x00\x01\x00\x00', publish_time=1)
        mw.finish()
    bag = open_bag(path)
    assert bag.topics['/bar'].count == 1 and 'foo_msgs/msg/Bar' in bag.undefined
    with pytest.raises(BagError, match='unknown type foo_msgs/msg/Bar'):
        list(bag.messages())
    assert len(list(bag.messages(decode=False))) == 1
    with pytest.raises(BagError, match=r"no topic\(s\) \['/nope'\]"):
        list(bag.messages(['/nope']))
    # the CLI: one line on stderr, exit status 1, no traceback
    out = subprocess.run([sys.executable, '-m', 'dsrl_core.bags', 'info',
                          str(tmp_path / 'garbage.mcap')], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and 'Traceback' not in out.stderr
    assert out.stderr.strip().count('\n') == 0 and 'not an MCAP file' in out.stderr


def test_derived_records_strip_weights_and_compress_images():
    import cv2
    raw = ser(weights(T0, 7, payload=b'\x05' * 100000))
    stripped = TS.deserialize_cdr(strip_weights(raw, TS), 'dsrl_msgs/msg/ActorWeights')
    assert stripped.payload.size == 0 and stripped.version == 7
    assert stripped.sha256 == 'ab' * 32 and stripped.architecture == 'tanh_gaussian_mlp:8x8'
    assert len(strip_weights(raw, TS)) < 1000 < len(raw)
    img = ser(image(T0))
    for fmt in ('png', 'jpeg'):
        c = TS.deserialize_cdr(compress_image(img, TS, fmt, scale=0.5),
                               'sensor_msgs/msg/CompressedImage')
        assert c.format == f'rgb8; {fmt} compressed bgr8' and c.header.frame_id == 'camera'
        rgb = cv2.imdecode(c.data, cv2.IMREAD_COLOR)[:, :, ::-1]
        assert rgb.shape == (12, 16, 3)
        assert rgb[:, :6, 0].min() > 200 and rgb[:, 10:, 0].max() < 50


def test_recording_plan_and_provenance(tmp_path):
    params = load_params(str(ROOT / 'config' / 'dsrl.yaml'))
    cfg = RecordConfig(images='jpeg', extra_topics=('clock',))
    plan = plan_topics(params, cfg)
    topics = {t.topic: t for t in plan}
    assert {'/dsrl/transitions', '/episode_status', '/success_detection', '/reward',
            '/dsrl/actor_weights', '/forward_position_controller/commands', '/joint_states',
            '/object_pose', '/camera/camera/color/image_raw', '/clock'} == set(topics)
    assert topics['/dsrl/actor_weights'].bag_topic(cfg) == '/dsrl/actor_weights/stripped'
    assert topics['/camera/camera/color/image_raw'].bag_type(cfg, 'sensor_msgs/msg/Image') == \
        'sensor_msgs/msg/CompressedImage'
    full = RecordConfig(full_weights=True)
    assert topics['/dsrl/actor_weights'].bag_topic(full) == '/dsrl/actor_weights'
    assert '/camera/camera/color/image_raw' not in {t.topic for t in plan_topics(params, full)}
    with pytest.raises(ValueError, match='images must be one of'):
        RecordConfig(images='gif')
    # the recorder finds the checkpoints where the policy and learner code look for them
    from dsrl_core.policy import default_checkpoint
    from dsrl_core.rl.learner_params import LearnerNodeParams
    assert base_policy_dir(params) == default_checkpoint()
    env = {'DSRL_DATA': str(tmp_path / 'data')}
    assert str(learner_checkpoint_dir(params, env)) == \
        LearnerNodeParams().resolved_dirs(env)[1]
    prov = provenance(cfg, str(ROOT / 'config' / 'dsrl.yaml'), env)
    assert prov['dsrl.params_yaml'] == (ROOT / 'config' / 'dsrl.yaml').read_text()
    assert str(default_checkpoint() / 'model.safetensors') in json.loads(prov['dsrl.checkpoints'])
    assert json.loads(prov['dsrl.recorder'])['images'] == 'jpeg'
    assert all(isinstance(v, str) for v in prov.values())
    assert git_revision(tmp_path).startswith('unknown')


def test_analysis_writes_plots_csv_and_summary(run_bag, tmp_path):
    result = analyze([run_bag], tmp_path / 'out')
    eps = result.episodes
    assert [(e['episode_id'], e['success'], e['reason'], e['actor_version']) for e in eps] == [
        (1, True, 'detector', 0), (2, False, 'time_limit', 1), (3, False, 'human_label', 2)]
    assert all(e['transitions'] == 2 and e['length'] == 8 for e in eps)
    assert [(v['actor_version'], v['episodes'], v['successes']) for v in result.versions] == [
        (0, 1, 1), (1, 1, 0), (2, 1, 0)]
    lat = {r['metric']: r for r in result.latency}
    assert lat['state -> command']['p50_ms'] == pytest.approx(20.0, abs=0.01)
    assert lat['command interval']['count'] == 23
    assert lat['transition interval (stamps)']['count'] == 5
    out = tmp_path / 'out'
    for name in ('episodes.png', 'versions.png', 'latency.png', 'detector.png'):
        assert (out / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', name
    rows = (out / 'episodes.csv').read_text().splitlines()
    assert rows[0].startswith('bag,robot_id,episode_id,success') and len(rows) == 4
    summary = (out / 'summary.md').read_text()
    assert 'success rate 0.333' in summary and '| 2 | 1 | 0 | 0.000 |' in summary
    assert 'cafe' in summary and '![latency.png](latency.png)' in summary
    assert len((out / 'detector.csv').read_text().splitlines()) == 25
    np.testing.assert_allclose(moving_rate([1, 0, 0, 1], 2), [1, 0.5, 0, 0.5])
    # without episode_status the episodes come from the transitions
    only_tr = [m for m in run_messages() if m[0] == '/dsrl/transitions']
    write_bag(tmp_path / 'tr', only_tr)
    r2 = analyze([tmp_path / 'tr'], tmp_path / 'out2')
    assert [(e['success'], e['reason'], e['return']) for e in r2.episodes] == [
        (True, 'terminated', -2.0), (False, 'truncated', -2.0), (True, 'terminated', -2.0)]
    assert 'detector.png' in r2.skipped


def test_transitions_into_the_replay_buffer(run_bag, tmp_path):
    from dsrl_core.rl.buffer import ReplayBuffer
    buffer, report = load_transitions([run_bag])
    assert len(buffer) == report.added == report.read == 6 and not report.rejected
    assert (buffer.obs_dim, buffer.noise_shape, buffer.action_shape) == (8, (4, 3), (4, 3))
    assert report.robot_index == {'arm0': 0} and report.actor_versions == {0: 2, 1: 2, 2: 2}
    buffer.save(tmp_path / 'replay.npz')
    again = ReplayBuffer(8, (4, 3), (4, 3), 100)
    again.load(tmp_path / 'replay.npz')
    batch = again.sample(64, np.random.default_rng(0))
    assert set(batch['obs'][:, 0].tolist()) <= {0.0, 1.0}
    assert batch['noise'].shape == (64, 4, 3) and float(batch['noise'].max()) == \
        pytest.approx(0.1)
    # into an existing (the learner's) buffer; a malformed transition is rejected, not added
    bad = run_messages() + [('/dsrl/transitions', T0 + 99 * NS,
                             transition(T0, 9, 0, 3, robot='arm1', obs_size=5))]
    write_bag(tmp_path / 'bad', bad)
    live = ReplayBuffer(8, (4, 3), (4, 3), 4)
    live, report = load_transitions([tmp_path / 'bad'], buffer=live)
    assert report.read == 7 and report.added == 6 and len(live) == 4  # capacity 4: newest kept
    assert list(report.rejected.values()) == [1] and 'obs has 5 values' in str(report)
    assert bags_main(['to-buffer', str(run_bag), '-o', str(tmp_path / 'cli.npz')]) == 0
    with pytest.raises(BagError, match='no /dsrl/transitions'):
        load_transitions([_only(tmp_path, '/joint_states')])


def _only(tmp_path, topic):
    path = tmp_path / ('only' + topic.replace('/', '_'))
    write_bag(path, [m for m in run_messages() if m[0] == topic])
    return path


def test_teleop_bag_into_bc_demonstrations(tmp_path, run_bag):
    from dsrl_core.policy.train_bc import make_chunks
    from dsrl_core.sim.demos import load_demos
    # status segmentation at 10 Hz: the three RUNNING spans, 8 steps each, 2 successes
    demos = bag_to_demos([run_bag])
    assert demos['episode_ends'].tolist() == [8, 16, 24]
    assert demos['success'].tolist() == [True, False, False]
    np.testing.assert_allclose(demos['obs'][3], [0.3, 0, 0, 0, 0, 0, 0.2, 0.05], atol=1e-6)
    np.testing.assert_allclose(demos['action'][3], [0.35, 0, 0], atol=1e-6)  # command in force
    np.testing.assert_allclose(demos['action'][0], [0.05, 0, 0], atol=1e-6)
    # a teleop bag without statuses: irregular commands, split at pauses, success from the pose
    msgs = []
    for e, (t, x) in enumerate([(T0, 0.26), (T0 + 10 * NS, 0.1)]):
        for k in range(40):  # joint states and object pose at 20 Hz for 2 s
            ns = t + k * NS // 20
            msgs.append(('/joint_states', ns, joint_state(ns, [0.01 * k, 0, 0], [0.1, 0, 0])))
            msgs.append(('/object_pose', ns, pose(ns, x, 0.0)))
        for k, dt in enumerate([0.0, 0.33, 0.41, 1.21, 1.25]):  # key presses
            msgs.append(('/forward_position_controller/commands', t + int(dt * NS),
                         command([k * 0.1, 0, 0])))
    msgs.sort(key=lambda m: m[1])
    write_bag(tmp_path / 'teleop', msgs)
    demos = bag_to_demos([tmp_path / 'teleop'], DemoConfig(hz=10.0))
    assert demos['episode_ends'].tolist() == [13, 26]  # 0 .. 1.25 s at 10 Hz, incl. the last
    assert demos['success'].tolist() == [True, False]  # puck in the goal / far from it
    np.testing.assert_allclose(demos['action'][:13, 0],
                               [0, 0, 0, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.4])
    np.testing.assert_allclose(demos['obs'][1, :4], [0.02, 0, 0, 0.1], atol=1e-6)
    only = bag_to_demos([tmp_path / 'teleop'], DemoConfig(hz=0, only_success=True))
    assert only['episode_ends'].tolist() == [5]
    assert bags_main(['to-demos', str(tmp_path / 'teleop'), '-o', str(tmp_path / 'd.npz')]) == 0
    loaded = load_demos(str(tmp_path / 'd.npz'))
    assert json.loads(str(loaded['meta_json']))['source'] == 'bags'
    obs, chunks = make_chunks(loaded['obs'], loaded['action'], loaded['episode_ends'], 4)
    assert chunks.shape == (26, 4, 3)
    with pytest.raises(BagError, match='missing'):
        bag_to_demos([_only(tmp_path, '/dsrl/transitions')])


def test_cli_info_and_analyze(run_bag, tmp_path, capsys):
    assert bags_main(['info', str(run_bag), '--provenance']) == 0
    out = capsys.readouterr().out
    assert '/dsrl/transitions' in out and 'dsrl.git_revision: cafe' in out
    assert bags_main(['analyze', str(run_bag), '-o', str(tmp_path / 'a')]) == 0
    assert '3 episodes, success rate 0.333' in capsys.readouterr().out
    assert bags_main(['analyze', str(tmp_path / 'missing')]) == 1
    assert 'no such bag' in capsys.readouterr().err


def test_learner_warm_start_from_a_bag_and_a_saved_buffer(run_bag, tmp_path):
    from dsrl_core.policy.base import PolicyMeta
    from dsrl_core.rl.buffer import ReplayBuffer
    from dsrl_core.rl.sac import DSRLSAC, SACConfig
    from dsrl_core.rl.trainer import Trainer
    meta = PolicyMeta(obs_dim=8, act_dim=3, horizon=4, action_low=(-1.0,) * 3,
                      action_high=(1.0,) * 3, control_hz=10.0)
    saved, _ = load_transitions([run_bag])
    saved.save(tmp_path / 'replay.npz')

    def trainer():
        algo = DSRLSAC(meta, config=SACConfig(hidden=(16,), batch_size=4, utd_ratio=3))
        return Trainer(algo, ReplayBuffer(8, (4, 3), (4, 3), 100), utd_ratio=3, warmup=5,
                       batch_size=4)
    t = trainer()
    lines = t.warm_start([str(run_bag), str(tmp_path / 'replay.npz')])
    assert len(t.buffer) == 12 and t.preloaded == 12 and t.robot_index == {'arm0': 0}
    assert '6 transitions read, 6 added' in lines[0] and '6 transitions (saved buffer)' in lines[1]
    # loaded data fill the warm-up but earn no updates; each live transition earns utd_ratio
    assert t.updates_due() == 0
    row = {k: v[0] for k, v in saved._chronological().items()}
    t.add('arm0', {**row, 'reward': -1.0, 'terminated': False, 'truncated': False,
                   'actor_version': 0})
    assert t.updates_due() == 3 and len(t.train(10)) == 3
    assert t.info()['preloaded'] == 12
    t2 = trainer()
    t2.restore_info(t.info())
    assert t2.preloaded == 12
    # bad inputs: a clear error naming the path, nothing half-loaded from a bad file
    t3 = trainer()
    with pytest.raises(ValueError, match='does not exist'):
        t3.warm_start([str(tmp_path / 'missing')])
    (tmp_path / 'junk.npz').write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='junk.npz.*corrupted or unreadable'):
        t3.warm_start([str(tmp_path / 'junk.npz')])
    assert len(t3.buffer) == 0
