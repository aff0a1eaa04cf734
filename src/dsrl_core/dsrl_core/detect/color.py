"""
Colour-segmentation success detector: HSV thresholds for the object, a goal polygon in pixels.

Per frame: pixels within ``[hsv_low, hsv_high]`` (OpenCV HSV: H in [0, 180), S, V in [0, 256);
a hue range with ``low > high`` wraps around 180, which is what red needs) form the mask; the
largest connected blob of at least ``min_blob_area`` pixels is the object. The score is the
fraction of that blob inside the goal polygon. The per-frame test is either ``centroid`` (the
blob's centroid lies inside the polygon) or ``fraction`` (score >= ``min_inside_fraction``); the
decision needs it for ``k_consecutive`` frames in a row.

The polygon is given for an image of ``region_size`` (width, height) and scaled to the frame, so a
camera streaming at another resolution with the same field of view needs no re-calibration.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from dsrl_core.detect.common import ConsecutiveGate, Detection


@dataclasses.dataclass
class ColorConfig:
    """Settings of the colour detector (see the module docstring)."""

    hsv_low: tuple[int, int, int] = (170, 120, 80)
    hsv_high: tuple[int, int, int] = (10, 255, 255)
    polygon: tuple[float, ...] = ()
    region_size: tuple[int, int] = (96, 96)
    min_blob_area: int = 4
    criterion: str = 'centroid'
    min_inside_fraction: float = 0.5
    k_consecutive: int = 3

    def __post_init__(self) -> None:
        """Check ranges and shapes."""
        lo, hi = np.asarray(self.hsv_low), np.asarray(self.hsv_high)
        if lo.shape != (3,) or hi.shape != (3,):
            raise ValueError('hsv_low and hsv_high need 3 values (H, S, V)')
        if not (0 <= lo[0] < 180 and 0 <= hi[0] < 180):
            raise ValueError(f'hue must be in [0, 180), got {lo[0]}, {hi[0]}')
        if np.any(lo[1:] < 0) or np.any(hi[1:] > 255) or np.any(lo[1:] > hi[1:]):
            raise ValueError(f'S and V need 0 <= low <= high <= 255, got {lo}, {hi}')
        if len(self.polygon) < 6 or len(self.polygon) % 2:
            raise ValueError(f'polygon needs >= 3 (x, y) points as a flat list, got '
                             f'{len(self.polygon)} values')
        if len(self.region_size) != 2 or min(self.region_size) <= 0:
            raise ValueError(f'region_size must be (width, height) > 0, got {self.region_size}')
        if self.criterion not in ('centroid', 'fraction'):
            raise ValueError(f"criterion must be 'centroid' or 'fraction', got {self.criterion!r}")
        if not 0.0 < self.min_inside_fraction <= 1.0:
            raise ValueError('min_inside_fraction must be in (0, 1]')
        if self.min_blob_area < 1 or self.k_consecutive < 1:
            raise ValueError('min_blob_area and k_consecutive must be >= 1')


def hsv_mask(rgb: np.ndarray, low: Sequence[int], high: Sequence[int]) -> np.ndarray:
    """Return a uint8 mask (255 = in range) of an RGB image; hue wraps when low[0] > high[0]."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    lo, hi = np.asarray(low, dtype=np.uint8), np.asarray(high, dtype=np.uint8)
    if lo[0] <= hi[0]:
        return cv2.inRange(hsv, lo, hi)
    a = cv2.inRange(hsv, lo, np.array([179, hi[1], hi[2]], dtype=np.uint8))
    b = cv2.inRange(hsv, np.array([0, lo[1], lo[2]], dtype=np.uint8), hi)
    return cv2.bitwise_or(a, b)


