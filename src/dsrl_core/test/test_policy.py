"""The base-policy contract and our diffusion policy (no simulator needed)."""

import json
import subprocess
import sys

from dsrl_core.policy.base import load_plugin, PolicyMeta, sample_numpy
from dsrl_core.policy.diffusion import (
    cosine_alpha_bars,
    ddim_timesteps,
    DiffusionConfig,
    DiffusionPolicy,
)
import numpy as np
import pytest
import torch

META = PolicyMeta(obs_dim=8, act_dim=3, horizon=4, action_low=(-1.6, -2.4, -2.4),
                  action_high=(1.6, 2.4, 2.4), control_hz=10.0)


def trained_policy(seed=0, steps=300):
    """Train a small policy for a few steps on a synthetic obs -> chunk map."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(512, 8, generator=g)
    chunks = torch.tanh(obs[:, :3, None].transpose(1, 2).repeat(4, 1, 1).transpose(0, 1))
    chunks = chunks.reshape(512, 4, 3) * torch.tensor([1.0, 1.5, 1.5])
    pol = DiffusionPolicy(META, DiffusionConfig(hidden=64, n_blocks=2))
    pol.fit_normalizer(obs, chunks.reshape(-1, 3))
    opt = torch.optim.Adam(pol.net.parameters(), lr=2e-3)
    for _ in range(steps):
        idx = torch.randint(0, 512, (64,), generator=g)
        loss = pol.loss(obs[idx], chunks[idx], generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return pol.freeze()


@pytest.fixture(scope='module')
def policy():
    return trained_policy()


def test_meta_validation_and_round_trip():
    assert META.noise_shape == (4, 3) and META.noise_dim == 12
    assert PolicyMeta.from_dict(json.loads(json.dumps(META.to_dict()))) == META
    with pytest.raises(ValueError):
        PolicyMeta(8, 3, 4, (0, 0, 0), (1, 1), 10.0)
    with pytest.raises(ValueError):
        PolicyMeta(8, 3, 4, (1, 0, 0), (1, 1, 1), 10.0)
    with pytest.raises(ValueError):
        PolicyMeta.from_dict({**META.to_dict(), 'bogus': 1})


def test_schedule():
    ab = cosine_alpha_bars(20)
    assert ab.shape == (20,) and torch.all(ab[1:] < ab[:-1]) and 0 < ab[-1] < ab[0] < 1
    assert ddim_timesteps(20, 8) == [14, 12, 10, 8, 6, 4, 2, 0]
    assert ddim_timesteps(20, 20) == list(range(19, -1, -1))
    with pytest.raises(ValueError):
        DiffusionConfig(train_steps=5, ddim_steps=8)


@pytest.mark.parametrize('batch', [1, 7, 64])
def test_sample_is_bitwise_deterministic(policy, batch):
    g = torch.Generator().manual_seed(batch)
    obs, noise = torch.randn(batch, 8, generator=g), torch.randn(batch, 4, 3, generator=g)
    a1, a2 = policy.sample(obs, noise), policy.sample(obs.clone(), noise.clone())
    assert a1.shape == (batch, 4, 3)
    assert torch.equal(a1, a2)


def test_different_noise_gives_different_chunks(policy):
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(1, 8, generator=g).repeat(256, 1)
    chunks = policy.sample(obs, torch.randn(256, 4, 3, generator=g))
    spread = chunks.std(0).mean().item()
    print(f'mean per-entry std of chunks over 256 noises at one obs: {spread:.4f} rad')
    assert spread > 1e-3
    # The chunk must depend on the observation too (it is a conditional policy).
    obs2 = torch.randn(256, 8, generator=g)
    fixed_noise = torch.zeros(1, 4, 3).repeat(256, 1, 1)
    assert policy.sample(obs2, fixed_noise).std(0).mean().item() > 1e-2


def test_outputs_clamped_to_action_range(policy):
    g = torch.Generator().manual_seed(2)
    obs = 50 * torch.randn(128, 8, generator=g)        # far outside the training data
    noise = 20 * torch.randn(128, 4, 3, generator=g)   # extreme latents
    a = policy.sample(obs, noise)
    assert torch.all(a >= policy.act_min - 1e-6) and torch.all(a <= policy.act_max + 1e-6)
    low, high = torch.tensor(META.action_low), torch.tensor(META.action_high)
    assert torch.all(a >= low) and torch.all(a <= high)


def test_sample_rejects_bad_shapes(policy):
    with pytest.raises(ValueError):
        policy.sample(torch.zeros(2, 7), torch.zeros(2, 4, 3))
    with pytest.raises(ValueError):
        policy.sample(torch.zeros(2, 8), torch.zeros(2, 12))


def test_checkpoint_round_trip_identical(policy, tmp_path):
    policy.save(tmp_path / 'ck', extra={'note': 'test'})
    loaded = DiffusionPolicy.load(tmp_path / 'ck')
    g = torch.Generator().manual_seed(3)
    obs, noise = torch.randn(32, 8, generator=g), torch.randn(32, 4, 3, generator=g)
    assert torch.equal(loaded.sample(obs, noise), policy.sample(obs, noise))
    assert loaded.extra == {'note': 'test'}
    assert not any(p.requires_grad for p in loaded.parameters())


def test_checkpoint_loading_rejects_bad_files(policy, tmp_path):
    with pytest.raises(FileNotFoundError):
        DiffusionPolicy.load(tmp_path / 'missing')
    d = tmp_path / 'ck'
    policy.save(d)
    (d / 'model.safetensors').write_bytes(b'\x80\x04pickle-is-never-loaded')
    with pytest.raises(ValueError, match='safetensors'):
        DiffusionPolicy.load(d)
    policy.save(d)
    cfg = json.loads((d / 'config.json').read_text())
    cfg['diffusion']['hidden'] = 32
    (d / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(Exception):
        DiffusionPolicy.load(d)
    (d / 'config.json').write_text('{not json')
    with pytest.raises(ValueError, match='JSON'):
        DiffusionPolicy.load(d)


def test_sample_numpy_single_and_batch(policy):
    rng = np.random.default_rng(0)
    obs, noise = rng.standard_normal(8), rng.standard_normal(12)
    single = sample_numpy(policy, obs, noise)
    batch = sample_numpy(policy, obs[None], noise.reshape(1, 4, 3))
    assert single.shape == (4, 3) and batch.shape == (1, 4, 3)
    np.testing.assert_array_equal(single, batch[0])


def test_plugin_loading(policy, tmp_path, monkeypatch):
    policy.save(tmp_path / 'ck')
    plugin = load_plugin('dsrl_core.policy.diffusion:load_policy', path=str(tmp_path / 'ck'))
    obs, noise = torch.zeros(1, 8), torch.ones(1, 4, 3)
    assert torch.equal(plugin.sample(obs, noise), policy.sample(obs, noise))
    with pytest.raises(ValueError):
        load_plugin('no_colon_here')
    with pytest.raises(ValueError):
        load_plugin('dsrl_core.does_not_exist:f')
    with pytest.raises(ValueError):
        load_plugin('dsrl_core.policy.diffusion:nope')
    with pytest.raises(TypeError):
        load_plugin('json:dumps', obj=1)


def test_core_never_imports_rclpy():
    code = ('import sys, dsrl_core.policy.diffusion, dsrl_core.policy.train_bc, '
            'dsrl_core.evaluation; assert "rclpy" not in sys.modules')
    subprocess.run([sys.executable, '-c', code], check=True)
