"""Sim/policy node logic without ROS: layout, clamp, noise and weights, timing, rewards, params."""

import pathlib

from dsrl_core.params import field_descriptions, param_names
from dsrl_core.policy import runtime as rt
from dsrl_core.policy.base import PolicyMeta
from dsrl_core.policy.policy_params import PolicyNodeParams
from dsrl_core.rl.networks import TanhGaussianActor
from dsrl_core.rl.serialize import pack_actor, WeightsRejected
from dsrl_core.sim.push_env import OBS_NAMES, PushEnv
from dsrl_core.sim.runner import CommandError, SimRunner, STEP_NS, validate_command
from dsrl_core.sim.sim_params import SimNodeParams
import numpy as np
import pytest
import torch
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
META = PolicyMeta(obs_dim=8, act_dim=3, horizon=4, action_low=(-1.6, -2.4, -2.4),
                  action_high=(1.6, 2.4, 2.4), control_hz=10.0, obs_names=OBS_NAMES,
                  action_names=('joint1', 'joint2', 'joint3'))
KEY = b'k' * 32


def test_obs_layout_and_assembly():
    layout = rt.parse_obs_layout(OBS_NAMES, META)
    joints = {'joint1': (0.1, 1.0), 'joint2': (0.2, 2.0), 'joint3': (0.3, 3.0), 'x': (9, 9)}
    obs = rt.assemble_obs(layout, joints, (0.5, 0.6, 0.7))
    np.testing.assert_array_equal(obs, np.float32([0.1, 0.2, 0.3, 1, 2, 3, 0.5, 0.6]))
    swapped = list(OBS_NAMES)
    swapped[6], swapped[7] = swapped[7], swapped[6]
    with pytest.raises(rt.ObsLayoutError, match='first difference at index 6'):
        rt.parse_obs_layout(swapped, META)
    with pytest.raises(rt.ObsLayoutError, match='unsupported observation entry'):
        rt.parse_obs_layout(['force/x'] * 8, PolicyMeta(8, 3, 4, (-1,) * 3, (1,) * 3, 10.0))
    with pytest.raises(rt.ObsLayoutError, match="joint 'joint3' missing"):
        rt.assemble_obs(layout, {'joint1': (0, 0), 'joint2': (0, 0)}, (0, 0, 0))


def test_clamp_command_limits_and_step():
    low, high = np.array([-1.0, -1.0]), np.array([1.0, 1.0])
    out = rt.clamp_command(np.array([5.0, -0.35]), np.array([0.95, -0.3]), low, high, 0.1)
    np.testing.assert_allclose(out, [1.0, -0.35])
    out = rt.clamp_command(np.array([0.5, -0.9]), np.array([0.0, 0.0]), low, high, 0.1)
    np.testing.assert_allclose(out, [0.1, -0.1])
    with pytest.raises(ValueError, match='non-finite'):
        rt.clamp_command(np.array([np.nan, 0.0]), np.zeros(2), low, high, 0.1)


def test_noise_source_modes_and_weights():
    src = rt.NoiseSource(META, (32, 32), True, 1.5, 'train', seed=0)
    assert src.noise(np.zeros(8)).shape == (4, 3) and src.version == 0
    torch.manual_seed(1)
    actor = TanhGaussianActor(8, 12, (32, 32), 1.5)
    args = {'obs_dim': 8, 'chunk_length': 4, 'action_dim': 3, 'magnitude': 1.5,
            'architecture': 'tanh_gaussian_mlp:32x32:layernorm'}
    payload, sha, tag = pack_actor(actor.state_dict(), 3, KEY)
    with pytest.raises(WeightsRejected, match='bad tag'):
        src.offer(3, payload, sha, tag, b'x' * 32, **args)
    with pytest.raises(WeightsRejected, match='incompatible shapes'):
        src.offer(3, payload, sha, tag, KEY, **{**args, 'obs_dim': 9})
    with pytest.raises(WeightsRejected, match='incompatible architecture'):
        src.offer(3, payload, sha, tag, KEY, **{**args, 'architecture': 'x'})
    with pytest.raises(WeightsRejected, match='no HMAC key'):
        src.offer(3, payload, sha, tag, None, **args)
    assert src.rejected == 4 and src.version == 0 and src.pending is None
    src.offer(3, payload, sha, tag, KEY, **args)
    assert src.version == 0  # pending until a chunk boundary
    assert src.apply() == (0, 3) and src.apply() is None
    with pytest.raises(WeightsRejected, match='not newer'):
        src.offer(3, payload, sha, tag, KEY, **args)
    obs = np.ones(8, np.float32)
    src.mode = 'eval'
    want = 1.5 * torch.tanh(actor.net(torch.as_tensor(obs)[None]).chunk(2, -1)[0])
    np.testing.assert_allclose(src.noise(obs), want.detach().numpy().reshape(4, 3), atol=1e-6)
    src.mode = 'train'
    # per-episode exploration: one draw per episode, so the same obs gives the same noise within
    # an episode and a different one in the next
    assert src.exploration == 'chunk'  # the default: a new draw per chunk
    src.exploration = 'episode'
    np.testing.assert_array_equal(src.noise(obs, 1), src.noise(obs, 1))
    assert not np.allclose(src.noise(obs, 1), src.noise(obs, 2))
    assert not np.allclose(src.noise(obs, 2), src.noise(np.zeros(8, np.float32), 2))
    src.exploration = 'chunk'
    assert not np.allclose(src.noise(obs, 3), src.noise(obs, 3))
    assert np.all(np.abs(src.noise(obs)) <= 1.5)
    with pytest.raises(ValueError, match='exploration'):
        rt.NoiseSource(META, (32, 32), True, 1.5, 'train', exploration='step')


