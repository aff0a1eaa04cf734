"""
Camera sources for the detectors: RealSense colour frames and frame-staleness health.

A RealSense colour stream through pyrealsense2 (a live device or a recorded ``.bag``/``.db3``
file), and a frame-staleness health monitor usable with any source.

Without a camera, ``write_recording`` makes a real RealSense recording from numpy frames with the
SDK's software device (software_device -> recorder), which ``RealSenseSource(file=...)`` plays
back through the normal pipeline: the same code path as a recorded session of a real camera.
"""

from __future__ import annotations

import os
import queue
import time
from typing import Iterable, Optional

import numpy as np


class CameraNotFoundError(RuntimeError):
    """No RealSense device is connected, or the recorded file does not exist / cannot be read."""


def _rs():
    try:
        import pyrealsense2 as rs
    except ImportError as exc:  # e.g. libusb-1.0 missing
        raise CameraNotFoundError(f'pyrealsense2 cannot be imported ({exc}); install it and '
                                  'the libusb-1.0-0 system package') from exc
    return rs


class FrameHealth:
    """Healthy while the newest frame is at most ``timeout_s`` old (times given by the caller)."""

    def __init__(self, timeout_s: float) -> None:
        """Create a monitor that has seen no frame yet (unhealthy)."""
        if timeout_s <= 0:
            raise ValueError(f'timeout_s must be positive, got {timeout_s}')
        self.timeout_s = float(timeout_s)
        self.last: Optional[float] = None
        self.frames = 0

    def frame(self, now: float) -> None:
        """Record a frame arriving at ``now``."""
        self.last = now
        self.frames += 1

    def age(self, now: float) -> float:
        """Seconds since the last frame (inf before the first)."""
        return float('inf') if self.last is None else now - self.last

    def healthy(self, now: float) -> bool:
        """Return True when a frame arrived within ``timeout_s``."""
        return self.age(now) <= self.timeout_s


