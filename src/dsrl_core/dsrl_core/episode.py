"""
Episode manager: the state machine behind the reward/reset node, pure logic with explicit times.

Phases (values equal dsrl_msgs/EpisodeStatus.PHASE_*)::

    READY --start--> RUNNING --detector / human label--> SUCCESS --\
                        |------time limit / stop---------> TIMEOUT ---> RESETTING --> READY
                        |------abort / camera lost-------> ABORTED --/

* ``step(now)`` is called once per control step while the episode runs; it returns the reward of
  that step (sparse by default: ``step_reward`` = -1 until success, ``success_reward`` = 0 on the
  success step) and ends the episode when the detector (``observe``) or a human label says so, or
  when ``time_limit_s`` has elapsed.
* A human label (``label``) overrides the detector; both are kept in the ``EpisodeRecord``. A
  success label while RUNNING ends the episode as SUCCESS at the next step; a failure label ends it
  as a failure (phase TIMEOUT, reason ``human_label``, terminated rather than truncated). After the
  end, a label only changes the recorded outcome. Labels are refused once the episode is reset.
* Camera lost or an operator abort while RUNNING ends the episode as ABORTED: its transitions are
  flagged truncated and it does not count as a failure for learning (``counts_for_learning``).
* RESETTING has stages: ``sim`` (the simulator's reset service is called; ``sim_reset_finished``
  advances to READY by itself), or on a real robot ``homing`` (scripted home path) then
  ``await_confirm`` (a person resets the scene and confirms with ``confirm_reset``).
* ``tick(now)`` applies the automatic transitions: a terminal phase moves to RESETTING after
  ``result_hold_s`` when ``auto_reset`` is set, and READY starts the next episode when
  ``auto_start`` is set.

Times are seconds on any monotonic clock (the node passes ROS time), given by the caller.
"""

from __future__ import annotations

import dataclasses
from enum import IntEnum
from typing import NamedTuple, Optional


class Phase(IntEnum):
    """Episode phase; values equal dsrl_msgs/EpisodeStatus.PHASE_*."""

    READY = 0
    RUNNING = 1
    SUCCESS = 2
    TIMEOUT = 3
    ABORTED = 4
    RESETTING = 5


class Label(IntEnum):
    """Human label; values equal dsrl_msgs/EpisodeStatus.LABEL_*."""

    NONE = 0
    SUCCESS = 1
    FAILURE = 2


class Command(IntEnum):
    """Episode command; values equal dsrl_msgs/srv/EpisodeCommand COMMAND_*."""

    START = 0
    STOP = 1
    ABORT = 2
    RESET = 3
    RESET_DONE = 4


TERMINAL = (Phase.SUCCESS, Phase.TIMEOUT, Phase.ABORTED)


class Result(NamedTuple):
    """Answer to a command or label: accepted or not, and why."""

    accepted: bool
    message: str


@dataclasses.dataclass
class EpisodeRecord:
    """What happened in one episode; the detector's decision and the human label both kept."""

    episode_id: int
    start_time: float
    end_time: Optional[float] = None
    end_phase: Optional[Phase] = None
    reason: str = ''
    length: int = 0
    episode_return: float = 0.0
    detector_success: bool = False
    human_label: Label = Label.NONE
    label_note: str = ''
    truncated: bool = False
    terminated: bool = False

    @property
    def success(self) -> bool:
        """Final outcome: the human label when there is one, else the detector's decision."""
        if self.human_label != Label.NONE:
            return self.human_label == Label.SUCCESS
        return self.detector_success

    @property
    def counts_for_learning(self) -> bool:
        """Return False for aborted episodes (camera lost, operator abort): not a failure."""
        return self.end_phase != Phase.ABORTED


