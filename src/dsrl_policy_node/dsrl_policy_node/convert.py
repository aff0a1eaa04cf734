"""Pure conversions of the policy node: ROS messages <-> numpy (no node, no spinning)."""

from __future__ import annotations

from typing import Any, Optional

from builtin_interfaces.msg import Time
import numpy as np
from std_msgs.msg import Float64MultiArray

from dsrl_msgs.msg import Transition

NS = 1_000_000_000


def time_to_ns(t: Time) -> int:
    """Return the nanoseconds of a builtin_interfaces/Time."""
    return int(t.sec) * NS + int(t.nanosec)


def ns_to_time(stamp_ns: int) -> Time:
    """Return a builtin_interfaces/Time for ``stamp_ns`` (>= 0) nanoseconds."""
    if stamp_ns < 0:
        raise ValueError(f'stamp must be >= 0 ns, got {stamp_ns}')
    return Time(sec=int(stamp_ns // NS), nanosec=int(stamp_ns % NS))


def joint_state_fields(msg: Any) -> dict[str, tuple[float, float]]:
    """
    Return ``{joint name: (position, velocity)}`` from a sensor_msgs/JointState.

    A missing velocity array reads as NaN velocities; positions must match the names in length.
    """
    names, pos, vel = list(msg.name), list(msg.position), list(msg.velocity)
    if len(pos) != len(names) or (vel and len(vel) != len(names)):
        raise ValueError(f'joint state with {len(names)} names, {len(pos)} positions, '
                         f'{len(vel)} velocities')
    return {n: (float(p), float(vel[i]) if vel else float('nan'))
            for i, (n, p) in enumerate(zip(names, pos))}


def pose_xyz(msg: Any) -> np.ndarray:
    """Return the position (x, y, z) of a geometry_msgs/PoseStamped."""
    p = msg.pose.position
    return np.array([p.x, p.y, p.z], dtype=np.float64)


def command_msg(q: np.ndarray) -> Float64MultiArray:
    """Return the forward-position-controller command for joint positions ``q`` (radians)."""
    return Float64MultiArray(data=[float(v) for v in np.asarray(q).reshape(-1)])


def transition_msg(*, stamp_ns: int, robot_id: str, episode_id: int, step_index: int,
                   obs: np.ndarray, next_obs: np.ndarray, noise: np.ndarray,
                   action: np.ndarray, reward: float, terminated: bool, truncated: bool,
                   actor_version: int, executed_steps: int,
                   out: Optional[Transition] = None) -> Transition:
    """Return a dsrl_msgs/Transition; noise and action are [T, act_dim] (flattened row-major)."""
    noise, action = np.asarray(noise, np.float32), np.asarray(action, np.float32)
    if noise.ndim != 2 or noise.shape != action.shape:
        raise ValueError(f'noise {noise.shape} and action {action.shape} must both be [T, A]')
    obs, next_obs = np.asarray(obs, np.float32), np.asarray(next_obs, np.float32)
    if obs.shape != next_obs.shape or obs.ndim != 1:
        raise ValueError(f'obs {obs.shape} and next_obs {next_obs.shape} must be equal 1-D')
    m = out if out is not None else Transition()
    m.header.stamp = ns_to_time(stamp_ns)
    m.robot_id, m.episode_id, m.step_index = robot_id, int(episode_id), int(step_index)
    m.obs, m.next_obs = obs.tolist(), next_obs.tolist()
    m.noise, m.action = noise.reshape(-1).tolist(), action.reshape(-1).tolist()
    m.reward, m.terminated, m.truncated = float(reward), bool(terminated), bool(truncated)
    m.actor_version = int(actor_version)
    m.obs_dim, m.chunk_length, m.action_dim = obs.size, noise.shape[0], noise.shape[1]
    m.executed_steps = int(executed_steps)
    return m
