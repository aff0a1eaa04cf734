"""sensor_msgs/Image fields <-> numpy without cv_bridge."""

import types

from dsrl_core.images import fill_image_msg, image_to_rgb, ImageError, msg_to_rgb, numpy_to_image
import numpy as np
import pytest


@pytest.fixture
def rgb():
    return np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8'])
def test_round_trip_colour(rgb, encoding):
    arr = rgb
    if encoding.startswith('bgr'):
        arr = rgb[:, :, ::-1]
    if encoding.endswith('a8'):
        arr = np.concatenate([arr, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    f = numpy_to_image(arr, encoding)
    assert (f.height, f.width, f.step) == (5, 7, 7 * arr.shape[2])
    np.testing.assert_array_equal(image_to_rgb(f.encoding, f.height, f.width, f.step, f.data), rgb)


def test_mono_and_padded_rows(rgb):
    gray = rgb[:, :, 0]
    f = numpy_to_image(gray, 'mono8')
    out = image_to_rgb('mono8', 5, 7, 7, f.data)
    np.testing.assert_array_equal(out, np.repeat(gray[:, :, None], 3, axis=2))
    padded = np.zeros((5, 32), np.uint8)
    padded[:, :21] = rgb.reshape(5, 21)
    np.testing.assert_array_equal(image_to_rgb('rgb8', 5, 7, 32, padded.tobytes()), rgb)


def test_message_like_object(rgb):
    msg = fill_image_msg(types.SimpleNamespace(), rgb, 'bgr8')
    assert msg.encoding == 'bgr8'
    np.testing.assert_array_equal(msg_to_rgb(msg)[:, :, ::-1], rgb)
    msg.data = list(msg.data)  # rclpy may hand over an array/list of ints
    np.testing.assert_array_equal(msg_to_rgb(msg)[:, :, ::-1], rgb)


@pytest.mark.parametrize('args, match', [
    (('yuv422', 5, 7, 14, bytes(70)), 'unsupported encoding'),
    (('rgb8', 5, 7, 20, bytes(100)), 'step 20 < width 7'),
    (('rgb8', 5, 7, 21, bytes(104)), 'data has 104 bytes, expected'),
    (('mono8', 0, 7, 7, b''), 'empty image'),
])
def test_bad_messages(args, match):
    with pytest.raises(ImageError, match=match):
        image_to_rgb(*args)


def test_bad_arrays(rgb):
    with pytest.raises(ImageError, match='dtype must be uint8'):
        numpy_to_image(rgb.astype(np.float32))
    with pytest.raises(ImageError, match='does not fit'):
        numpy_to_image(rgb, 'mono8')
