"""
The HMAC key that signs actor weights: read it from a file or the environment, or make one.

Where the key comes from, first match wins:

1. ``key_file`` (a node parameter), else the file named by ``DSRL_WEIGHTS_KEY_FILE``;
2. the key text itself in ``DSRL_WEIGHTS_KEY``;
3. in sim mode only: a fresh random key, written (mode 0600) to the named file when there is one,
   else to ``sim_default_path``, so the policy node can read the same file.

Outside sim mode a missing key is an error: weights must never be signed with a guessable key. A
key file holds text (e.g. ``openssl rand -hex 32``); surrounding whitespace is ignored and the
remaining bytes are the key (at least ``MIN_KEY_BYTES``).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Mapping

ENV_KEY_FILE = 'DSRL_WEIGHTS_KEY_FILE'
ENV_KEY = 'DSRL_WEIGHTS_KEY'
MIN_KEY_BYTES = 16


class WeightsKeyError(ValueError):
    """No usable weights key: missing, unreadable or too short."""


def _check(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise WeightsKeyError(f'weights key from {where} is {len(key)} bytes; at least '
                              f'{MIN_KEY_BYTES} are needed (e.g. openssl rand -hex 32)')
    return key


def read_key_file(path: str) -> bytes:
    """Return the key stored in ``path`` (stripped text as bytes); raise WeightsKeyError."""
    try:
        with open(path, 'rb') as fh:
            key = fh.read().strip()
    except OSError as exc:
        raise WeightsKeyError(f'cannot read weights key file {path!r}: {exc.strerror}') from exc
    return _check(key, f'file {path!r}')


def write_new_key_file(path: str) -> bytes:
    """Write a fresh random 32-byte hex key to ``path`` (mode 0600, atomically); return it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    key = secrets.token_hex(32).encode('ascii')
    fd, tmp = tempfile.mkstemp(prefix='.key-', dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, 'wb') as fh:
            fh.write(key + b'\n')
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return key


def resolve_key(key_file: str, sim: bool, sim_default_path: str,
                environ: Mapping[str, str] | None = None) -> tuple[bytes, str]:
    """
    Return ``(key, where it came from)`` following the order in the module docstring.

    Raises WeightsKeyError when no key is configured outside sim mode, or a configured key is
    unreadable or too short.
    """
    env = os.environ if environ is None else environ
    path = key_file or env.get(ENV_KEY_FILE, '')
    if path:
        if os.path.exists(path) or not sim:
            return read_key_file(path), f'file {path}'
        return write_new_key_file(path), f'generated for this sim run into {path}'
    text = env.get(ENV_KEY, '').strip()
    if text:
        return _check(text.encode('utf-8'), f'${ENV_KEY}'), f'${ENV_KEY}'
    if not sim:
        raise WeightsKeyError(
            'no weights key: set the key_file parameter or DSRL_WEIGHTS_KEY_FILE to a file made '
            'with `openssl rand -hex 32` (only sim mode may generate a key by itself)')
    return (write_new_key_file(sim_default_path),
            f'generated for this sim run into {sim_default_path}')