class EpisodeManager:
    """The episode state machine (see the module docstring)."""

    def __init__(self, time_limit_s: float, step_reward: float = -1.0,
                 success_reward: float = 0.0, sim: bool = True, auto_reset: bool = True,
                 auto_start: bool = False, result_hold_s: float = 0.5) -> None:
        """Create a manager in READY with no episode yet (``episode_id`` 0)."""
        if time_limit_s <= 0:
            raise ValueError(f'time_limit_s must be positive, got {time_limit_s}')
        if result_hold_s < 0:
            raise ValueError(f'result_hold_s must be >= 0, got {result_hold_s}')
        self.time_limit_s = float(time_limit_s)
        self.step_reward = float(step_reward)
        self.success_reward = float(success_reward)
        self.sim = bool(sim)
        self.auto_reset = bool(auto_reset)
        self.auto_start = bool(auto_start)
        self.result_hold_s = float(result_hold_s)
        self.phase = Phase.READY
        self.reason = 'init'
        self.reset_stage = ''
        self.record: Optional[EpisodeRecord] = None
        self.history: list[EpisodeRecord] = []
        self.changes = 0  # incremented on every phase change (the node publishes on change)
        self._phase_since = 0.0
        self._detector_success = False
        self._pending_label: Optional[Label] = None
        self.sim_reset_failures = 0

    # ---------------------------------------------------------------- properties
    @property
    def episode_id(self) -> int:
        """Id of the current or most recent episode (0 before the first)."""
        return self.record.episode_id if self.record else 0

    def elapsed(self, now: float) -> float:
        """Seconds since the current episode started (frozen at its end)."""
        if self.record is None:
            return 0.0
        end = self.record.end_time if self.record.end_time is not None else now
        return max(0.0, end - self.record.start_time)

    # ---------------------------------------------------------------- commands
    def command(self, cmd: int, now: float, reason: str = '', camera_ok: bool = True) -> Result:
        """Apply an EpisodeCommand; unknown commands are refused."""
        try:
            cmd = Command(cmd)
        except ValueError:
            return Result(False, f'unknown command {cmd}')
        if cmd == Command.START:
            return self.start(now, reason, camera_ok)
        if cmd == Command.STOP:
            return self.stop(now, reason)
        if cmd == Command.ABORT:
            return self.abort(now, reason or 'operator_abort')
        if cmd == Command.RESET:
            return self.request_reset(now, reason)
        return self.confirm_reset(now, reason)

    def start(self, now: float, reason: str = '', camera_ok: bool = True) -> Result:
        """READY -> RUNNING with a new episode id (refused while the camera is unhealthy)."""
        if self.phase != Phase.READY:
            return Result(False, f'cannot start: phase is {self.phase.name}')
        if not camera_ok:
            return Result(False, 'cannot start: camera not healthy (no recent frames)')
        self.record = EpisodeRecord(episode_id=self.episode_id + 1, start_time=now)
        self._detector_success = False
        self._pending_label = None
        self._set(Phase.RUNNING, reason or 'start', now)
        return Result(True, f'episode {self.episode_id} started')

    def stop(self, now: float, reason: str = '') -> Result:
        """End a RUNNING episode early as TIMEOUT (truncated, like the time limit)."""
        if self.phase != Phase.RUNNING:
            return Result(False, f'cannot stop: phase is {self.phase.name}')
        self._end(Phase.TIMEOUT, reason or 'operator_stop', now, truncated=True)
        return Result(True, f'episode {self.episode_id} stopped')

    def abort(self, now: float, reason: str = 'operator_abort') -> Result:
        """End a RUNNING episode as ABORTED (truncated, not counted as a failure for learning)."""
        if self.phase != Phase.RUNNING:
            return Result(False, f'cannot abort: phase is {self.phase.name}')
        self._end(Phase.ABORTED, reason, now, truncated=True)
        return Result(True, f'episode {self.episode_id} aborted ({reason})')

    def camera_lost(self, now: float) -> Result:
        """Camera frames stopped: RUNNING -> ABORTED with reason ``camera_lost``."""
        return self.abort(now, 'camera_lost')

    def request_reset(self, now: float, reason: str = '') -> Result:
        """SUCCESS/TIMEOUT/ABORTED -> RESETTING (stage ``sim`` or ``homing``)."""
        if self.phase not in TERMINAL:
            return Result(False, f'cannot reset: phase is {self.phase.name}')
        self.reset_stage = 'sim' if self.sim else 'homing'
        self._set(Phase.RESETTING, reason or 'reset', now)
        return Result(True, f'resetting ({self.reset_stage})')

    def homing_finished(self, now: float) -> Result:
        """Real robot: the home path was sent; wait for a person to confirm the reset."""
        if self.phase != Phase.RESETTING or self.reset_stage != 'homing':
            return Result(False, f'not homing: phase {self.phase.name} stage {self.reset_stage!r}')
        self.reset_stage = 'await_confirm'
        self.changes += 1
        return Result(True, 'home path sent; waiting for the reset confirmation')

    def confirm_reset(self, now: float, reason: str = '') -> Result:
        """Real robot: a person confirms the scene is reset: RESETTING -> READY."""
        if self.phase != Phase.RESETTING:
            return Result(False, f'cannot confirm reset: phase is {self.phase.name}')
        if self.reset_stage != 'await_confirm':
            return Result(False, f'cannot confirm reset yet: stage is {self.reset_stage!r}')
        self._to_ready(now, reason or 'reset_done')
        return Result(True, 'reset confirmed')

    def sim_reset_finished(self, now: float, ok: bool, message: str = '') -> Result:
        """Sim: the reset service answered; success -> READY, failure is counted and retried."""
        if self.phase != Phase.RESETTING or self.reset_stage != 'sim':
            return Result(False, f'no sim reset pending: phase {self.phase.name}')
        if not ok:
            self.sim_reset_failures += 1
            return Result(False, f'sim reset failed: {message}')
        self._to_ready(now, 'sim_reset')
        return Result(True, 'sim reset done')

    def label(self, success: bool, now: float, episode_id: int = 0, note: str = '') -> Result:
        """Record a human label for the current/most recent episode (overrides the detector)."""
        if self.record is None:
            return Result(False, 'no episode to label yet')
        if episode_id not in (0, self.episode_id):
            return Result(False, f'unknown episode {episode_id} (current is {self.episode_id})')
        if self.phase == Phase.READY:
            return Result(False, f'episode {self.episode_id} is already reset')
        lab = Label.SUCCESS if success else Label.FAILURE
        self.record.human_label = lab
        self.record.label_note = note
        if self.phase == Phase.RUNNING:
            self._pending_label = lab
            return Result(True, f'episode {self.episode_id} labelled {lab.name}; '
                                'it ends at the next step')
        self.changes += 1
        said = 'success' if self.record.detector_success else 'failure'
        return Result(True, f'episode {self.episode_id} labelled {lab.name} '
                            f'(detector said {said})')

    # ---------------------------------------------------------------- per step / tick
    def observe(self, detector_decision: bool) -> None:
        """Latest decision of the success detector (used by the next ``step``)."""
        self._detector_success = bool(detector_decision)

    def step(self, now: float) -> Optional[float]:
        """One control step: the reward while RUNNING (None otherwise); may end the episode."""
        if self.phase != Phase.RUNNING:
            return None
        rec = self.record
        rec.length += 1
        if self._pending_label is not None:
            success = self._pending_label == Label.SUCCESS
            reason = 'human_label'
        else:
            success = self._detector_success
            reason = 'detector'
        reward = self.success_reward if success else self.step_reward
        rec.episode_return += reward
        if self._detector_success:
            rec.detector_success = True
        if success:
            self._end(Phase.SUCCESS, reason, now, terminated=True)
        elif self._pending_label == Label.FAILURE:
            self._end(Phase.TIMEOUT, 'human_label', now, terminated=True)
        elif now - rec.start_time >= self.time_limit_s:
            self._end(Phase.TIMEOUT, 'time_limit', now, truncated=True)
        return reward

    def tick(self, now: float, camera_ok: bool = True) -> None:
        """Apply automatic transitions: terminal -> RESETTING, READY -> RUNNING (auto_start)."""
        if self.phase in TERMINAL and self.auto_reset and \
                now - self._phase_since >= self.result_hold_s:
            self.request_reset(now, 'auto_reset')
        elif self.phase == Phase.READY and self.auto_start:
            self.start(now, 'auto_start', camera_ok)

    def status(self, now: float) -> dict:
        """Fields of dsrl_msgs/EpisodeStatus (without header and robot_id)."""
        rec = self.record
        return {
            'phase': int(self.phase),
            'episode_id': self.episode_id,
            'success': bool(rec.success) if rec and self.phase != Phase.RUNNING else False,
            'episode_return': float(rec.episode_return) if rec else 0.0,
            'length': rec.length if rec else 0,
            'elapsed': self.elapsed(now),
            'reason': self.reason,
            'human_label': int(rec.human_label) if rec else 0,
        }

    # ---------------------------------------------------------------- helpers
    def _set(self, phase: Phase, reason: str, now: float) -> None:
        self.phase = phase
        self.reason = reason
        self._phase_since = now
        self.changes += 1

    def _end(self, phase: Phase, reason: str, now: float, truncated: bool = False,
             terminated: bool = False) -> None:
        rec = self.record
        rec.end_time = now
        rec.end_phase = phase
        rec.reason = reason
        rec.truncated = truncated
        rec.terminated = terminated
        self.history.append(rec)
        self._set(phase, reason, now)

    def _to_ready(self, now: float, reason: str) -> None:
        self.reset_stage = ''
        self.sim_reset_failures = 0
        self._set(Phase.READY, reason, now)
