"""Pieces shared by the detectors: the k-consecutive-frames gate and the Detection record."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass
class Detection:
    """One frame's result (fields mirror dsrl_msgs/SuccessDetection)."""

    score: float
    frame_success: bool
    decision: bool
    method: str
    object_visible: bool
    consecutive: int
    centroid: Optional[tuple[float, float]] = None
    mask: Optional[np.ndarray] = None


class ConsecutiveGate:
    """Decision = the per-frame test held for ``k`` consecutive frames (reset on any miss)."""

    def __init__(self, k: int) -> None:
        """Create a gate that needs ``k`` >= 1 consecutive positive frames."""
        if k < 1:
            raise ValueError(f'k_consecutive must be >= 1, got {k}')
        self.k = int(k)
        self.count = 0

    def update(self, frame_success: bool) -> bool:
        """Feed one frame's test; return the gated decision."""
        self.count = self.count + 1 if frame_success else 0
        return self.count >= self.k

    def reset(self) -> None:
        """Forget the run of positive frames (new episode)."""
        self.count = 0
