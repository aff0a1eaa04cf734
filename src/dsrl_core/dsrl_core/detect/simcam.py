"""
The simulated push task as a camera: goal polygon projection and labelled frames with ground truth.

``goal_polygon`` projects the goal disc (at the height of the puck's top face, where the blob's
centroid is seen) through the MuJoCo overhead camera into pixel coordinates (pixel centres at
integer coordinates, as OpenCV draws). ``labelled_frames`` renders frames with the puck placed
inside, near the edge of, and outside the goal, each with ``info['success']`` as ground truth.
"""

from __future__ import annotations

from typing import Iterator

import mujoco
import numpy as np

from dsrl_core.sim.push_env import GOAL_RADIUS, GOAL_XY, PUCK_RADIUS, PushEnv

PUCK_TOP_Z = 2 * 0.015


def project(model: mujoco.MjModel, data: mujoco.MjData, camera: str, points: np.ndarray,
            width: int, height: int) -> np.ndarray:
    """Project world points [N, 3] into pixels [N, 2] (u right, v down) of a MuJoCo camera."""
    cam = model.camera(camera).id
    pos, rot = data.cam_xpos[cam], data.cam_xmat[cam].reshape(3, 3)
    pc = (np.asarray(points, dtype=np.float64) - pos) @ rot  # camera frame: x right, y up, -z fwd
    f = 0.5 * height / np.tan(np.deg2rad(model.cam_fovy[cam]) / 2)
    u = (width - 1) / 2.0 + f * pc[:, 0] / -pc[:, 2]
    v = (height - 1) / 2.0 - f * pc[:, 1] / -pc[:, 2]
    return np.stack([u, v], axis=1)


def goal_polygon(width: int = 96, height: int = 96, n: int = 24) -> list[float]:
    """Return the sim goal disc as a flat [x0, y0, ...] pixel polygon of ``n`` vertices."""
    env = PushEnv(render_size=(height, width))
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = np.stack([GOAL_XY[0] + GOAL_RADIUS * np.cos(a), GOAL_XY[1] + GOAL_RADIUS * np.sin(a),
                    np.full(n, PUCK_TOP_Z)], axis=1)
    uv = project(env.model, env.data, env.camera, pts, width, height)
    return [round(float(x), 2) for x in uv.reshape(-1)]


def labelled_frames(n: int, size: int = 96, seed: int = 0,
                    edge_band: float = 0.015) -> Iterator[tuple[np.ndarray, bool, float]]:
    """
    Yield ``n`` (rgb, success, goal_dist) frames with ground truth.

    A third lie clearly inside the goal, a third within ``edge_band`` m of its edge, a third
    outside (up to 0.2 m away); the arm is at its (slightly randomised) home pose.
    """
    rng = np.random.default_rng(seed)
    env = PushEnv(render_size=(size, size))
    try:
        for i in range(n):
            kind = i % 3
            if kind == 0:
                d = rng.uniform(0.0, GOAL_RADIUS - edge_band)
            elif kind == 1:
                d = rng.uniform(GOAL_RADIUS - edge_band, GOAL_RADIUS + edge_band)
            else:
                d = rng.uniform(GOAL_RADIUS + edge_band, GOAL_RADIUS + 2 * PUCK_RADIUS + 0.1)
            ang = rng.uniform(0, 2 * np.pi)
            xy = GOAL_XY + d * np.array([np.cos(ang), np.sin(ang)])
            _, info = env.reset(seed=int(rng.integers(1 << 30)), options={'object_xy': xy})
            yield env.render().copy(), bool(info['success']), float(info['goal_dist'])
    finally:
        env.close()
