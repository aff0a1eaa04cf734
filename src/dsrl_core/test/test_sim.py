"""Tests of the simulated push task, its scripted demonstrator and the demo file format."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault('MUJOCO_GL', 'egl')

from dsrl_core.sim import demos as demos_mod  # noqa: E402
from dsrl_core.sim.demonstrator import planar_ik, run_episode, ScriptedPusher  # noqa: E402
from dsrl_core.sim.push_env import (  # noqa: E402
    BatchPushEnv,
    CONTROL_HZ,
    forward_kinematics,
    GOAL_XY,
    JOINT_LIMITS,
    JOINT_NAMES,
    OBS_NAMES,
    PushEnv,
)


def _random_actions(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(JOINT_LIMITS[:, 0], JOINT_LIMITS[:, 1], size=(n, 3))


def _rollout(env: PushEnv, actions: np.ndarray, render: bool = False) -> np.ndarray:
    out = []
    for action in actions:
        obs = env.step(action)[0]
        if render:
            env.render()
        out.append(obs)
    return np.asarray(out)


def _colour_masks(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, g, b = (img[..., i].astype(int) for i in range(3))
    red = (r > 150) & (g < 80) & (b < 80)
    green = (g > 120) & (r < 100) & (b < 100)
    return red, green


@pytest.fixture(scope='module')
def env():
    e = PushEnv()
    yield e
    e.close()


def test_no_rclpy_import():
    code = ('import sys, dsrl_core.sim, dsrl_core.sim.demos; '
            "sys.exit(1 if 'rclpy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, '-c', code], check=False).returncode == 0


def test_spaces_and_layout(env):
    obs, info = env.reset(seed=1)
    assert obs.dtype == np.float32 and obs.shape == (8,) == (env.obs_dim,)
    assert env.act_dim == 3 and len(OBS_NAMES) == 8 and JOINT_NAMES == ('joint1', 'joint2',
                                                                         'joint3')
    assert CONTROL_HZ == 10.0 and env.control_dt == pytest.approx(0.1)
    np.testing.assert_array_equal(env.joint_limits, JOINT_LIMITS)
    for i, name in enumerate(JOINT_NAMES):
        np.testing.assert_allclose(env.model.joint(name).range, JOINT_LIMITS[i])
    np.testing.assert_allclose(obs[6:8], env.object_xy, atol=1e-6)
    np.testing.assert_allclose(forward_kinematics(obs[:3]), env.tip_xy, atol=1e-5)
    dist = np.linalg.norm(env.object_xy - env.goal_xy)
    assert 0.12 - 1e-9 <= dist <= 0.2 + 1e-9 and not info['success']


def test_seeded_determinism():
    actions = _random_actions(0, 40)
    a, b = PushEnv(), PushEnv()
    obs_a = np.concatenate([[a.reset(seed=7)[0]], _rollout(a, actions)])
    obs_b = np.concatenate([[b.reset(seed=7)[0]], _rollout(b, actions)])
    assert np.array_equal(obs_a, obs_b)
    # A reset of the same env with the same seed reproduces the episode too.
    obs_c = np.concatenate([[a.reset(seed=7)[0]], _rollout(a, actions)])
    assert np.array_equal(obs_a, obs_c)


def test_different_seeds_different_starts(env):
    starts = np.array([env.reset(seed=s)[0][6:8] for s in range(20)])
    assert len({tuple(p) for p in starts}) == 20
    dists = np.linalg.norm(starts - GOAL_XY, axis=1)
    assert np.all((dists >= 0.12 - 1e-6) & (dists <= 0.2 + 1e-6))
    assert np.ptp(starts[:, 0]) > 0.05


def test_action_clipping(env):
    env.reset(seed=2)
    action = np.array([10.0, -10.0, 10.0])
    for _ in range(10):
        obs = env.step(action)[0]
    np.testing.assert_array_equal(env.data.ctrl, [1.6, -2.4, 2.4])
    assert np.all(obs[:3] >= JOINT_LIMITS[:, 0] - 0.02)
    assert np.all(obs[:3] <= JOINT_LIMITS[:, 1] + 0.02)
    np.testing.assert_allclose(obs[:3], [1.6, -2.4, 2.4], atol=0.05)
    with pytest.raises(ValueError):
        env.step(np.array([np.nan, 0.0, 0.0]))


def test_position_tracking_within_a_step(env):
    env.reset(seed=3)
    target = env.data.qpos[:3] + np.array([0.3, -0.3, 0.3])
    obs = env.step(target)[0]
    np.testing.assert_allclose(obs[:3], target, atol=0.02)


def test_reward_success_and_truncation():
    env = PushEnv(max_steps=5)
    obs, info = env.reset(seed=0, options={'object_xy': GOAL_XY + [0.01, 0.0]})
    assert info['success']
    _, reward, terminated, truncated, info = env.step(obs[:3])
    assert (reward, terminated, truncated, info['success']) == (0.0, True, False, True)
    obs, _ = env.reset(seed=0)
    for t in range(5):
        _, reward, terminated, truncated, info = env.step(obs[:3])
        assert reward == -1.0 and not terminated and not info['success']
        assert truncated == (t == 4)


def test_render_shape_and_colours():
    env = PushEnv(render_size=(96, 96))
    env.reset(seed=4)
    img = env.render()
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    red, green = _colour_masks(img)
    assert red.sum() >= 6 and green.sum() >= 20
    # The red blob follows the puck.
    env.reset(seed=4, options={'object_xy': env.object_xy + [0.15, 0.0]})
    red2, _ = _colour_masks(env.render())
    assert red2.sum() >= 6
    c1, c2 = (np.argwhere(m).mean(axis=0) for m in (red, red2))
    assert np.linalg.norm(c1 - c2) > 5.0
    wide = PushEnv(render_size=(64, 128))
    assert wide.render().shape == (64, 128, 3)
    env.close()
    wide.close()


def test_render_does_not_change_physics():
    actions = _random_actions(1, 20)
    a, b = PushEnv(), PushEnv()
    a.reset(seed=5)
    b.reset(seed=5)
    assert np.array_equal(_rollout(a, actions, render=True), _rollout(b, actions))
    a.close()


def test_get_set_state_round_trip(env):
    actions = _random_actions(2, 20)
    env.reset(seed=6)
    _rollout(env, actions[:10])
    state = env.get_state()
    assert state.dtype == np.float64 and state.ndim == 1
    first = _rollout(env, actions[10:])
    env.reset(seed=99)
    env.set_state(state)
    assert env.elapsed_steps == 10
    np.testing.assert_array_equal(env.get_state(), state)
    assert np.array_equal(_rollout(env, actions[10:]), first)
    with pytest.raises(ValueError):
        env.set_state(state[:-1])


def test_batch_env_matches_single():
    actions = _random_actions(3, 8)
    batch = BatchPushEnv(3, max_steps=8, seed=10)
    obs = batch.reset()
    single = PushEnv(max_steps=8)
    for i in range(3):
        np.testing.assert_array_equal(obs[i], single.reset(seed=10 + i)[0])
    for action in actions:
        obs, reward, done, success = batch.step(np.tile(action, (3, 1)))
    assert obs.shape == (3, 8) and done.all()


def test_planar_ik_reaches_targets():
    rng = np.random.default_rng(0)
    q_ref = np.array([-1.45, 1.55, 1.45])
    for _ in range(50):
        radius, angle = rng.uniform(0.15, 0.45), rng.uniform(-1.2, 1.2)
        target = radius * np.array([np.cos(angle), np.sin(angle)])
        q = planar_ik(target, q_ref)
        assert np.all(q >= JOINT_LIMITS[:, 0]) and np.all(q <= JOINT_LIMITS[:, 1])
        np.testing.assert_allclose(forward_kinematics(q), target, atol=1e-6)


def test_demonstrator_success_rate():
    env = PushEnv(max_steps=60)
    pusher = ScriptedPusher(np.random.default_rng(0))
    results, sides = [], []
    for seed in range(60):
        results.append(run_episode(env, pusher, seed=1000 + seed))
        sides.append(pusher.side)
    success = np.array([r['success'] for r in results])
    lengths = np.array([r['length'] for r in results])[success]
    assert success.mean() >= 0.9
    assert 20 <= lengths.mean() <= 50 and lengths.min() >= 10
    assert set(sides) == {-1, 1}
    steps = np.concatenate([np.abs(np.diff(r['action'], axis=0)) for r in results])
    assert steps.max() <= 0.35 + 1e-6


def test_demonstrator_sides_differ():
    env = PushEnv()
    paths = []
    for side in (1, -1):
        obs, _ = env.reset(seed=11)
        pusher = ScriptedPusher(0, noise_scale=0.0, side=side)
        tips = []
        for _ in range(12):
            obs = env.step(pusher.act(obs))[0]
            tips.append(env.tip_xy)
        paths.append(np.array(tips))
    assert np.max(np.linalg.norm(paths[0] - paths[1], axis=1)) > 0.08


def test_demos_round_trip(tmp_path):
    demos = demos_mod.collect_demos(n=3, seed=0, max_steps=60)
    path = str(tmp_path / 'demos.npz')
    demos_mod.save_demos(demos, path)
    loaded = demos_mod.load_demos(path)
    for key in ('obs', 'action', 'episode_ends', 'success', 'obs_names', 'action_names'):
        assert np.array_equal(loaded[key], demos[key])
        assert loaded[key].dtype == demos[key].dtype
    assert loaded['obs'].dtype == np.float32 and loaded['obs'].shape[1] == 8
    assert loaded['action'].shape == (loaded['obs'].shape[0], 3)
    assert loaded['episode_ends'].dtype == np.int64 and loaded['episode_ends'].shape == (3,)
    assert loaded['episode_ends'][-1] == loaded['obs'].shape[0] and loaded['success'].all()
    assert tuple(loaded['obs_names']) == OBS_NAMES
    meta = loaded['meta']
    assert meta['control_hz'] == 10.0 and meta['n'] == 3 and meta['seed'] == 0
    np.testing.assert_array_equal(meta['joint_limits'], JOINT_LIMITS)
    # Reproducible: the same seed gives the same data.
    again = demos_mod.collect_demos(n=3, seed=0, max_steps=60)
    assert np.array_equal(again['obs'], demos['obs'])


def test_recovery_demos_start_with_the_puck_stopped_near_the_goal():
    plain = demos_mod.collect_demos(n=2, seed=0)
    demos = demos_mod.collect_demos(n=2, seed=0, recovery=3)
    ends = demos['episode_ends']
    assert ends.shape == (5,) and demos['success'].all()
    # the ordinary episodes are untouched by the recovery ones
    assert np.array_equal(demos['obs'][:ends[1]], plain['obs'])
    lo, hi = demos_mod.RECOVERY_DIST
    for start in ends[1:4]:
        first = demos['obs'][start]
        assert lo <= np.linalg.norm(first[6:8] - GOAL_XY) <= hi
        assert np.all(first[3:6] == 0.0)  # at rest
    meta = json.loads(str(demos['meta_json']))
    assert (meta['n'], meta['recovery']) == (2, 3) and meta['recovery_attempts'] >= 3
    again = demos_mod.collect_demos(n=2, seed=0, recovery=3)
    assert np.array_equal(again['action'], demos['action'])
    other = demos_mod.collect_demos(n=2, seed=1, recovery=3)
    assert not np.array_equal(other['obs'][other['episode_ends'][1]],
                              demos['obs'][ends[1]])
    with pytest.raises(ValueError, match='recovery must be >= 0'):
        demos_mod.collect_demos(n=2, recovery=-1)
    # an explicit recovery seed changes only the recovery episodes, reproducibly
    seeded = demos_mod.collect_demos(n=2, seed=0, recovery=3, recovery_seed=77)
    assert np.array_equal(seeded['obs'][:ends[1]], plain['obs'])
    assert not np.array_equal(seeded['obs'][ends[1]], demos['obs'][ends[1]])
    assert np.array_equal(seeded['action'], demos_mod.collect_demos(
        n=2, seed=0, recovery=3, recovery_seed=77)['action'])
    assert json.loads(str(seeded['meta_json']))['recovery_seed'] == 77


def _save_raw(path, arrays):
    with open(path, 'wb') as f:
        np.savez(f, **arrays)


def test_load_demos_rejects_malformed(tmp_path):
    good = demos_mod.collect_demos(n=2, seed=1)
    bad_cases = {
        'missing': {k: v for k, v in good.items() if k != 'episode_ends'},
        'dtype': {**good, 'obs': good['obs'].astype(np.float64)},
        'shape': {**good, 'action': good['action'][:, :2]},
        'ends': {**good, 'episode_ends': good['episode_ends'] + 1},
        'names': {**good, 'obs_names': np.array(['a'] * 8)},
        'meta': {**good, 'meta_json': np.array('{not json')},
    }
    for name, arrays in bad_cases.items():
        path = str(tmp_path / f'{name}.npz')
        _save_raw(path, arrays)
        with pytest.raises(ValueError):
            demos_mod.load_demos(path)
    garbage = tmp_path / 'garbage.npz'
    garbage.write_bytes(b'not a zip file')
    with pytest.raises(ValueError, match='garbage.npz'):
        demos_mod.load_demos(str(garbage))
    pickled = str(tmp_path / 'pickled.npz')
    _save_raw(pickled, {**good, 'obs': np.array([{'a': 1}], dtype=object)})
    with pytest.raises(ValueError):
        demos_mod.load_demos(pickled)
    assert json.loads(str(good['meta_json']))['n'] == 2


def test_demos_cli(tmp_path):
    out = str(tmp_path / 'cli.npz')
    assert demos_mod.main(['--n', '2', '--seed', '3', '--out', out]) == 0
    assert demos_mod.load_demos(out)['episode_ends'].shape == (2,)
    assert demos_mod.main(['--n', '2', '--recovery', '1', '--out', out]) == 0
    assert demos_mod.load_demos(out)['meta']['recovery'] == 1
