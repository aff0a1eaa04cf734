"""
Success detectors for camera images (ROS-free).

* ``color``: calibrated HSV segmentation of the object + a goal polygon in image coordinates.
* ``classifier``: a small CNN trained on images a user labelled success/failure.
* ``camera``: RealSense colour frames (live device or recorded file) and frame-staleness health.
* ``calibrate``: CLI that saves a PNG of the mask and the region on a sample image.
* ``reward_params``: the reward node's parameter schema (``RewardNodeParams``).

Both detectors return a ``Detection``: a per-frame score in [0, 1] and a decision that holds only
after the per-frame test passed for ``k_consecutive`` frames in a row.
"""

from dsrl_core.detect.common import ConsecutiveGate, Detection

__all__ = ['ConsecutiveGate', 'Detection']
