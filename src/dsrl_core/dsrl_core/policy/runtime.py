"""
The policy node's logic without ROS: observation layout, safety clamp, noise source, chunk timing.

* ``parse_obs_layout`` / ``assemble_obs``: the observation is assembled from named fields
  (``joint_pos/<joint>``, ``joint_vel/<joint>``, ``object/x|y|z``) in the order the checkpoint's
  ``PolicyMeta.obs_names`` gives; a configured layout that differs is an ``ObsLayoutError`` that
  names the first difference.
* ``clamp_command``: joint limits and a maximum change per command.
* ``NoiseSource``: the noise actor (``TanhGaussianActor``) and the noise it chooses — N(0, I) at
  version 0 and in ``warmup`` mode, a stochastic sample in ``train``, the mean in ``eval`` — plus
  verified weight updates (``offer``) that are applied only when the caller says (``apply``, at a
  chunk boundary).
* ``ActiveChunk``: one executing chunk; action i is due at ``start_ns + i * dt_ns``; an action
  more than ``stale_ns`` late is dropped (counted), never executed late (the node then ends the
  chunk: its transition covers the executed prefix, and the next chunk starts from a fresh
  observation).
* ``RewardBook``: per-step rewards keyed by stamp, summed over a chunk's window.
* ``TimingStats``: rolling windows of the node's timings (control cycle, observation -> command,
  weights publish -> verified and -> applied at a chunk boundary) and their percentiles for the
  periodic timing log line.

All times are integer nanoseconds of the caller's clock (sim time in lockstep).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from dsrl_core.policy.base import PolicyMeta
from dsrl_core.rl.networks import TanhGaussianActor
from dsrl_core.rl.serialize import actor_shapes, unpack_actor, WeightsRejected

JOINT_KINDS = ('joint_pos', 'joint_vel')
OBJECT_AXES = ('x', 'y', 'z')


class ObsLayoutError(ValueError):
    """The configured observation layout does not match the checkpoint, or is not understood."""


def actor_architecture(hidden: Sequence[int], layer_norm: bool) -> str:
    """Return the ActorWeights.architecture string, e.g. 'tanh_gaussian_mlp:256x256:layernorm'."""
    norm = 'layernorm' if layer_norm else 'nonorm'
    return f'tanh_gaussian_mlp:{"x".join(str(int(h)) for h in hidden)}:{norm}'


def parse_obs_layout(configured: Sequence[str], meta: PolicyMeta) -> list[tuple[str, str]]:
    """Check ``configured`` against ``meta.obs_names``; return (kind, key) per entry."""
    configured, expected = list(configured), list(meta.obs_names)
    if expected and configured != expected:
        diff = next((i for i, (a, b) in enumerate(zip(configured, expected)) if a != b),
                    min(len(configured), len(expected)))
        raise ObsLayoutError(
            f'observation layout mismatch: configured obs_names {configured} but the checkpoint '
            f'expects {expected} (first difference at index {diff})')
    if len(configured) != meta.obs_dim:
        raise ObsLayoutError(f"obs_names has {len(configured)} entries, the checkpoint's "
                             f'obs_dim is {meta.obs_dim}')
    layout = []
    for name in configured:
        kind, _, key = name.partition('/')
        if (kind in JOINT_KINDS and key) or (kind == 'object' and key in OBJECT_AXES):
            layout.append((kind, key))
        else:
            raise ObsLayoutError(f'unsupported observation entry {name!r}: use joint_pos/<joint>, '
                                 f'joint_vel/<joint> or object/x|y|z')
    return layout


def assemble_obs(layout: Sequence[tuple[str, str]], joints: Mapping[str, tuple[float, float]],
                 obj: Sequence[float]) -> np.ndarray:
    """Return the float32 observation from joint (position, velocity) by name and object xyz."""
    out = np.empty(len(layout), dtype=np.float32)
    for i, (kind, key) in enumerate(layout):
        if kind == 'object':
            out[i] = obj[OBJECT_AXES.index(key)]
        else:
            if key not in joints:
                raise ObsLayoutError(f'joint {key!r} missing from joint states '
                                     f'(have {sorted(joints)})')
            out[i] = joints[key][JOINT_KINDS.index(kind)]
    return out


def clamp_command(target: np.ndarray, reference: np.ndarray, low: np.ndarray, high: np.ndarray,
                  max_step: float) -> np.ndarray:
    """Return ``target`` limited to ``reference +- max_step`` and then to ``[low, high]``."""
    t = np.asarray(target, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise ValueError(f'non-finite command {t.tolist()}')
    ref = np.asarray(reference, dtype=np.float64)
    t = np.clip(t, ref - max_step, ref + max_step)
    return np.clip(t, low, high)


class NoiseSource:
    """The noise actor of one policy node and the noise it chooses (see the module docstring)."""

    def __init__(self, meta: PolicyMeta, hidden: Sequence[int], layer_norm: bool,
                 magnitude: float, mode: str, seed: int = 0, exploration: str = 'chunk') -> None:
        """
        Build the actor sized from ``meta`` (obs_dim -> T * act_dim); version 0 = N(0, I).

        ``exploration`` (train mode): 'episode' keeps the actor's standard-normal draw for a
        whole episode (temporally correlated exploration), 'chunk' draws a new one per chunk.
        """
        if mode not in ('train', 'eval', 'warmup'):
            raise ValueError(f"mode must be 'train', 'eval' or 'warmup', got {mode!r}")
        if exploration not in ('episode', 'chunk'):
            raise ValueError(f"exploration must be 'episode' or 'chunk', got {exploration!r}")
        self.meta, self.mode, self.exploration = meta, mode, exploration
        self._eps: Optional[torch.Tensor] = None
        self._eps_episode: Optional[int] = None
        self.hidden, self.layer_norm = tuple(int(h) for h in hidden), bool(layer_norm)
        self.magnitude = float(magnitude)
        self.architecture = actor_architecture(self.hidden, self.layer_norm)
        torch.manual_seed(seed)
        self.actor = TanhGaussianActor(meta.obs_dim, meta.noise_dim, self.hidden, magnitude,
                                       layer_norm=layer_norm).eval()
        self.shapes = actor_shapes(self.actor.state_dict())
        self.version = 0
        self.rejected = 0
        self.pending: Optional[tuple[int, dict]] = None
        self.generator = torch.Generator().manual_seed(seed)

    def noise(self, obs: np.ndarray, episode_id: int = 0) -> np.ndarray:
        """Return the noise w [T, act_dim] (float32) for one observation of ``episode_id``."""
        shape = self.meta.noise_shape
        if self.mode == 'warmup' or self.version == 0:
            return torch.randn(shape, generator=self.generator).numpy()
        eps = None
        if self.mode == 'train' and self.exploration == 'episode':
            if self._eps is None or self._eps_episode != episode_id:
                self._eps = torch.randn((1, self.meta.noise_dim), generator=self.generator)
                self._eps_episode = episode_id
            eps = self._eps
        o = torch.as_tensor(np.asarray(obs, dtype=np.float32)).unsqueeze(0)
        with torch.inference_mode():
            w, _ = self.actor(o, deterministic=self.mode == 'eval', with_log_prob=False,
                              generator=self.generator, eps=eps)
        return w[0].reshape(shape).numpy()

    def offer(self, version: int, payload: bytes, sha256: str, tag: str, key: Optional[bytes],
              obs_dim: int, chunk_length: int, action_dim: int, architecture: str,
              magnitude: float) -> None:
        """Verify a weights message and keep it pending; raise WeightsRejected (counted)."""
        try:
            self._check(version, obs_dim, chunk_length, action_dim, architecture, magnitude, key)
            state = unpack_actor(payload, sha256, tag, version, key, self.shapes)
        except WeightsRejected:
            self.rejected += 1
            raise
        self.pending = (version, state)

    def _check(self, version: int, obs_dim: int, chunk_length: int, action_dim: int,
               architecture: str, magnitude: float, key: Optional[bytes]) -> None:
        m = self.meta
        if not key:
            raise WeightsRejected('no HMAC key configured: weights cannot be verified')
        if (obs_dim, chunk_length, action_dim) != (m.obs_dim, m.horizon, m.act_dim):
            raise WeightsRejected(
                f'incompatible shapes: obs_dim/chunk_length/action_dim {obs_dim}/{chunk_length}/'
                f'{action_dim}, this node needs {m.obs_dim}/{m.horizon}/{m.act_dim}')
        if architecture != self.architecture:
            raise WeightsRejected(f'incompatible architecture {architecture!r}, this node runs '
                                  f'{self.architecture!r}')
        if not math.isclose(float(magnitude), self.magnitude, rel_tol=1e-6):
            raise WeightsRejected(f'incompatible action_magnitude {magnitude}, this node uses '
                                  f'{self.magnitude}')
        newest = max(self.version, self.pending[0] if self.pending else 0)
        if version <= newest:
            raise WeightsRejected(f'version {version} is not newer than {newest}')

    def apply(self) -> Optional[tuple[int, int]]:
        """Load pending weights (call at a chunk boundary); return (old, new) version or None."""
        if self.pending is None:
            return None
        version, state = self.pending
        self.pending = None
        self.actor.load_state_dict(state)
        old, self.version = self.version, version
        return old, version


@dataclasses.dataclass
class ActiveChunk:
    """One chunk being executed; action i is due at ``start_ns + i * dt_ns``."""

    obs: np.ndarray
    obs_stamp_ns: int
    start_ns: int
    dt_ns: int
    noise: np.ndarray
    actions: np.ndarray
    episode_id: int
    actor_version: int
    step_index: int
    # Index of the next action to send or drop.
    next_index: int = 0
    # Commands sent, in order (after clamping).
    rows: list = dataclasses.field(default_factory=list)
    sent: int = 0
    dropped: int = 0

    @property
    def horizon(self) -> int:
        """Chunk length T."""
        return len(self.actions)

    @property
    def finished(self) -> bool:
        """True once every action was sent or dropped."""
        return self.next_index >= self.horizon

    def due_ns(self, i: int) -> int:
        """Due time of action ``i`` (``i`` = T is the chunk's end)."""
        return self.start_ns + i * self.dt_ns

    def take(self, now_ns: int, stale_ns: int, early_ns: int) -> Optional[int]:
        """Drop the actions more than ``stale_ns`` late; return the index due now, or None."""
        while not self.finished and now_ns > self.due_ns(self.next_index) + stale_ns:
            self.dropped += 1
            self.next_index += 1
        if self.finished or now_ns < self.due_ns(self.next_index) - early_ns:
            return None
        return self.next_index

    def record(self, command: np.ndarray) -> None:
        """Record that the due action was sent as ``command`` (after clamping)."""
        self.rows.append(np.asarray(command, dtype=np.float64))
        self.sent += 1
        self.next_index += 1


@dataclasses.dataclass
class StepRewardRecord:
    """One reward message: the step's reward and whether it ended the episode."""

    reward: float
    terminated: bool
    truncated: bool
    episode_id: int


class RewardBook:
    """Per-step rewards keyed by stamp (ns); summed over a chunk window ``(start, end]``."""

    def __init__(self) -> None:
        """Create an empty book."""
        self.rewards: dict[int, StepRewardRecord] = {}

    def add(self, stamp_ns: int, rec: StepRewardRecord) -> None:
        """Store the reward stamped ``stamp_ns`` (a repeated stamp replaces the old one)."""
        self.rewards[int(stamp_ns)] = rec

    def has(self, stamp_ns: int) -> bool:
        """Return True when the reward stamped ``stamp_ns`` has arrived."""
        return int(stamp_ns) in self.rewards

    def window(self, start_ns: int, end_ns: int, episode_id: int) -> list[StepRewardRecord]:
        """Return the rewards of ``episode_id`` stamped in ``(start_ns, end_ns]``, in order."""
        return [self.rewards[s] for s in sorted(self.rewards)
                if start_ns < s <= end_ns and self.rewards[s].episode_id == episode_id]

    def ended_at(self, start_ns: int, episode_id: int) -> Optional[int]:
        """Return the stamp after ``start_ns`` of a reward that ended the episode, or None."""
        for s in sorted(self.rewards):
            r = self.rewards[s]
            if s > start_ns and r.episode_id == episode_id and (r.terminated or r.truncated):
                return s
        return None

    def prune(self, before_ns: int) -> None:
        """Forget rewards stamped at or before ``before_ns``."""
        for s in [s for s in self.rewards if s <= before_ns]:
            del self.rewards[s]


class TimingStats:
    """
    Rolling windows of durations in milliseconds, one per named series.

    ``add(name, ms)`` records a value; ``percentiles(name)`` returns (count, p50, p99) of the last
    ``window`` values; ``line(period_ms)`` formats every series for the node's timing log.
    """

    SERIES = ('cycle', 'obs_to_command', 'weights_verified', 'weights_applied')

    def __init__(self, window: int = 2000) -> None:
        if window < 1:
            raise ValueError(f'window must be >= 1, got {window}')
        self.values = {name: collections.deque(maxlen=window) for name in self.SERIES}

    def add(self, name: str, ms: float) -> None:
        """Record one duration (ms) of series ``name``; non-finite values are ignored."""
        if math.isfinite(ms):
            self.values[name].append(float(ms))

    def percentiles(self, name: str) -> tuple[int, float, float]:
        """Return (count, p50, p99) of series ``name`` (NaN percentiles when empty)."""
        v = self.values[name]
        if not v:
            return 0, math.nan, math.nan
        p50, p99 = np.percentile(np.fromiter(v, dtype=np.float64), (50, 99))
        return len(v), float(p50), float(p99)

    def line(self, period_ms: float) -> str:
        """Format the timing log line (``timing: cycle n=.. p50=.. p99=.. ms ...``)."""
        n, p50, p99 = self.percentiles('cycle')
        parts = [f'cycle n={n} p50={p50:.2f} p99={p99:.2f} ms '
                 f'(p99/period {p99 / period_ms:.3f})']
        n, p50, p99 = self.percentiles('obs_to_command')
        parts.append(f'obs->command n={n} p50={p50:.2f} p99={p99:.2f} ms')
        n, p50, p99 = self.percentiles('weights_verified')
        parts.append(f'weights publish->verified n={n} p50={p50:.1f} p99={p99:.1f} ms')
        n, p50, p99 = self.percentiles('weights_applied')
        parts.append(f'weights publish->applied n={n} p50={p50:.1f} p99={p99:.1f} ms')
        return 'timing: ' + ', '.join(parts)
