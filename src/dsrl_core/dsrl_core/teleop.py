"""
Keyboard teleop for resets between episodes: key -> action logic and the shared safety clamps.

Keys (``DEFAULT_KEYS``): ``q/a``, ``w/s``, ``e/d`` jog joint 1, 2, 3 up/down by ``jog_step`` rad;
``c`` confirms "reset done"; ``y`` / ``n`` label the episode success / failure; space is the
e-stop (latched: every jog is refused until ``r`` releases it); ``h`` prints help; ``x`` quits.

Jogs are refused unless the episode phase is RESETTING (the arm belongs to the policy otherwise),
and every command target passes ``clamp_target``: at most ``max_step`` rad per joint away from the
current target, then clipped to the joint limits. The reward node's scripted home path uses the
same function, so both ways of moving the arm share one clamp.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from dsrl_core.episode import Phase

DEFAULT_KEYS = {
    'q': ('jog', 0, +1), 'a': ('jog', 0, -1),
    'w': ('jog', 1, +1), 's': ('jog', 1, -1),
    'e': ('jog', 2, +1), 'd': ('jog', 2, -1),
    'c': ('confirm',), 'y': ('label', True), 'n': ('label', False),
    ' ': ('estop',), 'r': ('release',), 'h': ('help',), 'x': ('quit',), '\x03': ('quit',),
}

HELP = ('keys: q/a w/s e/d jog joints 1-3 (+/-) during RESETTING | c confirm reset done | '
        'y/n label success/failure | space E-STOP (r releases) | h help | x quit')


def clamp_target(target: np.ndarray, current: np.ndarray, limits: np.ndarray,
                 max_step: float) -> np.ndarray:
    """Return ``target`` limited to ``current +- max_step`` per joint, then to ``limits``."""
    target = np.asarray(target, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    limits = np.asarray(limits, dtype=np.float64)
    if target.shape != current.shape or limits.shape != (target.size, 2):
        raise ValueError(f'shape mismatch: target {target.shape}, current {current.shape}, '
                         f'limits {limits.shape}')
    if not (np.all(np.isfinite(target)) and np.all(np.isfinite(current))):
        raise ValueError(f'non-finite joint values: target {target}, current {current}')
    if max_step <= 0:
        raise ValueError(f'max_step must be positive, got {max_step}')
    stepped = np.clip(target, current - max_step, current + max_step)
    return np.clip(stepped, limits[:, 0], limits[:, 1])


def interpolate_path(start: np.ndarray, waypoints: np.ndarray, limits: np.ndarray,
                     max_step: float) -> list[np.ndarray]:
    """Return joint targets from ``start`` through ``waypoints`` [N, J], each <= max_step apart."""
    cur = np.clip(np.asarray(start, dtype=np.float64), limits[:, 0], limits[:, 1])
    out = []
    for wp in np.atleast_2d(np.asarray(waypoints, dtype=np.float64)):
        goal = np.clip(wp, limits[:, 0], limits[:, 1])
        while True:
            cur = clamp_target(goal, cur, limits, max_step)
            out.append(cur.copy())
            if np.allclose(cur, goal, atol=1e-12):
                break
    return out


@dataclasses.dataclass
class TeleopAction:
    """Outcome of one key; ``kind``: jog/confirm/label/estop/release/help/quit/refused/ignored."""

    kind: str
    target: Optional[np.ndarray] = None
    success: Optional[bool] = None
    message: str = ''


class TeleopCore:
    """Turns keys into actions given the current phase and joint target (no I/O)."""

    def __init__(self, limits: np.ndarray, jog_step: float = 0.05, max_step: float = 0.1,
                 keys: Optional[dict] = None) -> None:
        """Create with joint ``limits`` [J, 2] (rad), ``jog_step`` and ``max_step`` (rad)."""
        self.limits = np.asarray(limits, dtype=np.float64)
        if self.limits.ndim != 2 or self.limits.shape[1] != 2 or \
                np.any(self.limits[:, 0] >= self.limits[:, 1]):
            raise ValueError(f'limits must be [J, 2] with low < high, got {self.limits}')
        if not 0 < jog_step <= max_step:
            raise ValueError(f'need 0 < jog_step <= max_step, got {jog_step}, {max_step}')
        self.jog_step = float(jog_step)
        self.max_step = float(max_step)
        self.keys = dict(DEFAULT_KEYS if keys is None else keys)
        self.estopped = False
        self.refused = 0

    def handle_key(self, key: str, phase: Optional[int],
                   current: Optional[np.ndarray]) -> TeleopAction:
        """Return the action for ``key`` in ``phase`` (None = unknown) from target ``current``."""
        spec = self.keys.get(key)
        if spec is None:
            return TeleopAction('ignored', message=f'unbound key {key!r} (h for help)')
        kind = spec[0]
        if kind == 'jog':
            return self._jog(spec[1], spec[2], phase, current)
        if kind == 'label':
            return TeleopAction('label', success=spec[1],
                                message=f'label {"success" if spec[1] else "failure"}')
        if kind == 'estop':
            self.estopped = True
            return TeleopAction('estop', target=None if current is None else
                                np.asarray(current, dtype=np.float64).copy(),
                                message='E-STOP: holding position, episode aborted; r releases')
        if kind == 'release':
            self.estopped = False
            return TeleopAction('release', message='e-stop released')
        if kind == 'help':
            return TeleopAction('help', message=HELP)
        if kind == 'quit':
            return TeleopAction('quit', message='bye')
        return TeleopAction('confirm', message='reset done')

    def _refuse(self, message: str) -> TeleopAction:
        self.refused += 1
        return TeleopAction('refused', message=message)

    def _jog(self, joint: int, sign: int, phase: Optional[int],
             current: Optional[np.ndarray]) -> TeleopAction:
        if self.estopped:
            return self._refuse('refused: e-stop is latched (r releases)')
        if phase is None:
            return self._refuse('refused: no episode status received yet')
        if phase != Phase.RESETTING:
            return self._refuse(f'refused: jogging only during RESETTING (phase is '
                                f'{Phase(phase).name})')
        if current is None:
            return self._refuse('refused: current joint positions unknown')
        if not 0 <= joint < len(self.limits):
            return self._refuse(f'refused: no joint {joint + 1}')
        cur = np.asarray(current, dtype=np.float64)
        want = cur.copy()
        want[joint] += sign * self.jog_step
        target = clamp_target(want, cur, self.limits, self.max_step)
        if np.allclose(target, cur):
            return self._refuse(f'refused: joint {joint + 1} at its limit {cur[joint]:+.3f}')
        return TeleopAction('jog', target=target,
                            message=f'joint {joint + 1} -> {target[joint]:+.3f} rad')