class RealSenseSource:
    """Colour frames (RGB uint8) from a RealSense device or a recorded file."""

    def __init__(self, width: int = 640, height: int = 480, fps: int = 30, file: str = '',
                 serial: str = '') -> None:
        """Configure; ``file`` plays a recording (as fast as it is read) instead of a device."""
        if width <= 0 or height <= 0 or fps <= 0:
            raise ValueError(f'bad stream settings {width}x{height}@{fps}')
        self.width, self.height, self.fps = int(width), int(height), int(fps)
        self.file, self.serial = file, serial
        self._pipeline = None
        self._playback = None
        self._sensor = None
        self._rs_queue = None
        self._frames: queue.Queue = queue.Queue()
        self._stopping = False
        self.frames_read = 0

    def start(self) -> str:
        """Start streaming; return a description. Raises CameraNotFoundError when none is there."""
        rs = _rs()
        if self.file:
            return self._start_file(rs)
        devices = rs.context().query_devices()
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        if not serials:
            raise CameraNotFoundError(
                'no RealSense camera found (pyrealsense2 lists 0 devices): check the USB 3 '
                'cable and udev rules, or set camera_file to a recorded .bag/.db3, or use '
                'image_source:=topic')
        if self.serial and self.serial not in serials:
            raise CameraNotFoundError(f'RealSense {self.serial} not found; connected: {serials}')
        cfg = rs.config()
        if self.serial:
            cfg.enable_device(self.serial)
        cfg.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
        what = f'RealSense {self.serial or serials[0]} {self.width}x{self.height}@{self.fps}'
        pipeline = rs.pipeline()
        self._rs_queue = rs.frame_queue(2)
        try:
            pipeline.start(cfg, self._rs_queue)
        except RuntimeError as exc:
            raise CameraNotFoundError(f'cannot start {what}: {exc}') from exc
        self._pipeline = pipeline
        return what

    def _start_file(self, rs) -> str:
        # A recording is played on the playback device's colour sensor in non-real-time mode,
        # with a blocking Python queue as back-pressure: every frame of the file is delivered
        # (the pipeline's one-frame buffer would keep only the newest one).
        if not os.path.isfile(self.file):
            raise CameraNotFoundError(f'recorded RealSense file not found: {self.file}')
        try:
            playback = rs.context().load_device(self.file).as_playback()
        except RuntimeError as exc:
            raise CameraNotFoundError(f'cannot read RealSense recording {self.file}: {exc}') \
                from exc
        playback.set_real_time(False)
        for sensor in playback.query_sensors():
            profiles = [p for p in sensor.get_stream_profiles()
                        if p.stream_type() == rs.stream.color]
            if profiles:
                break
        else:
            raise CameraNotFoundError(f'{self.file} has no colour stream')
        self._stopping = False
        self._frames = queue.Queue(maxsize=8)

        def on_frame(frame) -> None:
            item = self._convert(frame)
            while item is not None and not self._stopping:
                try:
                    self._frames.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        sensor.open(profiles[0])
        sensor.start(on_frame)
        self._sensor, self._playback = sensor, playback
        vp = profiles[0].as_video_stream_profile()
        return f'recording {self.file} ({vp.width()}x{vp.height()}@{vp.fps()})'

    def _convert(self, frame) -> Optional[tuple[np.ndarray, float]]:
        rs = _rs()
        if frame.is_frameset():
            color = frame.as_frameset().get_color_frame()
        elif frame.is_video_frame():
            color = frame.as_video_frame()
        else:
            return None
        if not color:
            return None
        img = np.asanyarray(color.get_data())
        fmt = color.get_profile().format()
        if fmt == rs.format.bgr8:
            img = img[:, :, ::-1]
        elif fmt != rs.format.rgb8:
            raise CameraNotFoundError(f'unsupported RealSense colour format {fmt}')
        self.frames_read += 1
        return np.array(img, dtype=np.uint8, copy=True), color.get_timestamp() / 1000.0

    def read(self, timeout_s: float = 1.0) -> Optional[tuple[np.ndarray, float]]:
        """Block up to ``timeout_s`` for a frame: (rgb [H, W, 3], camera time s) or None."""
        if self._sensor is not None:
            try:
                return self._frames.get(timeout=timeout_s)
            except queue.Empty:
                return None
        if self._pipeline is None:
            raise RuntimeError('RealSenseSource.read before start()')
        ok, frame = self._rs_queue.try_wait_for_frame(int(timeout_s * 1000))
        return self._convert(frame) if ok else None

    def poll(self) -> Optional[tuple[np.ndarray, float]]:
        """Return a frame if one is waiting, else None (never blocks)."""
        if self._sensor is not None:
            try:
                return self._frames.get_nowait()
            except queue.Empty:
                return None
        if self._pipeline is None:
            raise RuntimeError('RealSenseSource.poll before start()')
        ok, frame = self._rs_queue.try_wait_for_frame(0)
        return self._convert(frame) if ok else None

    @property
    def finished(self) -> bool:
        """Return True when a recording has played to its end and every frame was read."""
        if self._playback is None:
            return False
        # Before the first frame arrives the playback may still report 'stopped' (not started
        # yet); only a playback that has delivered frames can have finished.
        return (self.frames_read > 0
                and self._playback.current_status() == _rs().playback_status.stopped
                and self._frames.empty())

    def stop(self) -> None:
        """Stop streaming (idempotent)."""
        self._stopping = True
        if self._sensor is not None:
            for fn in (self._sensor.stop, self._sensor.close):
                try:
                    fn()
                except RuntimeError:
                    pass
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass
        self._pipeline = self._sensor = self._playback = None


def write_recording(path: str, frames: Iterable[np.ndarray], fps: int = 30) -> int:
    """
    Record RGB frames [H, W, 3] as a RealSense file at ``path`` (pyrealsense2 2.59 writes .db3).

    Uses the SDK's software device and recorder; returns the number of frames written.
    """
    rs = _rs()
    frames = [np.ascontiguousarray(f, dtype=np.uint8) for f in frames]
    if not frames:
        raise ValueError('no frames to record')
    h, w = frames[0].shape[:2]
    dev = rs.software_device()
    sensor = dev.add_sensor('Color')
    intr = rs.intrinsics()
    intr.width, intr.height = w, h
    intr.ppx, intr.ppy, intr.fx, intr.fy = w / 2.0, h / 2.0, float(w), float(w)
    intr.model = rs.distortion.none
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = rs.stream.color, 0, 0
    vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = w, h, fps, 3, rs.format.rgb8
    vs.intrinsics = intr
    profile = sensor.add_video_stream(vs)
    recorder = rs.recorder(path, dev)
    syncer = rs.syncer()
    sensor.open(profile)
    sensor.start(syncer)
    t0 = time.time() * 1000.0
    for i, img in enumerate(frames):
        if img.shape != (h, w, 3):
            raise ValueError(f'frame {i} has shape {img.shape}, expected {(h, w, 3)}')
        f = rs.software_video_frame()
        f.pixels = img
        f.stride, f.bpp = w * 3, 3
        f.timestamp = t0 + i * 1000.0 / fps
        f.domain = rs.timestamp_domain.system_time
        f.frame_number = i
        f.profile = profile.as_video_stream_profile()
        sensor.on_video_frame(f)
    sensor.stop()
    sensor.close()
    del recorder, syncer, sensor, dev  # the file is complete once the recorder is released
    return len(frames)