def test_chunk_due_times_and_stale_drops():
    c = rt.ActiveChunk(obs=np.zeros(8), obs_stamp_ns=0, start_ns=1000, dt_ns=100, noise=np.zeros(
        (4, 3)), actions=np.zeros((4, 3)), episode_id=1, actor_version=0, step_index=0)
    assert c.take(1000, 5, 0) == 0
    c.record(np.zeros(3))
    assert c.take(1050, 5, 0) is None  # action 1 is due at 1100
    assert c.take(1100, 5, 0) == 1
    c.record(np.zeros(3))
    assert c.take(1302, 5, 0) == 3 and c.dropped == 1  # action 2 (due 1200) is stale
    c.record(np.ones(3))
    assert c.finished and c.sent == 3 and c.due_ns(4) == 1400


def test_reward_book_windows():
    book = rt.RewardBook()
    for k in range(1, 6):
        book.add(k * 10, rt.StepRewardRecord(-1.0, False, k == 5, 1))
    book.add(60, rt.StepRewardRecord(-1.0, False, False, 2))
    assert [r.reward for r in book.window(10, 40, 1)] == [-1.0] * 3
    assert book.ended_at(0, 1) == 50 and book.ended_at(0, 2) is None
    book.prune(30)
    assert sorted(book.rewards) == [40, 50, 60] and book.has(40) and not book.has(30)


def test_sim_runner_commands_time_and_reset():
    r = SimRunner(seed=2, render=False)
    env = PushEnv()
    want, _ = env.reset(seed=2)
    np.testing.assert_array_equal(r.frame().obs, want)
    with pytest.raises(CommandError, match='2 values, expected 3'):
        r.command([0.0, 0.0])
    with pytest.raises(CommandError, match='non-finite'):
        validate_command([0.0, np.inf, 0.0], 3)
    r.command([0.1, 1.5, 1.4])
    f = r.step()
    np.testing.assert_array_equal(f.obs, env.step([0.1, 1.5, 1.4])[0])
    assert f.stamp_ns == STEP_NS and f.image is None
    f = r.reset()
    assert f.episode == 1 and f.stamp_ns == 2 * STEP_NS
    np.testing.assert_array_equal(f.obs, env.reset(seed=3)[0])


@pytest.mark.parametrize('block, schema', [('sim_node', SimNodeParams),
                                           ('policy_node', PolicyNodeParams)])
def test_yaml_blocks_equal_schemas(block, schema):
    doc = yaml.safe_load((ROOT / 'config' / 'dsrl.yaml').read_text())
    values = doc[block]['ros__parameters']
    assert list(values) == param_names(schema)
    from dsrl_core.params import from_param_dict
    assert from_param_dict(schema, values, partial=False) == schema()
    assert all(field_descriptions(schema).values())


def test_param_checks():
    with pytest.raises(ValueError, match='time_mode'):
        SimNodeParams(time_mode='fast')
    with pytest.raises(ValueError, match='mode must be one of'):
        PolicyNodeParams(mode='explore')
    with pytest.raises(ValueError, match='equal lengths'):
        PolicyNodeParams(joint_limits_low=(0.0,))


def test_timing_stats_percentiles_and_line():
    t = rt.TimingStats(window=100)
    assert t.percentiles('cycle')[0] == 0 and 'n=0' in t.line(100.0)
    for ms in range(1, 201):  # only the last 100 values (101..200) are kept
        t.add('cycle', float(ms))
    t.add('cycle', float('nan'))
    n, p50, p99 = t.percentiles('cycle')
    assert n == 100 and p50 == 150.5 and abs(p99 - 199.01) < 1e-9
    t.add('obs_to_command', 5.0)
    line = t.line(100.0)
    assert line.startswith('timing: cycle n=100 p50=150.50 p99=199.01 ms (p99/period 1.990)')
    assert 'obs->command n=1 p50=5.00 p99=5.00 ms' in line
    with pytest.raises(KeyError):
        t.add('unknown', 1.0)
    with pytest.raises(ValueError):
        rt.TimingStats(window=0)