class ColorDetector:
    """HSV object blob vs goal polygon, with the k-consecutive gate."""

    method = 'color'

    def __init__(self, cfg: ColorConfig) -> None:
        """Create from a ``ColorConfig``."""
        self.cfg = cfg
        self.gate = ConsecutiveGate(cfg.k_consecutive)
        self._base_poly = np.asarray(cfg.polygon, dtype=np.float64).reshape(-1, 2)
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def polygon_for(self, width: int, height: int) -> np.ndarray:
        """Return the goal polygon [N, 2] (float pixels) scaled to a width x height frame."""
        rw, rh = self.cfg.region_size
        scale = np.array([width / rw, height / rh])
        # Pixel centres sit at integer coordinates: scale about the image corner (-0.5, -0.5).
        return (self._base_poly + 0.5) * scale - 0.5

    def _region(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        key = (width, height)
        if key not in self._cache:
            poly = self.polygon_for(width, height)
            region = np.zeros((height, width), dtype=np.uint8)
            # Sub-pixel polygon fill (4 fractional bits) so small regions keep their shape.
            pts = np.round((poly + 0.0) * 16).astype(np.int32)
            cv2.fillPoly(region, [pts], 255, lineType=cv2.LINE_8, shift=4)
            self._cache[key] = (poly.astype(np.float32), region)
        return self._cache[key]

    def score_frame(self, rgb: np.ndarray) -> tuple[float, bool, bool, tuple | None, np.ndarray]:
        """Return (score, frame_success, object_visible, centroid, mask) for one RGB frame."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f'expected an RGB uint8 image [H, W, 3], got {rgb.shape} {rgb.dtype}')
        h, w = rgb.shape[:2]
        poly, region = self._region(w, h)
        mask = hsv_mask(rgb, self.cfg.hsv_low, self.cfg.hsv_high)
        n, labels, stats, cents = cv2.connectedComponentsWithStats(mask, connectivity=8)
        if n <= 1:
            return 0.0, False, False, None, mask
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[best, cv2.CC_STAT_AREA])
        if area < self.cfg.min_blob_area:
            return 0.0, False, False, None, mask
        blob = labels == best
        inside = int(np.count_nonzero(region[blob]))
        score = inside / area
        cx, cy = (float(cents[best][0]), float(cents[best][1]))
        if self.cfg.criterion == 'centroid':
            ok = cv2.pointPolygonTest(poly, (cx, cy), False) >= 0
        else:
            ok = score >= self.cfg.min_inside_fraction
        blob_mask = np.where(blob, 255, 0).astype(np.uint8)
        return float(score), bool(ok), True, (cx, cy), blob_mask

    def update(self, rgb: np.ndarray) -> Detection:
        """Score one frame and update the k-consecutive gate."""
        score, ok, visible, centroid, mask = self.score_frame(rgb)
        decision = self.gate.update(ok)
        return Detection(score, ok, decision, self.method, visible, self.gate.count, centroid,
                         mask)

    def reset(self) -> None:
        """Clear the consecutive-frame count (call at episode start)."""
        self.gate.reset()


def annotate(rgb: np.ndarray, det: Detection, polygon: np.ndarray) -> np.ndarray:
    """Return a debug image (RGB): mask tinted, goal polygon, centroid, score and decision."""
    out = rgb.copy()
    if det.mask is not None and det.mask.shape == rgb.shape[:2]:
        sel = det.mask > 0
        out[sel] = (0.4 * out[sel] + 0.6 * np.array([255, 255, 0])).astype(np.uint8)
    colour = (0, 255, 0) if det.decision else ((255, 160, 0) if det.frame_success else
                                               (255, 0, 255))
    pts = np.round(np.asarray(polygon) * 16).astype(np.int32)
    cv2.polylines(out, [pts], True, colour, 1, lineType=cv2.LINE_AA, shift=4)
    if det.centroid is not None:
        c = (int(round(det.centroid[0] * 16)), int(round(det.centroid[1] * 16)))
        cv2.circle(out, c, 2 * 16, (0, 0, 255), 1, lineType=cv2.LINE_AA, shift=4)
    scale = max(0.25, rgb.shape[0] / 400.0)
    text = f'{det.method} {det.score:.2f} k={det.consecutive}{" OK" if det.decision else ""}'
    cv2.putText(out, text, (2, max(8, int(14 * scale * 2))), cv2.FONT_HERSHEY_SIMPLEX,
                scale, colour, 1, cv2.LINE_AA)
    return out
