"""
Thread-safe circular replay buffer of latent transitions, saved as plain .npz (no pickle).

Every transition stores both the noise ``w`` that the actor chose (DSRL-SAC learns from it) and the
chunk that was actually executed (DSRL-NA learns from it), plus the reward summed over the chunk,
``terminated`` (stops bootstrapping), ``truncated`` (time limit; does not), the version of the
actor that produced it and the index of the robot it came from. Transitions that no actor produced
(offline demonstrations, teleoperation) may leave the noise at zero; only NA can learn from them.

One writer thread (ROS callbacks) and any number of sampling threads may use a buffer at once.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any, Sequence

import numpy as np
import torch

# Bumped whenever the layout of the saved file changes.
FILE_FORMAT_VERSION = 1

_FLOAT_FIELDS = ('obs', 'next_obs', 'noise', 'action', 'reward')
_BOOL_FIELDS = ('terminated', 'truncated')
_INT_FIELDS = ('actor_version', 'robot_id')
FIELDS = _FLOAT_FIELDS + _BOOL_FIELDS + _INT_FIELDS


class ReplayBuffer:
    """Circular buffer of ``capacity`` transitions; the oldest are overwritten first."""

    def __init__(self, obs_dim: int, noise_shape: Sequence[int], action_shape: Sequence[int],
                 capacity: int) -> None:
        if obs_dim < 1 or capacity < 1:
            raise ValueError(f'obs_dim and capacity must be positive: {obs_dim}, {capacity}')
        self.obs_dim = int(obs_dim)
        self.noise_shape = tuple(int(d) for d in noise_shape)
        self.action_shape = tuple(int(d) for d in action_shape)
        self.capacity = int(capacity)
        self._shapes = {
            'obs': (self.obs_dim,), 'next_obs': (self.obs_dim,), 'noise': self.noise_shape,
            'action': self.action_shape, 'reward': (), 'terminated': (), 'truncated': (),
            'actor_version': (), 'robot_id': (),
        }
        self._dtypes: dict[str, type] = dict.fromkeys(_FLOAT_FIELDS, np.float32)
        self._dtypes.update(dict.fromkeys(_BOOL_FIELDS, np.bool_))
        self._dtypes.update(dict.fromkeys(_INT_FIELDS, np.int64))
        self._data = {k: np.zeros((self.capacity,) + self._shapes[k], self._dtypes[k])
                      for k in FIELDS}
        self._lock = threading.Lock()
        self._ptr = 0  # next row to write
        self._size = 0
        self.total_added = 0  # transitions ever added (including overwritten ones)

    def __len__(self) -> int:
        """Return the number of transitions currently stored."""
        with self._lock:
            return self._size

    def add(self, obs: Any, noise: Any, action: Any, reward: float, next_obs: Any,
            terminated: bool, truncated: bool = False, actor_version: int = 0,
            robot_id: int = 0) -> None:
        """Append one transition (``noise=None`` stores zeros, e.g. for a demonstration)."""
        if noise is None:
            noise = np.zeros(self.noise_shape, np.float32)
        self.add_batch(np.asarray(obs)[None], np.asarray(noise)[None], np.asarray(action)[None],
                       np.asarray([reward]), np.asarray(next_obs)[None], np.asarray([terminated]),
                       np.asarray([truncated]), np.asarray([actor_version]),
                       np.asarray([robot_id]))

    def add_batch(self, obs: Any, noise: Any, action: Any, reward: Any, next_obs: Any,
                  terminated: Any, truncated: Any = None, actor_version: Any = None,
                  robot_id: Any = None) -> None:
        """
        Append ``N`` transitions given as arrays with a leading dimension ``N``.

        ``noise=None`` stores zeros; ``truncated``, ``actor_version`` and ``robot_id`` default to
        False / 0. If ``N`` exceeds the capacity only the last ``capacity`` rows are kept.
        """
        n = int(np.shape(obs)[0])
        values = {'obs': obs, 'noise': noise, 'action': action, 'reward': reward,
                  'next_obs': next_obs, 'terminated': terminated, 'truncated': truncated,
                  'actor_version': actor_version, 'robot_id': robot_id}
        rows = {}
        for key in FIELDS:
            shape = (n,) + self._shapes[key]
            if values[key] is None:
                rows[key] = np.zeros(shape, self._dtypes[key])
                continue
            arr = np.asarray(values[key])
            if arr.shape != shape:
                raise ValueError(f'{key} must have shape {shape}, got {arr.shape}')
            rows[key] = arr.astype(self._dtypes[key], copy=False)
        if n > self.capacity:
            rows = {k: v[-self.capacity:] for k, v in rows.items()}
        with self._lock:
            self._write(rows, n)

    def _write(self, rows: dict[str, np.ndarray], n_added: int) -> None:
        m = len(rows['obs'])
        first = min(m, self.capacity - self._ptr)
        for key, arr in rows.items():
            self._data[key][self._ptr:self._ptr + first] = arr[:first]
            self._data[key][:m - first] = arr[first:]
        self._ptr = (self._ptr + m) % self.capacity
        self._size = min(self._size + m, self.capacity)
        self.total_added += n_added

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """
        Draw ``batch_size`` transitions uniformly with replacement, as torch tensors.

        Floats and ``terminated``/``truncated`` come back as float32, versions and robot ids as
        int64.
        """
        with self._lock:
            if self._size == 0:
                raise ValueError('cannot sample from an empty replay buffer')
            idx = rng.integers(0, self._size, size=batch_size)
            rows = {k: v[idx] for k, v in self._data.items()}
        out = {k: torch.from_numpy(v) for k, v in rows.items()}
        for key in _BOOL_FIELDS:
            out[key] = out[key].float()
        return out

    def _chronological(self) -> dict[str, np.ndarray]:
        """Copy of the stored rows, oldest first (call with the lock held)."""
        if self._size < self.capacity:
            return {k: v[:self._size].copy() for k, v in self._data.items()}
        order = np.r_[self._ptr:self.capacity, 0:self._ptr]
        return {k: v[order] for k, v in self._data.items()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the stored transitions (oldest first) to ``path`` atomically (.npz, no pickle)."""
        path = os.fspath(path)
        with self._lock:
            arrays = self._chronological()
            total = self.total_added
        arrays['format_version'] = np.asarray(FILE_FORMAT_VERSION, np.int64)
        arrays['total_added'] = np.asarray(total, np.int64)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix='.replay-', suffix='.npz.tmp', dir=directory)
        try:
            with os.fdopen(fd, 'wb') as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load(self, path: str | os.PathLike) -> None:
        """
        Replace the contents with a file written by :meth:`save`.

        Raises ValueError if the file is unreadable, corrupted or holds transitions of another
        shape. If it holds more than ``capacity`` transitions, the newest are kept.
        """
        arrays = self._read(os.fspath(path))
        n = len(arrays['obs'])
        rows = {k: arrays[k] for k in FIELDS}
        if n > self.capacity:
            rows = {k: v[-self.capacity:] for k, v in rows.items()}
        with self._lock:
            self._ptr = 0
            self._size = 0
            self._write(rows, 0)
            self.total_added = max(int(arrays['total_added']), self._size)

    def extend_from_file(self, path: str | os.PathLike) -> int:
        """
        Append the transitions of a file written by :meth:`save` (oldest first); return how many.

        Raises ValueError like :meth:`load`; the buffer is unchanged then.
        """
        arrays = self._read(os.fspath(path))
        n = len(arrays['obs'])
        if n:
            self.add_batch(*(arrays[k] for k in ('obs', 'noise', 'action', 'reward', 'next_obs',
                                                  'terminated', 'truncated', 'actor_version',
                                                  'robot_id')))
        return n

    def _read(self, path: str) -> dict[str, np.ndarray]:
        expected = set(FIELDS) | {'format_version', 'total_added'}
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            raise
        except Exception as exc:  # BadZipFile, bad CRC, truncated file, object arrays, OSError
            raise ValueError(f'replay file {path!r} is corrupted or unreadable: '
                             f'{type(exc).__name__}: {exc}') from exc
        if set(arrays) != expected:
            raise ValueError(f'replay file {path!r} has fields {sorted(arrays)}, expected '
                             f'{sorted(expected)}')
        version = arrays['format_version']
        if version.shape != () or int(version) != FILE_FORMAT_VERSION:
            raise ValueError(f'replay file {path!r} has format version {version}, expected '
                             f'{FILE_FORMAT_VERSION}')
        if arrays['total_added'].shape != () or arrays['total_added'].dtype != np.int64:
            raise ValueError(f'replay file {path!r}: total_added must be an int64 scalar')
        n = len(arrays['obs']) if arrays['obs'].ndim > 0 else -1
        for key in FIELDS:
            arr = arrays[key]
            shape = (n,) + self._shapes[key]
            if arr.shape != shape:
                raise ValueError(f'replay file {path!r}: {key} has shape {arr.shape}, this buffer '
                                 f'needs {shape}')
            if arr.dtype != self._dtypes[key]:
                raise ValueError(f'replay file {path!r}: {key} has dtype {arr.dtype}, expected '
                                 f'{np.dtype(self._dtypes[key])}')
            if key in _FLOAT_FIELDS and not np.isfinite(arr).all():
                raise ValueError(f'replay file {path!r}: {key} holds NaN or infinite values')
        return arrays


