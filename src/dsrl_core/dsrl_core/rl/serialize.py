"""
Actor weights <-> authenticated safetensors bytes (never pickle).

The learner packs the noise actor's weights into a safetensors payload, its SHA-256 and an
HMAC-SHA256 tag over ``version (8 bytes, big-endian) || payload`` with a key shared by learner and
policy node. The policy node unpacks only payloads whose hash and tag verify, that parse as
safetensors and, if asked, whose tensor names and shapes equal the ones it expects; anything else
raises :class:`WeightsRejected` and the old weights stay in use.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Mapping

import safetensors.torch
import torch

MAX_VERSION = 2 ** 64 - 1


class WeightsRejected(Exception):
    """A weights message failed verification; ``reason`` says which check."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) == 0:
        raise ValueError('the HMAC key must be non-empty bytes')
    return bytes(key)


def _check_version(version: int) -> int:
    if not isinstance(version, int) or not 0 <= version <= MAX_VERSION:
        raise ValueError(f'version must be an integer in [0, 2**64), got {version!r}')
    return version


def _same_hex(expected: str, given: object) -> bool:
    """Constant-time comparison of hex digests; anything that is not a hex string is unequal."""
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(expected.encode('ascii'), given.lower().encode('utf-8'))


def payload_sha256(payload: bytes) -> str:
    """Return the SHA-256 hex digest of ``payload``."""
    return hashlib.sha256(payload).hexdigest()


def hmac_tag(payload: bytes, version: int, key: bytes) -> str:
    """Return the HMAC-SHA256 hex tag of ``version.to_bytes(8, 'big') || payload``."""
    message = _check_version(version).to_bytes(8, 'big') + bytes(payload)
    return hmac.new(_check_key(key), message, hashlib.sha256).hexdigest()


def actor_shapes(state_dict: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Return the ``{name: shape}`` map that :func:`unpack_actor` can check against."""
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def pack_actor(state_dict: Mapping[str, torch.Tensor], version: int,
               key: bytes) -> tuple[bytes, str, str]:
    """Serialise actor weights; return ``(payload, sha256_hex, tag_hex)``."""
    tensors = {k: v.detach().to('cpu').contiguous() for k, v in state_dict.items()}
    payload = safetensors.torch.save(tensors)
    return payload, payload_sha256(payload), hmac_tag(payload, version, key)


def unpack_actor(payload: bytes, sha256_hex: str, tag_hex: str, version: int, key: bytes,
                 expected_shapes: Mapping[str, tuple[int, ...]] | None = None
                 ) -> dict[str, torch.Tensor]:
    """
    Verify and deserialise a payload made by :func:`pack_actor`.

    Raises :class:`WeightsRejected` on a wrong hash, a wrong tag (wrong key, version or payload),
    a payload that is not valid safetensors, non-finite weights, or names/shapes that differ from
    ``expected_shapes``.
    """
    payload = bytes(payload)
    if not _same_hex(payload_sha256(payload), sha256_hex):
        raise WeightsRejected('bad hash: payload does not match its SHA-256')
    try:
        expected_tag = hmac_tag(payload, version, key)
    except ValueError as exc:
        raise WeightsRejected(f'bad version: {exc}') from exc
    if not _same_hex(expected_tag, tag_hex):
        raise WeightsRejected('bad tag: HMAC does not verify (wrong key, version or payload)')
    try:
        state_dict = safetensors.torch.load(payload)
    except Exception as exc:  # safetensors raises its own SafetensorError (and others)
        raise WeightsRejected(f'bad safetensors: {type(exc).__name__}: {exc}') from exc
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise WeightsRejected(f'non-finite values in {name!r}')
    if expected_shapes is not None:
        shapes = actor_shapes(state_dict)
        expected = {k: tuple(v) for k, v in expected_shapes.items()}
        if shapes != expected:
            missing = sorted(set(expected) - set(shapes))
            extra = sorted(set(shapes) - set(expected))
            wrong = sorted(k for k in set(shapes) & set(expected) if shapes[k] != expected[k])
            raise WeightsRejected(f'shape mismatch: missing {missing}, unexpected {extra}, '
                                  f'wrong shape {[(k, shapes[k], expected[k]) for k in wrong]}')
    return state_dict
