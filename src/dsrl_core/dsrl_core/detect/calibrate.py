"""
Calibration CLI of the colour detector: save a PNG of what it sees on a sample image.

::

    python -m dsrl_core.detect.calibrate --sim --out calib.png              # simulated camera
    python -m dsrl_core.detect.calibrate --image frame.png --params config/dsrl.yaml --out c.png
    python -m dsrl_core.detect.calibrate --realsense-file rec.db3 --out c.png

The PNG shows the sample image (left) and the same image with the object mask tinted, the goal
polygon, the blob centroid and the score (right), enlarged ``--scale`` times. The detector
settings come from the ``reward_node`` block of ``--params`` (defaults of ``RewardNodeParams``
otherwise); ``--hsv-low/--hsv-high`` override the thresholds while tuning. It prints the score,
the blob area and centroid so thresholds can be tuned numerically too.
"""

from __future__ import annotations

import argparse
from typing import Optional

import cv2
import numpy as np
import yaml

from dsrl_core.detect.color import annotate, ColorDetector
from dsrl_core.detect.reward_params import RewardNodeParams
from dsrl_core.params import from_param_dict


def load_params(path: Optional[str], node: str = 'reward_node') -> RewardNodeParams:
    """Read the ``node: ros__parameters:`` block of a params YAML (defaults when no path)."""
    if not path:
        return RewardNodeParams()
    with open(path) as fh:
        doc = yaml.safe_load(fh) or {}
    try:
        values = doc[node]['ros__parameters']
    except (KeyError, TypeError) as exc:
        raise ValueError(f'{path}: no {node}: ros__parameters: block') from exc
    return from_param_dict(RewardNodeParams, values)


def calibration_image(rgb: np.ndarray, params: RewardNodeParams, scale: int = 4) -> tuple:
    """Return (side-by-side RGB picture, Detection) for one sample frame."""
    det = ColorDetector(params.color_config())
    d = det.update(rgb)
    h, w = rgb.shape[:2]
    big = cv2.resize(rgb, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    mask = None if d.mask is None else cv2.resize(d.mask, (w * scale, h * scale),
                                                  interpolation=cv2.INTER_NEAREST)
    d_big = type(d)(**{**d.__dict__, 'mask': mask,
                       'centroid': None if d.centroid is None else
                       ((d.centroid[0] + 0.5) * scale - 0.5, (d.centroid[1] + 0.5) * scale - 0.5)})
    poly = (det.polygon_for(w, h) + 0.5) * scale - 0.5
    return np.concatenate([big, annotate(big, d_big, poly)], axis=1), d


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point of the calibration CLI."""
    ap = argparse.ArgumentParser(description='Save a PNG of the colour detector mask and region.')
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument('--image', help='sample image file (PNG/JPEG)')
    src.add_argument('--sim', action='store_true', help='render the simulated camera')
    src.add_argument('--realsense-file', help='first frame of a recorded RealSense file')
    ap.add_argument('--params', help='params YAML with a reward_node block')
    ap.add_argument('--out', default='calibration.png')
    ap.add_argument('--scale', type=int, default=4)
    ap.add_argument('--sim-size', type=int, default=96)
    ap.add_argument('--object-xy', type=float, nargs=2, default=(0.27, 0.01),
                    help='sim puck position (m)')
    ap.add_argument('--hsv-low', type=int, nargs=3)
    ap.add_argument('--hsv-high', type=int, nargs=3)
    args = ap.parse_args(argv)
    params = load_params(args.params)
    overrides = {}
    if args.hsv_low:
        overrides['hsv_low'] = args.hsv_low
    if args.hsv_high:
        overrides['hsv_high'] = args.hsv_high
    if overrides:
        from dsrl_core.params import to_param_dict
        params = from_param_dict(RewardNodeParams, {**to_param_dict(params), **overrides})
    if args.image:
        bgr = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f'cannot read image {args.image}')
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    elif args.sim:
        from dsrl_core.sim.push_env import PushEnv
        with PushEnv(render_size=(args.sim_size, args.sim_size)) as env:
            env.reset(seed=0, options={'object_xy': args.object_xy})
            rgb = env.render().copy()
    else:
        from dsrl_core.detect.camera import RealSenseSource
        cam = RealSenseSource(file=args.realsense_file)
        cam.start()
        try:
            got = cam.read(timeout_s=5.0)
        finally:
            cam.stop()
        if got is None:
            raise SystemExit(f'no frame in {args.realsense_file}')
        rgb = got[0]
    picture, d = calibration_image(rgb, params, args.scale)
    if not cv2.imwrite(args.out, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
        raise SystemExit(f'cannot write {args.out}')
    area = 0 if d.mask is None else int(np.count_nonzero(d.mask))
    print(f'image {rgb.shape[1]}x{rgb.shape[0]}: object visible={d.object_visible} '
          f'area={area} px centroid={d.centroid} score={d.score:.3f} '
          f'frame_success={d.frame_success}; wrote {args.out}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