def sample_mixed(online: ReplayBuffer, offline: ReplayBuffer, offline_ratio: float,
                 batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """
    Draw ``round(offline_ratio * batch_size)`` offline and the rest online transitions.

    An empty side contributes nothing and the other side fills the batch. The rows are shuffled
    together: a learner that takes a few states of a batch from its front (DSRL-NA's
    distillation pool takes the first ``pool_states``) sees online and offline ones alike.
    """
    if not 0.0 <= offline_ratio <= 1.0:
        raise ValueError(f'offline_ratio must be in [0, 1], got {offline_ratio}')
    n_off = int(round(offline_ratio * batch_size))
    if len(online) == 0:
        n_off = batch_size
    elif len(offline) == 0:
        n_off = 0
    parts = []
    if n_off > 0:
        parts.append(offline.sample(n_off, rng))
    if batch_size - n_off > 0:
        parts.append(online.sample(batch_size - n_off, rng))
    if len(parts) == 1:
        return parts[0]
    order = torch.from_numpy(rng.permutation(batch_size))
    return {k: torch.cat([p[k] for p in parts])[order] for k in parts[0]}


class MixedSampler:
    """Samples batches mixing an online and an offline buffer at a fixed ratio (RLPD-style)."""

    def __init__(self, online: ReplayBuffer, offline: ReplayBuffer, offline_ratio: float) -> None:
        if (online.obs_dim, online.noise_shape, online.action_shape) != (
                offline.obs_dim, offline.noise_shape, offline.action_shape):
            raise ValueError('online and offline buffers hold transitions of different shapes')
        if not 0.0 <= offline_ratio <= 1.0:
            raise ValueError(f'offline_ratio must be in [0, 1], got {offline_ratio}')
        self.online, self.offline, self.offline_ratio = online, offline, float(offline_ratio)

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """See :func:`sample_mixed`."""
        return sample_mixed(self.online, self.offline, self.offline_ratio, batch_size, rng)
