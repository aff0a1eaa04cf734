"""
Offline analysis of recorded runs: episodes, success vs actor version, control-loop timing.

``analyze(bags, out_dir)`` reads one or more bags (in the order given, each once) and writes:

* ``episodes.csv`` - one row per finished episode: bag, robot, episode id, success, return, length
  (control steps), elapsed seconds, reason, actor version (the newest actor that chose noise in
  the episode, from its transitions; else the newest weights version recorded before it ended),
  number of transitions. Episodes come from ``episode_status`` (the last status in a terminal
  phase of each episode, so a later human label wins); without it, from the transitions
  (``terminated``/``truncated`` end an episode, success = terminated).
* ``versions.csv`` - episodes, successes and success rate per actor version.
* ``latency.csv`` - count, mean, percentiles and max in ms of: command inter-arrival, joint-state
  inter-arrival, state -> command (a command's arrival minus the newest joint state's before it:
  the control loop's reaction time as the recorder saw it), transition interval (header stamps:
  the chunk period, in sim time under lockstep), reward and detection delay (arrival minus
  header stamp, only when both are on the same clock).
* ``detector.csv`` - every success-detector frame: time, score, decision, visible.
* PNG plots (matplotlib, Agg): ``episodes.png`` (success and moving success rate, return,
  length per episode), ``versions.png``, ``latency.png`` (histograms), ``detector.png`` (score
  traces); a plot without data is skipped and the summary says so.
* ``summary.md`` - the bags (files, messages, duration, git revision, damage), the headline
  figures, the tables above and the plots.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import os
import pathlib
from typing import Any, Optional, Sequence

import numpy as np

from dsrl_core.bags.reader import Bag, BagError, format_ns, open_bag

# EpisodeStatus phases (dsrl_msgs/msg/EpisodeStatus.msg)
PHASE_RUNNING, PHASE_SUCCESS, PHASE_TIMEOUT, PHASE_ABORTED = 1, 2, 3, 4
TERMINAL = (PHASE_SUCCESS, PHASE_TIMEOUT, PHASE_ABORTED)
PHASE_NAMES = {2: 'success', 3: 'timeout', 4: 'aborted'}


@dataclasses.dataclass
class AnalysisConfig:
    """Topic names and options of the analysis."""

    # dsrl_msgs/Transition topic.
    transitions_topic: str = '/dsrl/transitions'
    # dsrl_msgs/EpisodeStatus topic.
    status_topic: str = '/episode_status'
    # dsrl_msgs/StepReward topic.
    reward_topic: str = '/reward'
    # dsrl_msgs/SuccessDetection topic.
    detection_topic: str = '/success_detection'
    # std_msgs/Float64MultiArray command topic.
    command_topic: str = '/forward_position_controller/commands'
    # sensor_msgs/JointState topic.
    joint_states_topic: str = '/joint_states'
    # ActorWeights topics, stripped or full (the first one present is used).
    weights_topics: tuple[str, ...] = ('/dsrl/actor_weights/stripped', '/dsrl/actor_weights')
    # Episodes in the moving success rate.
    window: int = 20

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f'window must be >= 1, got {self.window}')


@dataclasses.dataclass
class BagData:
    """What the analysis needs from one bag, as plain arrays and lists."""

    name: str
    bag: Bag
    statuses: list[dict] = dataclasses.field(default_factory=list)
    transitions: list[dict] = dataclasses.field(default_factory=list)
    weights: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # (log ns, version)
    detections: list[dict] = dataclasses.field(default_factory=list)
    command_ns: list[int] = dataclasses.field(default_factory=list)
    joint_ns: list[int] = dataclasses.field(default_factory=list)
    reward_delay_ns: list[int] = dataclasses.field(default_factory=list)
    detection_delay_ns: list[int] = dataclasses.field(default_factory=list)


def _stamp(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def load_bag(path: str | os.PathLike, cfg: AnalysisConfig, progress: bool = False) -> BagData:
    """Read the topics the analysis uses from one bag (one pass)."""
    bag = open_bag(path)
    data = BagData(str(path), bag)
    weights_topic = next((t for t in cfg.weights_topics if t in bag.topics), None)
    wanted = [t for t in (cfg.transitions_topic, cfg.status_topic, cfg.reward_topic,
                          cfg.detection_topic, cfg.command_topic, cfg.joint_states_topic,
                          weights_topic) if t and t in bag.topics]
    if not wanted:
        raise BagError(f'{path}: none of the topics the analysis reads is in this bag (it has '
                       f'{sorted(bag.topics) or "no messages"})')
    # bulky topics are only timed, not decoded
    timing_only = {cfg.command_topic, cfg.joint_states_topic}
    decoded = [t for t in wanted if t not in timing_only]
    for m in bag.messages([t for t in wanted if t in timing_only], decode=False):
        (data.command_ns if m.topic == cfg.command_topic else data.joint_ns).append(m.log_time_ns)
    for m in bag.messages(decoded, progress=progress):
        msg, t = m.msg, m.log_time_ns
        if m.topic == cfg.status_topic:
            data.statuses.append({
                'log_ns': t, 'robot_id': msg.robot_id, 'episode_id': int(msg.episode_id),
                'phase': int(msg.phase), 'success': bool(msg.success),
                'return': float(msg.episode_return), 'length': int(msg.length),
                'elapsed': float(msg.elapsed), 'reason': msg.reason})
        elif m.topic == cfg.transitions_topic:
            data.transitions.append({
                'log_ns': t, 'stamp_ns': _stamp(msg.header), 'robot_id': msg.robot_id,
                'episode_id': int(msg.episode_id), 'reward': float(msg.reward),
                'terminated': bool(msg.terminated), 'truncated': bool(msg.truncated),
                'actor_version': int(msg.actor_version),
                'executed_steps': int(msg.executed_steps)})
        elif m.topic == weights_topic:
            data.weights.append((t, int(msg.version)))
        elif m.topic == cfg.reward_topic:
            data.reward_delay_ns.append(t - _stamp(msg.header))
        elif m.topic == cfg.detection_topic:
            data.detection_delay_ns.append(t - _stamp(msg.header))
            data.detections.append({'log_ns': t, 'score': float(msg.score),
                                    'decision': bool(msg.decision),
                                    'visible': bool(msg.object_visible)})
    return data


def episodes(data: BagData) -> list[dict]:
    """Return the finished episodes of one bag (see the module docstring), in end order."""
    by_ep: dict[tuple[str, int], list[dict]] = collections.defaultdict(list)
    for tr in data.transitions:
        by_ep[(tr['robot_id'], tr['episode_id'])].append(tr)
    rows = []
    last: dict[tuple[str, int], dict] = {}
    for s in data.statuses:
        if s['phase'] in TERMINAL and s['episode_id'] > 0:
            last[(s['robot_id'], s['episode_id'])] = s
    if last:
        for key, s in last.items():
            rows.append({'robot_id': key[0], 'episode_id': key[1], 'success': s['success'],
                         'return': s['return'], 'length': s['length'],
                         'elapsed_s': s['elapsed'],
                         'reason': s['reason'] or PHASE_NAMES[s['phase']], 'end_ns': s['log_ns']})
    else:
        for key, trs in by_ep.items():
            end = next((tr for tr in trs if tr['terminated'] or tr['truncated']), None)
            if end is None:
                continue
            trs = [tr for tr in trs if tr['log_ns'] <= end['log_ns']]
            rows.append({'robot_id': key[0], 'episode_id': key[1], 'success': end['terminated'],
                         'return': sum(tr['reward'] for tr in trs),
                         'length': sum(tr['executed_steps'] for tr in trs),
                         'elapsed_s': (trs[-1]['stamp_ns'] - trs[0]['stamp_ns']) / 1e9,
                         'reason': 'terminated' if end['terminated'] else 'truncated',
                         'end_ns': end['log_ns']})
    rows.sort(key=lambda r: r['end_ns'])
    for r in rows:
        trs = by_ep.get((r['robot_id'], r['episode_id']), [])
        r['transitions'] = len(trs)
        if trs:
            r['actor_version'] = max(tr['actor_version'] for tr in trs)
        else:
            before = [v for t, v in data.weights if t <= r['end_ns']]
            r['actor_version'] = max(before) if before else -1
        r['bag'] = data.name
    return rows


def version_table(rows: Sequence[dict]) -> list[dict]:
    """Return episodes, successes and success rate per actor version (-1 = unknown)."""
    groups: dict[int, list[bool]] = collections.defaultdict(list)
    for r in rows:
        groups[r['actor_version']].append(bool(r['success']))
    return [{'actor_version': v, 'episodes': len(s), 'successes': sum(s),
             'success_rate': sum(s) / len(s)} for v, s in sorted(groups.items())]


def latency_samples(datas: Sequence[BagData]) -> dict[str, np.ndarray]:
    """Return the timing samples in ms per metric (see the module docstring)."""
    out: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    for d in datas:
        cmd = np.asarray(d.command_ns, np.int64)
        joint = np.sort(np.asarray(d.joint_ns, np.int64))
        if cmd.size > 1:
            out['command interval'].append(np.diff(cmd) / 1e6)
        if joint.size > 1:
            out['joint_states interval'].append(np.diff(joint) / 1e6)
        if cmd.size and joint.size:
            idx = np.searchsorted(joint, cmd, side='right') - 1
            ok = idx >= 0
            out['state -> command'].append((cmd[ok] - joint[idx[ok]]) / 1e6)
        by_robot: dict[str, list[int]] = collections.defaultdict(list)
        for tr in d.transitions:
            by_robot[tr['robot_id']].append(tr['stamp_ns'])
        for stamps in by_robot.values():
            if len(stamps) > 1:
                out['transition interval (stamps)'].append(np.diff(np.asarray(stamps)) / 1e6)
        for name, delays in (('reward delay', d.reward_delay_ns),
                             ('detection delay', d.detection_delay_ns)):
            arr = np.asarray(delays, np.int64)
            if arr.size and abs(np.median(arr)) < 60e9:  # stamps on the recorder's clock
                out[name].append(arr / 1e6)
    return {k: np.concatenate(v) for k, v in out.items() if sum(a.size for a in v)}


def latency_table(samples: dict[str, np.ndarray]) -> list[dict]:
    """Return count, mean, p50, p90, p99 and max (ms) per metric."""
    rows = []
    for name, x in samples.items():
        rows.append({'metric': name, 'count': int(x.size), 'mean_ms': float(np.mean(x)),
                     'p50_ms': float(np.percentile(x, 50)),
                     'p90_ms': float(np.percentile(x, 90)),
                     'p99_ms': float(np.percentile(x, 99)), 'max_ms': float(np.max(x))})
    return rows


def moving_rate(success: Sequence[bool], window: int) -> np.ndarray:
    """Return the success rate over the last ``window`` episodes after each episode."""
    s = np.asarray(success, np.float64)
    c = np.concatenate([[0.0], np.cumsum(s)])
    idx = np.arange(1, s.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def _write_csv(path: pathlib.Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    with path.open('w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction='ignore')
        w.writeheader()
        for r in rows:
            w.writerow({k: (f'{v:.6g}' if isinstance(v, float) else v) for k, v in r.items()})


EPISODE_COLUMNS = ('bag', 'robot_id', 'episode_id', 'success', 'return', 'length', 'elapsed_s',
                   'reason', 'actor_version', 'transitions')


@dataclasses.dataclass
class AnalysisResult:
    """What :func:`analyze` found and wrote."""

    out_dir: str
    episodes: list[dict]
    versions: list[dict]
    latency: list[dict]
    files: list[str]
    skipped: dict[str, str]
    bags: list[BagData]

    @property
    def success_rate(self) -> float:
        """Success rate over all episodes (NaN without episodes)."""
        if not self.episodes:
            return float('nan')
        return sum(bool(r['success']) for r in self.episodes) / len(self.episodes)


def _plots(result: AnalysisResult, samples: dict[str, np.ndarray], cfg: AnalysisConfig,
           out: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        result.files.append(str(out / name))

    eps = result.episodes
    if eps:
        x = np.arange(1, len(eps) + 1)
        success = [bool(r['success']) for r in eps]
        fig, ax = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
        ax[0].plot(x, success, 'o', ms=3, alpha=0.4, label='episode success')
        ax[0].plot(x, moving_rate(success, cfg.window), '-', label=f'last {cfg.window}')
        ax[0].set_ylabel('success')
        ax[0].set_ylim(-0.05, 1.05)
        ax[0].legend(loc='lower right')
        ax[1].plot(x, [r['return'] for r in eps], '.-')
        ax[1].set_ylabel('return')
        ax[2].plot(x, [r['length'] for r in eps], '.-')
        ax[2].set_ylabel('length (steps)')
        ax[2].set_xlabel('episode')
        save(fig, 'episodes.png')
    else:
        result.skipped['episodes.png'] = 'no finished episode in the bag(s)'
    if result.versions and any(v['actor_version'] >= 0 for v in result.versions):
        fig, ax = plt.subplots(figsize=(8, 4))
        labels = [str(v['actor_version']) for v in result.versions]
        ax.bar(labels, [v['success_rate'] for v in result.versions])
        for i, v in enumerate(result.versions):
            ax.text(i, v['success_rate'], f'n={v["episodes"]}', ha='center', va='bottom')
        ax.set_xlabel('actor version')
        ax.set_ylabel('success rate')
        ax.set_ylim(0, 1.1)
        save(fig, 'versions.png')
    else:
        result.skipped['versions.png'] = 'no episode with a known actor version'
    if samples:
        n = len(samples)
        fig, axes = plt.subplots(n, 1, figsize=(8, 2.4 * n), squeeze=False)
        for ax, (name, xs) in zip(axes[:, 0], samples.items()):
            ax.hist(xs, bins=50)
            ax.set_title(f'{name}: median {np.median(xs):.1f} ms, p99 '
                         f'{np.percentile(xs, 99):.1f} ms (n={xs.size})', fontsize=9)
            ax.set_xlabel('ms')
        save(fig, 'latency.png')
    else:
        result.skipped['latency.png'] = 'no commands, joint states, transitions or rewards'
    dets = [(d.name, d.detections) for d in result.bags if d.detections]
    if dets:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for name, rows in dets:
            t0 = rows[0]['log_ns']
            t = np.array([(r['log_ns'] - t0) / 1e9 for r in rows])
            score = np.array([r['score'] for r in rows])
            dec = np.array([r['decision'] for r in rows])
            ax.plot(t, score, '-', lw=0.8, label=pathlib.Path(name).name)
            ax.plot(t[dec], score[dec], 'r.', ms=4)
        ax.set_xlabel('s since the first frame (red: success decision)')
        ax.set_ylabel('detector score')
        ax.legend(loc='upper right', fontsize=8)
        save(fig, 'detector.png')
    else:
        result.skipped['detector.png'] = 'no success_detection messages'


def _summary_md(result: AnalysisResult, cfg: AnalysisConfig) -> str:
    lines = ['# Run analysis', '', '## Bags', '',
             '| bag | files | messages | duration (s) | git revision | notes |',
             '|---|---|---|---|---|---|']
    for d in result.bags:
        b = d.bag
        stamps = (d.command_ns + d.joint_ns + [s['log_ns'] for s in d.statuses]
                  + [t['log_ns'] for t in d.transitions])
        duration = (max(stamps) - min(stamps)) / 1e9 if stamps else 0.0
        notes = '; '.join([str(x) for x in b.damage] + b.notes) or '-'
        lines.append(f'| {d.name} | {len(b.files)} | {b.message_count} | {duration:.1f} | '
                     f'{b.provenance.get("dsrl.git_revision", "?")} | {notes} |')
    lines += ['', '## Episodes', '']
    eps = result.episodes
    if eps:
        rets = np.array([r['return'] for r in eps])
        lens = np.array([r['length'] for r in eps])
        last = moving_rate([bool(r['success']) for r in eps], cfg.window)[-1]
        lines += [f'- episodes: {len(eps)}, successes: {sum(bool(r["success"]) for r in eps)}, '
                  f'success rate {result.success_rate:.3f} (last {cfg.window}: {last:.3f})',
                  f'- return: mean {rets.mean():.2f}, min {rets.min():.2f}, max {rets.max():.2f}',
                  f'- length: mean {lens.mean():.1f} steps, min {lens.min()}, max {lens.max()}',
                  '', 'Per episode: `episodes.csv`.']
    else:
        lines.append('No finished episode.')
    lines += ['', '## Actor version vs success', '']
    if result.versions:
        lines += ['| actor version | episodes | successes | success rate |', '|---|---|---|---|']
        lines += [f'| {v["actor_version"]} | {v["episodes"]} | {v["successes"]} | '
                  f'{v["success_rate"]:.3f} |' for v in result.versions]
    else:
        lines.append('No episodes.')
    lines += ['', '## Control-loop timing (ms)', '']
    if result.latency:
        lines += ['| metric | count | mean | p50 | p90 | p99 | max |',
                  '|---|---|---|---|---|---|---|']
        lines += [f'| {r["metric"]} | {r["count"]} | {r["mean_ms"]:.2f} | {r["p50_ms"]:.2f} | '
                  f'{r["p90_ms"]:.2f} | {r["p99_ms"]:.2f} | {r["max_ms"]:.2f} |'
                  for r in result.latency]
    else:
        lines.append('No timing data.')
    lines += ['', '## Success detector', '']
    dets = [r for d in result.bags for r in d.detections]
    if dets:
        lines.append(f'- frames scored: {len(dets)}, success decisions: '
                     f'{sum(r["decision"] for r in dets)}, object visible in '
                     f'{np.mean([r["visible"] for r in dets]):.1%}, mean score '
                     f'{np.mean([r["score"] for r in dets]):.3f} (`detector.csv`)')
    else:
        lines.append('No success_detection messages.')
    lines += ['', '## Plots', '']
    for f in result.files:
        if f.endswith('.png'):
            name = pathlib.Path(f).name
            lines.append(f'![{name}]({name})')
    for name, why in result.skipped.items():
        lines.append(f'- {name} not drawn: {why}')
    return '\n'.join(lines) + '\n'


def analyze(bags: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
            cfg: Optional[AnalysisConfig] = None, progress: bool = False) -> AnalysisResult:
    """Analyse ``bags`` (in order) and write CSVs, PNGs and summary.md into ``out_dir``."""
    cfg = cfg or AnalysisConfig()
    if not bags:
        raise ValueError('no bag given')
    datas = [load_bag(b, cfg, progress) for b in bags]
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for d in datas for r in episodes(d)]
    samples = latency_samples(datas)
    result = AnalysisResult(str(out), rows, version_table(rows), latency_table(samples), [], {},
                            datas)
    _write_csv(out / 'episodes.csv', rows, EPISODE_COLUMNS)
    _write_csv(out / 'versions.csv', result.versions,
               ('actor_version', 'episodes', 'successes', 'success_rate'))
    _write_csv(out / 'latency.csv', result.latency,
               ('metric', 'count', 'mean_ms', 'p50_ms', 'p90_ms', 'p99_ms', 'max_ms'))
    det_rows = [{'bag': d.name, 'time': format_ns(r['log_ns']), 'log_ns': r['log_ns'],
                 'score': r['score'], 'decision': r['decision'], 'visible': r['visible']}
                for d in datas for r in d.detections]
    _write_csv(out / 'detector.csv', det_rows,
               ('bag', 'time', 'log_ns', 'score', 'decision', 'visible'))
    result.files += [str(out / n) for n in ('episodes.csv', 'versions.csv', 'latency.csv',
                                            'detector.csv')]
    _plots(result, samples, cfg, out)
    (out / 'summary.md').write_text(_summary_md(result, cfg))
    result.files.append(str(out / 'summary.md'))
    return result
