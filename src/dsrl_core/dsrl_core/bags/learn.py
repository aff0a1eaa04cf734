"""
Learning from bags: recorded transitions into a replay buffer, teleop bags into BC demonstrations.

* :func:`load_transitions` reads ``dsrl_msgs/Transition`` messages from bags into a
  ``dsrl_core.rl.buffer.ReplayBuffer``, checked exactly as the learner checks live ones
  (``dsrl_core.rl.trainer.check_transition``; rejected ones are counted by reason, robot ids
  numbered in order of appearance as the learner does). Uses: a warm start (``ReplayBuffer.save``
  writes the ``replay.npz`` a learner checkpoint holds), or the offline buffer of DSRL-NA /
  RLPD-style mixing (``dsrl_core.rl.buffer.MixedSampler``).
* :func:`bag_to_demos` turns a teleoperation (or any) bag with joint states, controller commands
  and the object pose into the demonstration format of ``dsrl_core.sim.demos`` (what
  ``python -m dsrl_core.policy.train_bc --demos`` reads). Observation at a step: the newest joint
  positions and velocities (by joint name) and object x, y received before it; action: the
  command in force during the step (the newest command received before the next step; before the
  first command, the measured joint positions, i.e. "hold"). Steps are taken every ``1/hz``
  seconds of log time (commands of a keyboard or spacemouse teleop arrive irregularly), or one per
  command with ``hz = 0``. Episodes: the RUNNING spans of ``episode_status`` (success from the
  terminal status) when the bag has them, else the command stream split at pauses longer than
  ``gap_s`` (success: the object ended within the goal radius of the push task).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from typing import Any, Optional, Sequence

import numpy as np

from dsrl_core.bags.reader import BagError, open_bag


@dataclasses.dataclass
class LoadReport:
    """What :func:`load_transitions` read and kept."""

    read: int = 0
    added: int = 0
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)
    robot_index: dict[str, int] = dataclasses.field(default_factory=dict)
    actor_versions: dict[int, int] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        """One line."""
        rej = (', rejected: ' + '; '.join(f'{n} x {why}' for why, n in self.rejected.items())
               if self.rejected else '')
        return (f'{self.read} transitions read, {self.added} added (robots {self.robot_index}, '
                f'actor versions {dict(sorted(self.actor_versions.items()))}){rej}')


def load_transitions(bags: Sequence[str | os.PathLike], buffer: Any = None,
                     capacity: int = 0, topic: str = '/dsrl/transitions',
                     robot_ids: Sequence[str] = ('*',),
                     robot_index: Optional[dict[str, int]] = None,
                     progress: bool = False) -> tuple[Any, LoadReport]:
    """
    Add the transitions of ``bags`` to ``buffer`` (a new one if None); return it and a report.

    A new buffer takes its shapes from the first transition and holds ``capacity`` transitions
    (0 = all of them). ``robot_ids`` filters like the learner's parameter ('*' = any).
    """
    from dsrl_core.rl.buffer import ReplayBuffer
    from dsrl_core.rl.trainer import check_transition, Transition, TransitionRejected
    report = LoadReport(robot_index=dict(robot_index or {}))

    def accepts(rid: str) -> bool:
        return bool(rid) and ('*' in robot_ids or rid in robot_ids)

    opened = [open_bag(b) for b in bags]
    missing = [str(b.path) for b in opened if topic not in b.topics]
    if len(missing) == len(opened):
        raise BagError(f'no {topic} in {missing}: nothing to load')
    rows: list[tuple[str, dict]] = []
    shape = (buffer.obs_dim, buffer.noise_shape) if buffer is not None else None
    for bag in opened:
        if topic not in bag.topics:
            continue
        for m in bag.messages([topic], progress=progress):
            msg = m.msg
            report.read += 1
            if shape is None:  # a new buffer takes the first transition's shapes
                shape = (int(msg.obs_dim), (int(msg.chunk_length), int(msg.action_dim)))
            t = Transition(
                robot_id=msg.robot_id, episode_id=int(msg.episode_id),
                obs=np.asarray(msg.obs, np.float32), next_obs=np.asarray(msg.next_obs,
                                                                         np.float32),
                noise=np.asarray(msg.noise, np.float32), action=np.asarray(msg.action,
                                                                           np.float32),
                reward=float(msg.reward), terminated=bool(msg.terminated),
                truncated=bool(msg.truncated), actor_version=int(msg.actor_version),
                obs_dim=int(msg.obs_dim), chunk_length=int(msg.chunk_length),
                action_dim=int(msg.action_dim), executed_steps=int(msg.executed_steps))
            try:
                arrays = check_transition(t, shape[0], shape[1], accepts)
            except TransitionRejected as exc:
                why = str(exc)
                report.rejected[why] = report.rejected.get(why, 0) + 1
                continue
            rows.append((t.robot_id, arrays))
    if not rows:
        raise BagError(f'no usable transition on {topic} in {[str(b.path) for b in opened]} '
                       f'({report})')
    if buffer is None:
        obs_dim, noise_shape = shape
        buffer = ReplayBuffer(obs_dim, noise_shape, noise_shape, capacity or len(rows))
    cols = collections.defaultdict(list)
    for rid, a in rows:
        idx = report.robot_index.setdefault(rid, len(report.robot_index))
        for key in ('obs', 'noise', 'action', 'reward', 'next_obs', 'terminated', 'truncated',
                    'actor_version'):
            cols[key].append(a[key])
        cols['robot_id'].append(idx)
        report.actor_versions[a['actor_version']] = report.actor_versions.get(
            a['actor_version'], 0) + 1
    buffer.add_batch(np.stack(cols['obs']), np.stack(cols['noise']), np.stack(cols['action']),
                     np.asarray(cols['reward']), np.stack(cols['next_obs']),
                     np.asarray(cols['terminated']), np.asarray(cols['truncated']),
                     np.asarray(cols['actor_version']), np.asarray(cols['robot_id']))
    report.added = len(rows)
    return buffer, report


@dataclasses.dataclass
class DemoConfig:
    """How a bag becomes demonstrations."""

    # sensor_msgs/JointState topic (positions and velocities by joint name).
    joint_states_topic: str = '/joint_states'
    # std_msgs/Float64MultiArray controller command topic (joint position targets, radians).
    command_topic: str = '/forward_position_controller/commands'
    # geometry_msgs/PoseStamped topic of the object (x, y used).
    object_pose_topic: str = '/object_pose'
    # dsrl_msgs/EpisodeStatus topic (episode spans and outcomes), used when present.
    status_topic: str = '/episode_status'
    # Joint names in command order (the push task's by default).
    joint_names: tuple[str, ...] = ('joint1', 'joint2', 'joint3')
    # Steps per second of the demonstrations (the policy's control rate); 0 = one per command.
    hz: float = 10.0
    # 'auto' (status if the bag has RUNNING statuses, else gap), 'status' or 'gap'.
    segment: str = 'auto'
    # Gap segmentation: a pause without commands longer than this ends an episode (seconds).
    gap_s: float = 2.0
    # Keep only successful episodes.
    only_success: bool = False
    # Episodes with fewer steps are dropped.
    min_steps: int = 2

    def __post_init__(self) -> None:
        if self.segment not in ('auto', 'status', 'gap'):
            raise ValueError(f"segment must be 'auto', 'status' or 'gap', got {self.segment!r}")
        if self.hz < 0 or self.gap_s <= 0 or self.min_steps < 1:
            raise ValueError('hz must be >= 0, gap_s > 0 and min_steps >= 1')
        self.joint_names = tuple(self.joint_names)


def _latest(times: np.ndarray, t: float) -> int:
    """Index of the newest entry of sorted ``times`` at or before ``t`` (-1 if none)."""
    return int(np.searchsorted(times, t, side='right')) - 1


def _episode_spans(status: list[tuple[int, Any]], cmd_t: np.ndarray, cfg: DemoConfig,
                   ) -> list[tuple[int, int, Optional[bool]]]:
    """Return ``(start ns, end ns, success or None)`` of each episode."""
    running = [(t, m) for t, m in status if int(m.phase) == 1]
    if cfg.segment == 'status' or (cfg.segment == 'auto' and running):
        starts: dict[int, int] = {}
        ends: dict[int, tuple[int, bool]] = {}
        for t, m in status:
            ep = int(m.episode_id)
            if int(m.phase) == 1:
                starts.setdefault(ep, t)
            elif int(m.phase) in (2, 3, 4) and ep in starts:
                # ends at its first terminal status; a later one (a human label) sets success
                ends[ep] = (ends[ep][0] if ep in ends else t, bool(m.success))
        return [(starts[ep], ends[ep][0], ends[ep][1]) for ep in sorted(ends)]
    if cmd_t.size == 0:
        return []
    cuts = np.nonzero(np.diff(cmd_t) > cfg.gap_s * 1e9)[0]
    first = np.r_[0, cuts + 1]
    last = np.r_[cuts, cmd_t.size - 1]
    return [(int(cmd_t[a]), int(cmd_t[b]), None) for a, b in zip(first, last)]


def bag_to_demos(bags: Sequence[str | os.PathLike], cfg: Optional[DemoConfig] = None,
                 progress: bool = False) -> dict[str, Any]:
    """Return the demonstrations of ``bags`` in the format of ``dsrl_core.sim.demos``."""
    from dsrl_core.sim.demos import FORMAT_VERSION, validate_demos
    from dsrl_core.sim.push_env import (
        ACTION_NAMES,
        CONTROL_HZ,
        GOAL_RADIUS,
        GOAL_XY,
        JOINT_LIMITS,
        OBS_NAMES,
    )
    cfg = cfg or DemoConfig()
    if len(cfg.joint_names) != len(ACTION_NAMES):
        raise ValueError(f'joint_names must name {len(ACTION_NAMES)} joints, got '
                         f'{cfg.joint_names}')
    episodes: list[dict] = []
    skipped: collections.Counter = collections.Counter()
    for path in bags:
        bag = open_bag(path)
        need = [cfg.joint_states_topic, cfg.command_topic, cfg.object_pose_topic]
        absent = [t for t in need if t not in bag.topics]
        if absent:
            raise BagError(f'{path}: a demonstration bag needs {need}; missing {absent}')
        joints_t, pos, vel = [], [], []
        obj_t, obj = [], []
        cmd_t, cmd = [], []
        status: list[tuple[int, Any]] = []
        topics = need + ([cfg.status_topic] if cfg.status_topic in bag.topics else [])
        for m in bag.messages(topics, progress=progress):
            if m.topic == cfg.joint_states_topic:
                names = list(m.msg.name)
                try:
                    idx = [names.index(j) for j in cfg.joint_names]
                except ValueError:
                    skipped['joint_states without the configured joints'] += 1
                    continue
                p = np.asarray(m.msg.position, np.float64)
                v = np.asarray(m.msg.velocity, np.float64)
                if p.size != len(names) or (v.size and v.size != len(names)):
                    skipped['joint_states with inconsistent arrays'] += 1
                    continue
                joints_t.append(m.log_time_ns)
                pos.append(p[idx])
                vel.append(v[idx] if v.size else np.zeros(len(idx)))
            elif m.topic == cfg.object_pose_topic:
                obj_t.append(m.log_time_ns)
                obj.append((m.msg.pose.position.x, m.msg.pose.position.y))
            elif m.topic == cfg.command_topic:
                data = np.asarray(m.msg.data, np.float64)
                if data.size != len(cfg.joint_names) or not np.isfinite(data).all():
                    skipped['commands of the wrong length or not finite'] += 1
                    continue
                cmd_t.append(m.log_time_ns)
                cmd.append(data)
            else:
                status.append((m.log_time_ns, m.msg))
        jt, ot, ct = (np.asarray(x, np.int64) for x in (joints_t, obj_t, cmd_t))
        order = [np.argsort(x, kind='stable') for x in (jt, ot, ct)]
        jt, ot, ct = jt[order[0]], ot[order[1]], ct[order[2]]
        pos_a = np.asarray(pos).reshape(-1, 3)[order[0]]
        vel_a = np.asarray(vel).reshape(-1, 3)[order[0]]
        obj_a = np.asarray(obj).reshape(-1, 2)[order[1]]
        cmd_a = np.asarray(cmd).reshape(-1, 3)[order[2]]
        for start, end, success in _episode_spans(status, ct, cfg):
            dt = 1e9 / cfg.hz if cfg.hz > 0 else 0.0
            if dt:  # a status span ends at its terminal status; a command span at its last one
                steps = np.arange(start, end + (1 if success is None else 0), dt)
            else:
                steps = ct[(ct >= start) & (ct <= end)].astype(np.float64)
            o_rows, a_rows = [], []
            for k, t in enumerate(steps):
                j, p = _latest(jt, t), _latest(ot, t)
                if j < 0 or p < 0:
                    continue
                if cfg.hz > 0:
                    nxt = steps[k + 1] if k + 1 < len(steps) else t + dt
                    c = _latest(ct, nxt - 1)
                    action = cmd_a[c] if c >= 0 else pos_a[j]
                else:
                    action = cmd_a[_latest(ct, t)]
                o_rows.append(np.r_[pos_a[j], vel_a[j], obj_a[p]])
                a_rows.append(action)
            if len(o_rows) < cfg.min_steps:
                skipped[f'episodes shorter than {cfg.min_steps} steps'] += 1
                continue
            if success is None:
                p = _latest(ot, end)
                success = bool(np.linalg.norm(obj_a[p] - GOAL_XY) <= GOAL_RADIUS)
            if cfg.only_success and not success:
                skipped['failed episodes (only_success)'] += 1
                continue
            episodes.append({'obs': np.asarray(o_rows, np.float32),
                             'action': np.asarray(a_rows, np.float32),
                             'success': bool(success), 'bag': str(path)})
    if not episodes:
        raise BagError(f'no demonstration episode in {[str(b) for b in bags]} '
                       f'(skipped: {dict(skipped) or "nothing"})')
    meta = {'control_hz': cfg.hz or CONTROL_HZ, 'joint_limits': JOINT_LIMITS.tolist(),
            'goal_xy': GOAL_XY.tolist(), 'goal_radius': GOAL_RADIUS,
            'max_steps': max(len(e['obs']) for e in episodes), 'seed': -1,
            'n': len(episodes), 'attempts': len(episodes) + skipped.total(),
            'only_success': cfg.only_success, 'format_version': FORMAT_VERSION,
            'source': 'bags', 'bags': sorted({e['bag'] for e in episodes}),
            'sampling': f'{cfg.hz:g} Hz' if cfg.hz else 'per command',
            'skipped': dict(skipped)}
    demos = {
        'obs': np.concatenate([e['obs'] for e in episodes]),
        'action': np.concatenate([e['action'] for e in episodes]),
        'episode_ends': np.cumsum([len(e['obs']) for e in episodes]).astype(np.int64),
        'success': np.array([e['success'] for e in episodes], dtype=bool),
        'obs_names': np.array(OBS_NAMES, dtype=np.str_),
        'action_names': np.array(ACTION_NAMES, dtype=np.str_),
        'meta_json': np.array(json.dumps(meta), dtype=np.str_),
    }
    validate_demos(demos, source='bag_to_demos')
    return demos
