"""Simulated push task (MuJoCo): environment, scripted demonstrator, demo files."""

from typing import Any

from dsrl_core.sim.demonstrator import planar_ik, ScriptedPusher
from dsrl_core.sim.push_env import (
    ACTION_NAMES,
    BatchPushEnv,
    CONTROL_HZ,
    forward_kinematics,
    GOAL_RADIUS,
    GOAL_XY,
    JOINT_LIMITS,
    JOINT_NAMES,
    OBS_NAMES,
    PushEnv,
)

__all__ = [
    'ACTION_NAMES', 'BatchPushEnv', 'collect_demos', 'CONTROL_HZ', 'forward_kinematics',
    'GOAL_RADIUS', 'GOAL_XY', 'JOINT_LIMITS', 'JOINT_NAMES', 'load_demos', 'OBS_NAMES',
    'planar_ik', 'PushEnv', 'ScriptedPusher',
]


def __getattr__(name: str) -> Any:
    # demos is imported lazily so that `python -m dsrl_core.sim.demos` runs without a warning.
    if name in ('collect_demos', 'load_demos', 'save_demos'):
        from dsrl_core.sim import demos
        return getattr(demos, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
