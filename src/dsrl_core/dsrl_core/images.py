"""
sensor_msgs/Image <-> numpy, as pure functions on the message's fields (no cv_bridge here).

Supported encodings: ``rgb8``, ``bgr8`` (3 channels), ``rgba8``, ``bgra8`` (4 channels, alpha
dropped on read) and ``mono8``. Rows may be padded (``step`` > width * channels). Every size
mismatch raises ``ImageError`` (a ValueError) with the numbers involved, so a node can count and
log bad frames instead of crashing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1}


class ImageError(ValueError):
    """An image message cannot be converted (unknown encoding, inconsistent sizes)."""


class ImageFields(NamedTuple):
    """The fields of a sensor_msgs/Image (without header) that ``numpy_to_image`` fills."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int
    data: bytes


def image_to_rgb(encoding: str, height: int, width: int, step: int, data: Any) -> np.ndarray:
    """Return an RGB uint8 array [height, width, 3] (a copy) from sensor_msgs/Image fields."""
    if encoding not in CHANNELS:
        raise ImageError(f'unsupported encoding {encoding!r}; supported: {sorted(CHANNELS)}')
    if height <= 0 or width <= 0:
        raise ImageError(f'empty image: height={height}, width={width}')
    ch = CHANNELS[encoding]
    if step < width * ch:
        raise ImageError(f'step {step} < width {width} x {ch} channels ({encoding})')
    buf = np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview))
                        else data, dtype=np.uint8)
    if buf.size != step * height:
        raise ImageError(f'data has {buf.size} bytes, expected step x height = '
                         f'{step} x {height} = {step * height}')
    rows = buf.reshape(height, step)[:, :width * ch].reshape(height, width, ch)
    if encoding == 'mono8':
        return np.repeat(rows, 3, axis=2)
    if encoding in ('bgr8', 'bgra8'):
        return np.ascontiguousarray(rows[:, :, 2::-1])
    return np.ascontiguousarray(rows[:, :, :3])


def msg_to_rgb(msg: Any) -> np.ndarray:
    """Return an RGB array from any object with sensor_msgs/Image fields."""
    return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def numpy_to_image(array: np.ndarray, encoding: str = 'rgb8') -> ImageFields:
    """
    Return sensor_msgs/Image fields for a uint8 ``array``.

    Shapes: [H, W, 3] for rgb8/bgr8 (channels given in that order), [H, W, 4] for rgba8/bgra8,
    [H, W] or [H, W, 1] for mono8.
    """
    if encoding not in CHANNELS:
        raise ImageError(f'unsupported encoding {encoding!r}; supported: {sorted(CHANNELS)}')
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise ImageError(f'array dtype must be uint8, got {a.dtype}')
    ch = CHANNELS[encoding]
    if ch == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    expected_ndim = 2 if ch == 1 else 3
    if a.ndim != expected_ndim or (ch > 1 and a.shape[2] != ch):
        raise ImageError(f'array of shape {a.shape} does not fit encoding {encoding!r} '
                         f'({ch} channel(s))')
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f'empty image of shape {a.shape}')
    a = np.ascontiguousarray(a)
    h, w = a.shape[:2]
    return ImageFields(encoding, h, w, w * ch, 0, a.tobytes())


def fill_image_msg(msg: Any, array: np.ndarray, encoding: str = 'rgb8') -> Any:
    """Fill the fields of a sensor_msgs/Image ``msg`` from ``array``; return ``msg``."""
    f = numpy_to_image(array, encoding)
    msg.encoding, msg.height, msg.width = f.encoding, f.height, f.width
    msg.step, msg.is_bigendian, msg.data = f.step, f.is_bigendian, f.data
    return msg
