"""The benchmarks' log parsers read the learner's real log format (they print figures from it)."""

from dsrl.bench_robots import CHECKPOINT, LINE, robot_progress
from dsrl.bench_runtime import node_updates_per_s


def summary(t, received, updates, episodes=0, success='nan', robots=''):
    return (f'[learner_node] [INFO] [{t:.9f}] [learner_node]: buffer {received}, received '
            f'{received} (7.0/s), rejected 0, updates {updates} (9.5/s), weights v0, episodes '
            f'{episodes}, success {success}{robots}')


def test_node_updates_per_s_spans_the_receiving_period():
    lines = [summary(100.0, 50, 0), summary(102.0, 250, 10), summary(104.0, 450, 31),
             summary(106.0, 650, 52), summary(108.0, 1000, 70)]
    text = '\n'.join(line.split(' ', 1)[1] for line in lines)  # the node's own log: no prefix
    # first line with updates (t=102, 10) to the last before all 1000 arrived (t=106, 52)
    assert node_updates_per_s(text, 1000) == (52 - 10) / 4.0
    assert node_updates_per_s(summary(1.0, 10, 0), 1000) == 0.0


def test_bench_robots_reads_summaries_and_checkpoints():
    row = summary(5.5, 300, 200, 40, '0.65', '; arm0 0.60 of 20, arm1 0.70 of 20')
    m = LINE.search(row)
    assert m and m.group(5) == '40' and m.group(6) == '0.65' and 'arm1 0.70 of 20' in m.group(7)
    ckpt = ('[learner_node] [INFO] [1795691482.947602072] [learner_node]: checkpoint '
            '/tmp/x/checkpoints/ckpt-000200-17956: 200 updates, buffer 300')
    c = CHECKPOINT.search(ckpt)
    assert c and c.group(2) == '/tmp/x/checkpoints/ckpt-000200-17956' and c.group(3) == '200'
    rows = [{'episodes': n, 'success': s, 'arm0_episodes': n // 2, 'arm0_success': s,
             'arm1_episodes': n // 2, 'arm1_success': s + 0.1}
            for n, s in ((10, 0.5), (40, 0.6), (80, 0.8))]
    assert robot_progress(rows) == {'arm0': (0.6, 0.8, 40), 'arm1': (0.7, 0.9, 40)}
    single = [{'episodes': n, 'success': s} for n, s in ((10, 0.5), (30, 0.55), (90, 0.9))]
    assert robot_progress(single) == {'arm0': (0.55, 0.9, 90)}
