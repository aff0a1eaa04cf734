"""Teleop key logic: jogs only during RESETTING, within limits and max step; e-stop latches."""

from dsrl_core.episode import Phase
from dsrl_core.teleop import clamp_target, interpolate_path, TeleopCore
import numpy as np
import pytest

LIMITS = np.array([[-1.6, 1.6], [-2.4, 2.4], [-2.4, 2.4]])


@pytest.mark.parametrize('phase', [None, Phase.READY, Phase.RUNNING, Phase.SUCCESS,
                                   Phase.TIMEOUT, Phase.ABORTED])
def test_jog_refused_outside_resetting(phase):
    core = TeleopCore(LIMITS)
    for key in 'qawsed':
        act = core.handle_key(key, phase, np.zeros(3))
        assert act.kind == 'refused' and act.target is None
    assert core.refused == 6


def test_jog_in_resetting_stays_within_limits_and_step():
    core = TeleopCore(LIMITS, jog_step=0.07, max_step=0.1)
    cur = np.array([1.55, 0.0, -2.38])
    act = core.handle_key('q', Phase.RESETTING, cur)
    assert act.kind == 'jog'
    np.testing.assert_allclose(act.target, [1.6, 0.0, -2.38])  # clipped at the upper limit
    assert core.handle_key('q', Phase.RESETTING, act.target).kind == 'refused'  # at its limit
    act = core.handle_key('d', Phase.RESETTING, cur)
    np.testing.assert_allclose(act.target, [1.55, 0.0, -2.4])
    rng = np.random.default_rng(0)
    q = np.zeros(3)
    for key in rng.choice(list('qawsed'), 500):
        act = core.handle_key(key, Phase.RESETTING, q)
        if act.kind == 'jog':
            assert np.all(np.abs(act.target - q) <= 0.1 + 1e-12)
            q = act.target
        assert np.all(q >= LIMITS[:, 0]) and np.all(q <= LIMITS[:, 1])


def test_estop_latches_and_other_keys():
    core = TeleopCore(LIMITS)
    act = core.handle_key(' ', Phase.RESETTING, np.ones(3) * 0.2)
    assert act.kind == 'estop'
    np.testing.assert_allclose(act.target, 0.2)
    assert core.handle_key('q', Phase.RESETTING, np.zeros(3)).kind == 'refused'
    assert core.handle_key('r', Phase.RESETTING, None).kind == 'release'
    assert core.handle_key('q', Phase.RESETTING, np.zeros(3)).kind == 'jog'
    assert core.handle_key('q', Phase.RESETTING, None).kind == 'refused'  # position unknown
    assert core.handle_key('c', Phase.RUNNING, None).kind == 'confirm'
    assert core.handle_key('y', None, None).success is True
    assert core.handle_key('n', None, None).success is False
    assert core.handle_key('?', None, None).kind == 'ignored'


def test_clamp_and_path():
    out = clamp_target(np.array([5.0, -5.0, 0.05]), np.zeros(3), LIMITS, 0.1)
    np.testing.assert_allclose(out, [0.1, -0.1, 0.05])
    with pytest.raises(ValueError, match='non-finite'):
        clamp_target(np.array([np.nan, 0, 0]), np.zeros(3), LIMITS, 0.1)
    with pytest.raises(ValueError, match='shape mismatch'):
        clamp_target(np.zeros(2), np.zeros(3), LIMITS, 0.1)
    path = interpolate_path(np.zeros(3), np.array([[-1.45, 1.55, 1.45], [3.0, 0, 0]]), LIMITS,
                            0.1)
    steps = np.diff(np.vstack([np.zeros(3)] + path), axis=0)
    assert np.all(np.abs(steps) <= 0.1 + 1e-12)
    np.testing.assert_allclose(path[-1], [1.6, 0, 0])  # unreachable waypoint clipped to limit
    assert any(np.allclose(q, [-1.45, 1.55, 1.45]) for q in path)
