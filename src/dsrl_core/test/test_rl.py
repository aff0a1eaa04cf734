"""Tests of the noise-space RL core: networks, SAC, DSRL-SAC/NA, replay buffer, serialisation."""

import dataclasses
import io
import math
import os
import threading

from dsrl_core.policy.base import PolicyMeta
from dsrl_core.rl.buffer import MixedSampler, ReplayBuffer, sample_mixed
from dsrl_core.rl.na import DSRLNA, NAConfig
from dsrl_core.rl.networks import (
    CriticEnsemble,
    hl_gauss_probs,
    mlp,
    polyak_update,
    run_mlp,
    TanhGaussianActor,
)
from dsrl_core.rl.sac import DSRLSAC, SAC, SACConfig
from dsrl_core.rl.serialize import (
    actor_shapes,
    hmac_tag,
    pack_actor,
    payload_sha256,
    unpack_actor,
    WeightsRejected,
)
import numpy as np
import pytest
import torch
from torch import nn

SMALL = (32, 32)
KEY = b'shared-secret-key-for-tests'


@pytest.fixture(autouse=True)
def one_thread():
    """Run every test on one CPU thread (the machine is shared), then restore."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TanhMLPPolicy(nn.Module):
    """
    A small fixed random policy honouring the base-policy contract.

    ``sample`` maps (obs, noise) through a fixed tanh-MLP and rescales into the action bounds; it
    is deterministic and runs without gradients. Its parameters keep ``requires_grad=True`` on
    purpose, so the tests see it if DSRL ever trains them.
    """

    def __init__(self, obs_dim: int = 5, act_dim: int = 3, horizon: int = 4, seed: int = 0):
        super().__init__()
        self.meta = PolicyMeta(obs_dim=obs_dim, act_dim=act_dim, horizon=horizon,
                               action_low=tuple(-1.0 - i for i in range(act_dim)),
                               action_high=tuple(0.5 + 2 * i for i in range(act_dim)),
                               control_hz=10.0)
        gen = torch.Generator().manual_seed(seed)
        in_dim = obs_dim + horizon * act_dim
        self.w1 = nn.Parameter(torch.randn(in_dim, 64, generator=gen) / in_dim ** 0.5)
        self.w2 = nn.Parameter(torch.randn(64, horizon * act_dim, generator=gen) / 8.0)
        self.register_buffer('low', torch.tensor(self.meta.action_low))
        self.register_buffer('high', torch.tensor(self.meta.action_high))

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        b = obs.shape[0]
        x = torch.cat([obs, noise.reshape(b, -1)], dim=-1)
        y = torch.tanh(torch.tanh(x @ self.w1) @ self.w2).reshape((b,) + self.meta.noise_shape)
        return self.low + (y + 1) / 2 * (self.high - self.low)


def latent_batch(policy, batch_size=64, seed=0):
    """Synthetic latent transitions whose executed chunks come from the policy."""
    gen = torch.Generator().manual_seed(seed)
    meta = policy.meta
    obs = torch.randn(batch_size, meta.obs_dim, generator=gen)
    noise = torch.randn((batch_size,) + meta.noise_shape, generator=gen).clamp(-1.5, 1.5)
    return {
        'obs': obs,
        'noise': noise,
        'action': policy.sample(obs, noise),
        'reward': torch.randn(batch_size, generator=gen),
        'next_obs': torch.randn(batch_size, meta.obs_dim, generator=gen),
        'terminated': (torch.rand(batch_size, generator=gen) < 0.2).float(),
    }


# ---------------------------------------------------------------------------------------------
# networks


@pytest.mark.parametrize('magnitude', [1.0, 1.5, 2.5])
def test_actor_shapes_bounds_and_finite_log_prob(magnitude):
    torch.manual_seed(0)
    actor = TanhGaussianActor(6, 12, SMALL, magnitude=magnitude)
    with torch.no_grad():  # push the pre-tanh values far out to exercise saturation
        actor.net[-1].weight.mul_(50.0)
    obs = torch.randn(128, 6) * 10
    a, logp = actor(obs)
    assert a.shape == (128, 12) and logp.shape == (128,)
    assert a.abs().max() <= magnitude
    assert torch.isfinite(logp).all()
    a1, _ = actor(obs, deterministic=True)
    a2, _ = actor(obs, deterministic=True)
    assert torch.equal(a1, a2)
    mean = actor.net(obs).chunk(2, dim=-1)[0]
    torch.testing.assert_close(a1, magnitude * torch.tanh(mean))
    a3, none = actor(obs, with_log_prob=False)
    assert none is None and a3.shape == (128, 12)


def test_actor_log_prob_matches_torch_distributions():
    torch.manual_seed(1)
    actor = TanhGaussianActor(4, 3, SMALL, magnitude=1.5).double()
    obs = torch.randn(256, 4, dtype=torch.float64)
    a, logp = actor(obs)
    mean, log_std = actor.net(obs).chunk(2, dim=-1)
    base = torch.distributions.Normal(mean, log_std.clamp(-20, 2).exp())
    dist = torch.distributions.TransformedDistribution(
        base, [torch.distributions.TanhTransform(), torch.distributions.AffineTransform(0, 1.5)])
    expected = dist.log_prob(a.clamp(-1.5 + 1e-9, 1.5 - 1e-9)).sum(-1)
    torch.testing.assert_close(logp, expected, rtol=1e-6, atol=1e-6)


def test_actor_sampling_reproducible_with_generator():
    actor = TanhGaussianActor(4, 3, SMALL)
    obs = torch.randn(8, 4)
    a1, _ = actor(obs, generator=torch.Generator().manual_seed(5))
    a2, _ = actor(obs, generator=torch.Generator().manual_seed(5))
    a3, _ = actor(obs, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)


@pytest.mark.parametrize('n,layer_norm', [(1, True), (2, True), (5, True), (3, False)])
def test_critic_ensemble_matches_separate_members(n, layer_norm):
    torch.manual_seed(2)
    critic = CriticEnsemble(7, 4, n=n, hidden=(16, 24, 8), layer_norm=layer_norm)
    with torch.no_grad():  # make the per-member LayerNorm affine parameters non-trivial
        for p in list(critic.ln_weights) + list(critic.ln_biases):
            p.add_(torch.randn_like(p) * 0.3)
    obs, act = torch.randn(33, 7), torch.randn(33, 4)
    q = critic(obs, act)
    assert q.shape == (n, 33)
    for i in range(n):
        member = critic.member(i)
        assert isinstance(member, nn.Sequential)
        expected = member(torch.cat([obs, act], -1)).squeeze(-1)
        torch.testing.assert_close(q[i], expected, rtol=1e-5, atol=1e-5)
    if n > 1:
        assert not torch.allclose(q[0], q[1])


def test_mlp_layout():
    net = mlp(3, 2, (8, 8), layer_norm=True)
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.LayerNorm, nn.ReLU, nn.Linear, nn.LayerNorm, nn.ReLU,
                     nn.Linear]
    assert [type(m) for m in mlp(3, 2, (8,), layer_norm=False)] == [nn.Linear, nn.ReLU, nn.Linear]


@pytest.mark.parametrize('layer_norm', [True, False])
def test_run_mlp_is_the_module_forward_and_its_gradient(layer_norm):
    torch.manual_seed(0)
    net = mlp(5, 3, (16, 16), layer_norm=layer_norm)
    x = torch.randn(7, 5)
    assert torch.equal(run_mlp(net, x), net(x))
    run_mlp(net, x).square().sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net(x).square().sum().backward()
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, net.parameters()))
    # the actor (which uses it) still computes its net on normalised observations
    actor = TanhGaussianActor(5, 3, (16, 16), layer_norm=layer_norm)
    actor.obs_norm.set(torch.ones(5), 2 * torch.ones(5))
    w, _ = actor(x, deterministic=True, with_log_prob=False)
    mean = actor.net((x - 1) / 2)[:, :3]
    assert torch.allclose(w, 1.5 * torch.tanh(mean))


def test_polyak_update():
    params = [torch.randn(3, 4), torch.randn(5)]
    targets = [torch.randn(3, 4), torch.randn(5)]
    expected = [0.9 * t + 0.1 * p for p, t in zip(params, targets)]
    polyak_update(params, targets, 0.1)
    for t, e in zip(targets, expected):
        torch.testing.assert_close(t, e)
    polyak_update(params, targets, 1.0)
    for t, p in zip(targets, params):
        assert torch.equal(t, p)
    with pytest.raises(ValueError):
        polyak_update(params, targets[:1], 0.5)


# ---------------------------------------------------------------------------------------------
# SAC and DSRL-SAC


def sac_batch(obs_dim, act_dim, batch_size=128, seed=0, magnitude=1.5):
    gen = torch.Generator().manual_seed(seed)
    return {
        'obs': torch.randn(batch_size, obs_dim, generator=gen),
        'action': (torch.rand(batch_size, act_dim, generator=gen) * 2 - 1) * magnitude,
        'reward': torch.randn(batch_size, generator=gen),
        'next_obs': torch.randn(batch_size, obs_dim, generator=gen),
        'terminated': (torch.rand(batch_size, generator=gen) < 0.2).float(),
    }


def test_sac_update_lowers_critic_loss_on_fixed_batch():
    sac = SAC(6, 4, SACConfig(hidden=SMALL, seed=0, lr=1e-3))
    batch = sac_batch(6, 4)
    first = sac.update(batch)
    for _ in range(150):
        stats = sac.update(batch)
    assert set(stats) == {'critic_loss', 'actor_loss', 'alpha', 'alpha_loss', 'q_mean',
                          'entropy'}
    assert all(np.isfinite(v) for v in stats.values())
    assert stats['critic_loss'] < 0.5 * first['critic_loss']
    assert sac.num_updates == 151


def test_sac_bootstraps_on_terminated_not_truncated():
    batch = sac_batch(3, 2, batch_size=64, seed=3)
    batch['reward'] = torch.ones(64)
    cfg = SACConfig(hidden=SMALL, lr=3e-3, tau=0.05, init_alpha=1e-4, seed=0)
    ended = SAC(3, 2, cfg)
    batch_ended = dict(batch, terminated=torch.ones(64), truncated=torch.zeros(64))
    cut = SAC(3, 2, cfg)
    batch_cut = dict(batch, terminated=torch.zeros(64), truncated=torch.ones(64))
    for _ in range(300):
        s_end = ended.update(batch_ended)
        s_cut = cut.update(batch_cut)
    # Terminal transitions: Q -> r = 1. Truncated ones still bootstrap: Q grows towards 1/(1-g).
    assert abs(s_end['q_mean'] - 1.0) < 0.15
    assert s_cut['q_mean'] > 2.0


def test_sac_act_shapes_and_bounds():
    sac = SAC(5, 2, SACConfig(hidden=SMALL, action_magnitude=2.0))
    a = sac.act(np.zeros(5, np.float32))
    assert a.shape == (2,) and a.dtype == np.float32
    batch = sac.act(np.random.default_rng(0).normal(size=(10, 5)) * 5)
    assert batch.shape == (10, 2) and np.abs(batch).max() <= 2.0
    obs = torch.randn(4, 5)
    assert np.array_equal(sac.act(obs, deterministic=True), sac.act(obs, deterministic=True))
    with pytest.raises(ValueError):
        sac.act(np.zeros(6))


def test_dsrl_sac_uses_noise_and_returns_noise_shape():
    policy = TanhMLPPolicy()
    meta = policy.meta
    agent = DSRLSAC(meta, config=SACConfig(hidden=SMALL, action_magnitude=1.5))
    assert agent.act_dim == meta.noise_dim and agent.obs_dim == meta.obs_dim
    w = agent.act(np.zeros(meta.obs_dim))
    assert w.shape == meta.noise_shape and np.abs(w).max() <= 1.5
    ws = agent.act(np.zeros((7, meta.obs_dim)))
    assert ws.shape == (7,) + meta.noise_shape
    policy.sample(torch.zeros(7, meta.obs_dim), torch.as_tensor(ws))  # fits the contract
    batch = latent_batch(policy)
    stats = agent.update(batch)
    assert np.isfinite(stats['critic_loss'])
    with pytest.raises(ValueError):
        agent.update(dict(batch, noise=batch['noise'].reshape(64, -1)[:, :5]))


@pytest.mark.parametrize('kwargs', [
    {'hidden': ()}, {'hidden': (0, 4)}, {'n_critics': 0}, {'gamma': 1.5}, {'tau': 0.0},
    {'lr': 0.0}, {'batch_size': 0}, {'init_alpha': 0.0}, {'action_magnitude': -1.0},
    {'log_std_min': 2.0, 'log_std_max': 2.0}, {'utd_ratio': 0}])
def test_sac_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        SACConfig(**kwargs)


@pytest.mark.parametrize('kwargs', [
    {'n_distill': -1}, {'distill_target': 'max'}, {'distill_actor_fraction': 1.5},
    {'critic_loss': 'huber'}, {'value_min': 0.0, 'value_max': 0.0}, {'value_max': math.nan},
    {'value_bins': 2}, {'hl_sigma': 0.0}])
def test_na_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        NAConfig(**kwargs)


def test_sac_config_target_entropy_none_means_minus_act_dim():
    assert SAC(3, 5, SACConfig(hidden=SMALL, target_entropy=None)).target_entropy == -5.0
    assert SACConfig(hidden=[8, 8]).hidden == (8, 8)


# ---------------------------------------------------------------------------------------------
# DSRL-NA


def na_agent(policy, **kwargs):
    cfg = NAConfig(hidden=SMALL, seed=0, **kwargs)
    return DSRLNA(policy, policy.meta.obs_dim, cfg)


def test_na_keeps_base_policy_frozen():
    policy = TanhMLPPolicy()
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    agent = na_agent(policy, n_distill=2, distill_actor_fraction=0.5)
    for module in (agent.actor, agent.q_action, agent.q_noise):
        assert not {id(p) for p in module.parameters()} & {id(p) for p in policy.parameters()}
    optimised = {id(p) for opt in (agent.actor_optim, agent.q_action_optim, agent.q_noise_optim,
                                   agent.alpha_optim)
                 for group in opt.param_groups for p in group['params']}
    assert not optimised & {id(p) for p in policy.parameters()}
    batch = latent_batch(policy)
    for _ in range(20):
        stats = agent.update(batch)
    assert all(np.isfinite(v) for v in stats.values())
    for k, v in policy.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in policy.parameters())


def test_na_distillation_lowers_q_noise_regression_loss():
    policy = TanhMLPPolicy()
    agent = na_agent(policy, lr=1e-3)
    batch = latent_batch(policy, batch_size=128)
    for _ in range(30):  # give Q^A some structure first
        agent.update(dict(batch, reward=batch['action'].sum((1, 2))))
    gen = torch.Generator().manual_seed(11)
    obs = batch['obs']
    w = torch.randn(128, policy.meta.noise_dim, generator=gen)
    target = agent.distill_targets(obs, w)
    q_action_before = [p.clone() for p in agent.q_action.parameters()]
    with torch.no_grad():
        before = agent.distill_loss(obs, w, target).item()
    for _ in range(150):
        agent.distill_step(obs)
    with torch.no_grad():
        after = agent.distill_loss(obs, w, target).item()
    assert after < 0.5 * before
    for p, q in zip(agent.q_action.parameters(), q_action_before):
        assert torch.equal(p, q)  # distillation must not move Q^A


def test_na_distillation_pool_decodes_once_and_lowers_the_loss():
    policy = TanhMLPPolicy()
    agent = na_agent(policy, lr=1e-3, pool_noises=8, pool_states=4, pool_capacity=100,
                     n_distill=0)
    batch = latent_batch(policy, batch_size=64)
    for _ in range(20):  # each update adds 4 states x 8 noises to the ring (capacity 100)
        agent.update(dict(batch, reward=batch['action'].sum((1, 2))))
    assert agent._pool_size == 100 and agent._pool_ptr == (20 * 32) % 100
    o, w, chunk = agent._pool
    # pool rows are (state, noise, the normalised chunk the base policy decodes it to)
    torch.testing.assert_close(chunk, agent.normalize_actions(
        policy.sample(o, w.reshape((-1,) + policy.meta.noise_shape))))
    target = agent.q_action(o, chunk).min(0).values.detach()
    with torch.no_grad():
        before = agent.distill_loss(o, w, target).item()
    calls, sample = [], policy.sample
    policy.sample = lambda o, n: (calls.append(len(o)), sample(o, n))[1]
    for _ in range(150):
        agent.distill_step(batch['obs'])
    assert calls == []  # no base-policy call in pooled distillation
    with torch.no_grad():
        after = agent.distill_loss(o, w, target).item()
    assert after < 0.5 * before
    with pytest.raises(ValueError, match='pool_noises'):
        NAConfig(pool_noises=-1)


@pytest.mark.parametrize('reduce', ['min', 'mean'])
def test_na_distill_target_is_q_action_of_decoded_noise(reduce):
    policy = TanhMLPPolicy()
    agent = na_agent(policy, distill_target=reduce)
    obs = torch.randn(16, policy.meta.obs_dim)
    w = torch.randn(16, policy.meta.noise_dim)
    chunk = policy.sample(obs, w.reshape((16,) + policy.meta.noise_shape))
    with torch.no_grad():
        qa = agent.q_action(obs, agent.normalize_actions(chunk))
    expected = qa.min(0).values if reduce == 'min' else qa.mean(0)
    assert torch.equal(agent.distill_targets(obs, w), expected)


@pytest.mark.parametrize('backup_entropy', [True, False])
def test_na_td_target_bootstraps_through_the_base_policy(backup_entropy):
    policy = TanhMLPPolicy()
    agent = na_agent(policy, gamma=0.9, backup_entropy=backup_entropy)
    batch = latent_batch(policy, batch_size=32)
    agent.update(batch)
    alpha = torch.tensor(0.3)
    state = agent._gen.get_state()
    target = agent.td_target(batch['reward'], batch['next_obs'], batch['terminated'], alpha)
    gen = torch.Generator()
    gen.set_state(state)
    with torch.no_grad():
        w, logp = agent.actor(batch['next_obs'], generator=gen)
        chunk = policy.sample(batch['next_obs'], w.reshape((32,) + policy.meta.noise_shape))
        next_q = agent.q_action_target(batch['next_obs'], agent.normalize_actions(chunk))
        next_v = next_q.min(0).values - (alpha * logp if backup_entropy else 0.0)
    expected = batch['reward'] + 0.9 * (1 - batch['terminated']) * next_v
    torch.testing.assert_close(target, expected)
    ended = batch['terminated'] == 1
    assert ended.any() and torch.equal(target[ended], batch['reward'][ended])


def test_na_delta_action_input_is_relative_to_the_joints():
    policy = TanhMLPPolicy()
    meta = policy.meta
    names = ('joint_pos/b', 'x', 'joint_pos/a', 'joint_pos/c', 'y')
    policy.meta = dataclasses.replace(meta, obs_names=names, action_names=('a', 'b', 'c'))
    agent = na_agent(policy, action_input='delta', delta_scale=0.5)
    obs = torch.randn(2, meta.obs_dim)
    joints = obs[:, [2, 0, 3]]
    chunk = joints.unsqueeze(1) + torch.arange(meta.horizon * 3.0).reshape(1, meta.horizon, 3)
    expected = (torch.arange(meta.horizon * 3.0) / 0.5).expand(2, -1)
    torch.testing.assert_close(agent.normalize_actions(chunk, obs), expected)
    with pytest.raises(ValueError, match='observations'):
        agent.normalize_actions(chunk)
    stats = agent.update(latent_batch(policy))
    assert np.isfinite(stats['critic_loss']) and np.isfinite(stats['q_noise_loss'])
    # Without a joint-position observation for every action there is nothing to subtract.
    policy.meta = dataclasses.replace(meta, obs_names=('a', 'b', 'c', 'd', 'e'),
                                      action_names=('a', 'b', 'c'))
    with pytest.raises(ValueError, match='joint_pos/<name>'):
        na_agent(policy, action_input='delta')
    with pytest.raises(ValueError, match='action_input'):
        NAConfig(action_input='relative')
    # A state trained on absolute inputs does not resume under 'delta' (and back).
    policy.meta = dataclasses.replace(meta, obs_names=names, action_names=('a', 'b', 'c'))
    state = na_agent(policy).state_dict()
    with pytest.raises(ValueError, match="trained on action_input 'absolute'"):
        na_agent(policy, action_input='delta').load_state_dict(state)
    with pytest.raises(ValueError, match="'delta'"):
        na_agent(policy).load_state_dict(agent.state_dict())
    na_agent(policy, action_input='delta', delta_scale=0.5).load_state_dict(agent.state_dict())


def test_state_trained_under_another_noise_bound_does_not_resume():
    policy = TanhMLPPolicy()
    state = na_agent(policy, action_magnitude=1.5).state_dict()
    with pytest.raises(ValueError, match='action_magnitude 1.5; this learner uses 1.0'):
        na_agent(policy, action_magnitude=1.0).load_state_dict(state)
    na_agent(policy, action_magnitude=1.5).load_state_dict(state)
    sac = DSRLSAC(policy.meta, config=SACConfig(hidden=SMALL, action_magnitude=2.0))
    with pytest.raises(ValueError, match='action_magnitude 2.0'):
        DSRLSAC(policy.meta, config=SACConfig(hidden=SMALL, action_magnitude=1.0)).load_state_dict(
            sac.state_dict())


def _bandit(policy, n=2048, seed=0):
    """One-step episodes from N(0, I) noise; reward = mean normalised command of joint 0."""
    gen = torch.Generator().manual_seed(seed)
    meta = policy.meta
    obs = torch.randn(n, meta.obs_dim, generator=gen)
    noise = torch.randn((n,) + meta.noise_shape, generator=gen)
    low, high = torch.tensor(meta.action_low), torch.tensor(meta.action_high)

    def reward(chunk):
        return ((chunk - low) / (high - low) * 2 - 1)[..., 0].mean(-1)

    action = policy.sample(obs, noise)
    data = {'obs': obs, 'noise': noise, 'action': action, 'reward': reward(action),
            'next_obs': obs, 'terminated': torch.ones(n)}
    return data, reward


@pytest.mark.parametrize('algorithm', ['sac', 'na'])
def test_steering_improves_a_contextual_bandit_offline(algorithm):
    """DSRL learns, from N(0, I) rollouts alone, noise that makes the frozen policy do better."""
    policy = TanhMLPPolicy()
    data, reward = _bandit(policy)
    kwargs = {'hidden': SMALL, 'lr': 1e-3, 'gamma': 0.0, 'init_alpha': 0.01,
              'target_entropy': None}
    agent = (DSRLSAC(policy.meta, config=SACConfig(**kwargs)) if algorithm == 'sac'
             else DSRLNA(policy, config=NAConfig(**kwargs)))
    rng = np.random.default_rng(0)
    for _ in range(150):
        idx = torch.as_tensor(rng.integers(0, len(data['obs']), 64))
        agent.update({k: v[idx] for k, v in data.items()})
    test_obs = torch.randn(256, policy.meta.obs_dim, generator=torch.Generator().manual_seed(1))
    steered = reward(policy.sample(test_obs, torch.as_tensor(agent.act(test_obs, True))))
    base = reward(policy.sample(test_obs, torch.randn((256,) + policy.meta.noise_shape)))
    assert steered.mean() > base.mean() + 0.4


def test_na_learns_from_offline_batches_without_noise():
    policy = TanhMLPPolicy()
    agent = na_agent(policy)
    batch = latent_batch(policy)
    demo = {k: batch[k] for k in ('obs', 'action', 'reward', 'next_obs', 'terminated')}
    # Executed chunks from elsewhere (e.g. teleop) that the base policy would not produce.
    low = torch.tensor(policy.meta.action_low)
    high = torch.tensor(policy.meta.action_high)
    demo['action'] = low + torch.rand_like(batch['action']) * (high - low)
    stats = agent.update(demo)
    assert np.isfinite(stats['critic_loss']) and np.isfinite(stats['q_noise_loss'])
    with pytest.raises(ValueError):
        agent.update(dict(demo, action=demo['action'][:, :2]))


def test_hl_gauss_probs_are_histograms_whose_mean_is_the_value():
    support = torch.linspace(-10.0, 2.0, 49)
    values = torch.tensor([-9.0, -4.37, 0.0, 1.5, -30.0, 7.0])
    probs = hl_gauss_probs(values, support)
    assert probs.shape == (6, 49) and bool((probs >= 0).all())
    torch.testing.assert_close(probs.sum(-1), torch.ones(6))
    torch.testing.assert_close(probs[:4] @ support, values[:4], atol=1e-3, rtol=0)
    # outside the support: clamped to its ends (the mass sits at the first / last bins)
    assert float(probs[4] @ support) < -9.8 and float(probs[5] @ support) > 1.8
    assert int(probs[4].argmax()) == 0 and int(probs[5].argmax()) == 48
    # a narrower Gaussian puts more mass on the nearest bin
    assert hl_gauss_probs(values[:1], support, 0.3).max() > probs[0].max()


def test_critic_ensemble_with_a_support_returns_the_histogram_mean():
    support = torch.linspace(-5.0, 0.0, 11)
    critic = CriticEnsemble(7, 4, n=3, hidden=(16, 8), support=support)
    obs, act = torch.randn(5, 7), torch.randn(5, 4)
    logits = critic.logits(obs, act)
    assert logits.shape == (3, 5, 11)
    q = critic(obs, act)
    torch.testing.assert_close(q, logits.softmax(-1) @ support)
    assert bool(((q >= -5.0) & (q <= 0.0)).all())
    for i in range(3):  # member i is a plain MLP with 11 outputs
        out = critic.member(i)(torch.cat((obs, act), -1))
        torch.testing.assert_close(out.softmax(-1) @ support, q[i], atol=1e-5, rtol=1e-5)
    assert torch.equal(critic.state_dict()['support'], support)
    with pytest.raises(ValueError, match='increasing'):
        CriticEnsemble(7, 4, support=torch.tensor([1.0, 0.0]))


def test_na_hl_gauss_critic_fits_td_targets_and_resumes_only_with_its_support():
    policy = TanhMLPPolicy()
    agent = na_agent(policy, critic_loss='hl_gauss', value_min=-10.0, value_max=2.0,
                     value_bins=25, lr=3e-3)
    batch = latent_batch(policy, 64)
    batch['reward'] = -3.0 * torch.ones(64)  # terminal: the TD target is -3 for every row
    batch['terminated'] = torch.ones(64)
    first = agent.update(batch)
    assert first['value_clipped'] == 0.0
    for _ in range(150):
        last = agent.update(batch)
    assert last['critic_loss'] < first['critic_loss']
    obs = torch.as_tensor(batch['obs'])
    q = agent.q_action(obs, agent.normalize_actions(torch.as_tensor(batch['action'])))
    assert float((q.detach() + 3.0).abs().max()) < 0.5
    batch['reward'] = -50.0 * torch.ones(64)  # below value_min: clamped and counted
    assert agent.update(batch)['value_clipped'] == 1.0
    # a classification critic's outputs mean nothing to a regression one, or on another support
    state = agent.state_dict()
    with pytest.raises(ValueError, match="critic_loss 'hl_gauss'"):
        na_agent(policy).load_state_dict(state)
    with pytest.raises(ValueError, match="critic_loss 'mse'"):
        na_agent(policy, critic_loss='hl_gauss', value_min=-10.0, value_max=2.0,
                 value_bins=25).load_state_dict(na_agent(policy).state_dict())
    with pytest.raises(ValueError, match='value_min/max/bins'):
        na_agent(policy, critic_loss='hl_gauss', value_min=-20.0, value_max=2.0,
                 value_bins=25).load_state_dict(state)
    na_agent(policy, critic_loss='hl_gauss', value_min=-10.0, value_max=2.0,
             value_bins=25).load_state_dict(state)
    # a state saved before critic_loss existed (no such keys in its config) is an 'mse' one
    old = na_agent(policy).state_dict()
    for key in ('critic_loss', 'value_min', 'value_max', 'value_bins', 'hl_sigma'):
        del old['config'][key]
    na_agent(policy).load_state_dict(old)
    with pytest.raises(ValueError, match="trained with critic_loss 'mse'"):
        na_agent(policy, critic_loss='hl_gauss', value_min=-10.0, value_max=2.0,
                 value_bins=25).load_state_dict(old)


def test_na_normalizes_actions_with_policy_bounds():
    policy = TanhMLPPolicy()
    agent = na_agent(policy)
    meta = policy.meta
    low = torch.tensor(meta.action_low).expand(2, meta.horizon, -1)
    high = torch.tensor(meta.action_high).expand(2, meta.horizon, -1)
    assert torch.equal(agent.normalize_actions(low), -torch.ones(2, meta.noise_dim))
    assert torch.equal(agent.normalize_actions(high), torch.ones(2, meta.noise_dim))
    assert agent.act(np.zeros(meta.obs_dim)).shape == meta.noise_shape
    with pytest.raises(ValueError):
        DSRLNA(policy, meta.obs_dim + 1, NAConfig(hidden=SMALL))


# ---------------------------------------------------------------------------------------------
# state_dict round trips


def _make_sac():
    return SAC(6, 4, SACConfig(hidden=SMALL, seed=0)), [sac_batch(6, 4, 64, seed=s)
                                                         for s in range(8)]


def _make_dsrl_sac():
    policy = TanhMLPPolicy()
    agent = DSRLSAC(policy.meta, config=SACConfig(hidden=SMALL, seed=0))
    return agent, [latent_batch(policy, 64, seed=s) for s in range(8)]


def _make_na():
    policy = TanhMLPPolicy()
    agent = na_agent(policy, n_distill=2, distill_actor_fraction=0.25)
    return agent, [latent_batch(policy, 64, seed=s) for s in range(8)]


def _make_na_hl_gauss():
    policy = TanhMLPPolicy()
    agent = na_agent(policy, critic_loss='hl_gauss', value_min=-10.0, value_max=2.0,
                     value_bins=25, pool_noises=4)
    return agent, [latent_batch(policy, 64, seed=s) for s in range(8)]


@pytest.mark.parametrize('make', [_make_sac, _make_dsrl_sac, _make_na, _make_na_hl_gauss])
def test_state_dict_round_trip_continues_identically(make):
    agent, batches = make()
    for b in batches[:4]:
        agent.update(b)
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    cont = [agent.update(b) for b in batches[4:]]
    params = [p.detach().clone() for p in agent.actor.parameters()]
    fresh, _ = make()
    fresh.config.seed = 123  # the seed is part of the loaded state, not of the new object
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    resumed = [fresh.update(b) for b in batches[4:]]
    assert cont == resumed
    for p, q in zip(params, fresh.actor.parameters()):
        assert torch.equal(p, q)
    assert fresh.num_updates == agent.num_updates == 8
    obs = batches[0]['obs'][:3]
    assert np.array_equal(agent.act(obs), fresh.act(obs))


def test_state_from_another_device_kind_resumes_with_seeded_generators():
    agent, batches = _make_na()
    for b in batches[:2]:
        agent.update(b)
    state = agent.state_dict()
    state['rng'] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state is 16 bytes
    fresh, _ = _make_na()
    with pytest.warns(RuntimeWarning, match='rng state not restored.*freshly seeded'):
        fresh.load_state_dict(state)
    assert fresh.num_updates == 2
    for p, q in zip(agent.actor.parameters(), fresh.actor.parameters()):
        assert torch.equal(p, q)
    assert all(math.isfinite(v) for v in fresh.update(batches[2]).values())
    state['rng'] = torch.zeros(5056, dtype=torch.uint8)  # a CPU-sized state, damaged
    with pytest.raises(RuntimeError, match='Invalid mt19937 state'):
        _make_na()[0].load_state_dict(state)
    state['rng'] = torch.zeros(5056)
    with pytest.raises(ValueError, match='rng state must be bytes'):
        _make_na()[0].load_state_dict(state)


def test_state_dict_rejects_other_algorithm_or_shape():
    sac, _ = _make_sac()
    other = SAC(6, 5, SACConfig(hidden=SMALL))
    with pytest.raises(ValueError):
        other.load_state_dict(sac.state_dict())
    na, _ = _make_na()
    with pytest.raises(ValueError):
        na.load_state_dict(sac.state_dict())


def test_actor_state_dict_transfer():
    a, _ = _make_sac()
    b = SAC(6, 4, SACConfig(hidden=SMALL, seed=9))
    obs = torch.randn(5, 6)
    assert not np.array_equal(a.act(obs, True), b.act(obs, True))
    b.load_actor_state_dict(a.actor_state_dict())
    assert np.array_equal(a.act(obs, True), b.act(obs, True))


# ---------------------------------------------------------------------------------------------
# replay buffer


def fill(buffer, n, start=0, robot_id=0):
    """Add ``n`` transitions whose every entry encodes its index ``i`` (for consistency checks)."""
    for i in range(start, start + n):
        buffer.add(np.full(buffer.obs_dim, i, np.float32), np.full(buffer.noise_shape, -i),
                   np.full(buffer.action_shape, 2 * i), float(i),
                   np.full(buffer.obs_dim, i + 1, np.float32), i % 3 == 0, i % 5 == 0,
                   actor_version=i // 2, robot_id=robot_id)


def stored_indices(buffer):
    return buffer._chronological()['reward'].astype(int).tolist()


def test_buffer_capacity_wrap_and_sample_types():
    buf = ReplayBuffer(3, (2, 2), (2, 2), capacity=5)
    fill(buf, 7)
    assert len(buf) == 5 and buf.total_added == 7
    assert stored_indices(buf) == [2, 3, 4, 5, 6]
    batch = buf.sample(32, np.random.default_rng(0))
    assert batch['obs'].shape == (32, 3) and batch['noise'].shape == (32, 2, 2)
    assert batch['terminated'].dtype == torch.float32
    assert batch['actor_version'].dtype == torch.int64
    i = batch['reward']
    assert torch.equal(batch['obs'][:, 0], i) and torch.equal(batch['next_obs'][:, 0], i + 1)
    assert torch.equal(batch['action'][:, 0, 0], 2 * i)
    assert torch.equal(batch['terminated'], (i.long() % 3 == 0).float())
    assert set(i.long().tolist()) <= {2, 3, 4, 5, 6}
    buf.add_batch(np.zeros((12, 3)), np.zeros((12, 2, 2)), np.zeros((12, 2, 2)), np.arange(12),
                  np.zeros((12, 3)), np.zeros(12, bool))
    assert len(buf) == 5 and stored_indices(buf) == [7, 8, 9, 10, 11]
    with pytest.raises(ValueError):
        buf.add_batch(np.zeros((2, 4)), None, np.zeros((2, 2, 2)), np.zeros(2), np.zeros((2, 3)),
                      np.zeros(2))
    with pytest.raises(ValueError):
        ReplayBuffer(3, (1,), (1,), 5).sample(1, np.random.default_rng(0))


def test_buffer_save_load_round_trip(tmp_path):
    buf = ReplayBuffer(3, (4, 2), (4, 2), capacity=10)
    fill(buf, 13, robot_id=2)  # wrapped
    path = tmp_path / 'replay.npz'
    buf.save(path)
    assert os.listdir(tmp_path) == ['replay.npz']  # no temporary file left behind
    other = ReplayBuffer(3, (4, 2), (4, 2), capacity=10)
    other.load(path)
    assert len(other) == 10 and other.total_added == 13
    a, b = buf._chronological(), other._chronological()
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype, k
    fill(other, 1, start=13)  # continues after the newest
    assert stored_indices(other)[-2:] == [12, 13]
    small = ReplayBuffer(3, (4, 2), (4, 2), capacity=4)
    small.load(path)
    assert stored_indices(small) == [9, 10, 11, 12]


def test_buffer_load_rejects_mismatch_and_corruption(tmp_path):
    buf = ReplayBuffer(3, (4, 2), (4, 2), capacity=10)
    fill(buf, 6)
    path = tmp_path / 'replay.npz'
    buf.save(path)
    for wrong in (ReplayBuffer(4, (4, 2), (4, 2), 10), ReplayBuffer(3, (2, 4), (4, 2), 10),
                  ReplayBuffer(3, (4, 2), (4, 3), 10)):
        with pytest.raises(ValueError, match='shape'):
            wrong.load(path)
    data = bytearray(path.read_bytes())
    truncated = tmp_path / 'truncated.npz'
    truncated.write_bytes(bytes(data[:len(data) // 2]))
    flipped = tmp_path / 'flipped.npz'
    data[len(data) // 3] ^= 0xFF
    flipped.write_bytes(bytes(data))
    garbage = tmp_path / 'garbage.npz'
    garbage.write_bytes(b'not a zip file at all' * 10)
    for bad in (truncated, flipped, garbage):
        with pytest.raises(ValueError):
            buf.load(bad)
    missing_field = tmp_path / 'missing.npz'
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k != 'robot_id'}
    np.savez(missing_field, **arrays)
    with pytest.raises(ValueError, match='fields'):
        buf.load(missing_field)
    arrays['robot_id'] = np.zeros(6, np.int64)
    arrays['reward'] = arrays['reward'].copy()
    arrays['reward'][0] = np.nan
    nan_file = tmp_path / 'nan.npz'
    np.savez(nan_file, **arrays)
    with pytest.raises(ValueError, match='NaN'):
        buf.load(nan_file)
    assert stored_indices(buf) == list(range(6))  # a failed load leaves the contents alone


def test_buffer_concurrent_insert_and_sample():
    buf = ReplayBuffer(4, (3, 2), (3, 2), capacity=500)
    n_total = 3000
    errors: list[str] = []
    done = threading.Event()

    def writer():
        try:
            fill(buf, n_total)
        except Exception as exc:  # noqa: B902 - report any failure to the main thread
            errors.append(repr(exc))
        finally:
            done.set()

    def sampler():
        rng = np.random.default_rng(1)
        last = 0
        try:
            while not done.is_set() or last < 500:
                size = len(buf)
                if size < last or size > 500:
                    errors.append(f'size went from {last} to {size}')
                last = size
                if size == 0:
                    continue
                b = buf.sample(64, rng)
                i = b['reward']
                if not (torch.equal(b['obs'], i[:, None].expand(-1, 4))
                        and torch.equal(b['next_obs'][:, 0], i + 1)
                        and torch.equal(b['noise'][:, 2, 1], -i)
                        and torch.equal(b['actor_version'], i.long() // 2)):
                    errors.append('torn transition sampled')
        except Exception as exc:  # noqa: B902
            errors.append(repr(exc))

    threads = [threading.Thread(target=writer), threading.Thread(target=sampler)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(buf) == 500 and buf.total_added == n_total
    assert stored_indices(buf) == list(range(n_total - 500, n_total))


def test_mixed_sampling_ratio():
    online = ReplayBuffer(2, (1,), (1,), 50)
    offline = ReplayBuffer(2, (1,), (1,), 50)
    rng = np.random.default_rng(0)
    fill(offline, 10, robot_id=7)
    assert torch.all(sample_mixed(online, offline, 0.25, 16, rng)['robot_id'] == 7)
    fill(online, 10, robot_id=1)
    sampler = MixedSampler(online, offline, 0.25)
    batch = sampler.sample(16, rng)
    assert batch['obs'].shape == (16, 2)
    assert int((batch['robot_id'] == 7).sum()) == 4 and int((batch['robot_id'] == 1).sum()) == 12
    # shuffled together: over many batches the offline rows land at every position, so the
    # first rows of a batch (what DSRL-NA's distillation pool takes) are not all offline ones
    firsts = torch.stack([sampler.sample(16, rng)['robot_id'][:4] for _ in range(200)])
    assert 0.15 < float((firsts == 7).float().mean()) < 0.35
    b = sampler.sample(16, rng)  # rows stay whole: every field permuted alike
    assert torch.equal(b['obs'][:, 0], b['reward']) and torch.equal(b['next_obs'][:, 1],
                                                                    b['reward'] + 1)
    assert torch.equal(b['action'][:, 0], 2 * b['reward'])
    assert int((sample_mixed(online, offline, 0.0, 16, rng)['robot_id'] == 7).sum()) == 0
    with pytest.raises(ValueError):
        MixedSampler(online, ReplayBuffer(3, (1,), (1,), 5), 0.5)
    with pytest.raises(ValueError):
        sample_mixed(online, offline, 1.5, 16, rng)


# ---------------------------------------------------------------------------------------------
# serialisation


def test_pack_unpack_round_trip():
    agent, _ = _make_na()
    sd = agent.actor_state_dict()
    payload, digest, tag = pack_actor(sd, 42, KEY)
    assert isinstance(payload, bytes) and len(digest) == 64 and len(tag) == 64
    out = unpack_actor(payload, digest, tag, 42, KEY, expected_shapes=actor_shapes(sd))
    assert out.keys() == sd.keys()
    for k in sd:
        assert torch.equal(out[k], sd[k])
    agent.load_actor_state_dict(out)


def _rejected(reason, *args, **kwargs):
    with pytest.raises(WeightsRejected) as info:
        unpack_actor(*args, **kwargs)
    assert info.value.reason.startswith(reason), info.value.reason


def test_unpack_rejects_forged_or_tampered_weights():
    sd = TanhGaussianActor(4, 6, SMALL).state_dict()
    payload, digest, tag = pack_actor(sd, 7, KEY)
    # Forged tags: wrong key, wrong version (replay of an old message), random.
    _rejected('bad tag', payload, digest, pack_actor(sd, 7, b'other key')[2], 7, KEY)
    _rejected('bad tag', payload, digest, tag, 8, KEY)
    _rejected('bad tag', payload, digest, '0' * 64, 7, KEY)
    _rejected('bad tag', payload, digest, 'ä' * 64, 7, KEY)
    # Tampered payload: the hash catches it; recomputing the hash leaves the tag to catch it.
    tampered = bytearray(payload)
    tampered[-3] ^= 0x01
    _rejected('bad hash', bytes(tampered), digest, tag, 7, KEY)
    _rejected('bad tag', bytes(tampered), payload_sha256(bytes(tampered)), tag, 7, KEY)
    # Authentic but not safetensors (a sender with the key that sends rubbish).
    junk = b'\x00' * 40
    _rejected('bad safetensors', junk, payload_sha256(junk), hmac_tag(junk, 7, KEY), 7, KEY)
    _rejected('bad version', payload, digest, tag, -1, KEY)


def test_unpack_rejects_wrong_shapes_and_non_finite():
    sd = TanhGaussianActor(4, 6, SMALL).state_dict()
    expected = actor_shapes(TanhGaussianActor(4, 8, SMALL).state_dict())
    payload, digest, tag = pack_actor(sd, 1, KEY)
    _rejected('shape mismatch', payload, digest, tag, 1, KEY, expected_shapes=expected)
    fewer = dict(actor_shapes(sd))
    fewer.pop('net.0.bias')
    _rejected('shape mismatch', payload, digest, tag, 1, KEY, expected_shapes=fewer)
    bad = dict(sd)
    bad['net.0.bias'] = bad['net.0.bias'].clone()
    bad['net.0.bias'][0] = float('inf')
    _rejected('non-finite', *pack_actor(bad, 1, KEY), 1, KEY)
    with pytest.raises(ValueError):
        pack_actor(sd, 1, b'')


# ---------------------------------------------------------------------------------------------
# peer check


@pytest.mark.slow
def test_sac_learns_pendulum():
    """Our SAC on Pendulum-v1: random play scores about -1200; 5k steps of SAC beat -400."""
    from dsrl_core.bench.pendulum import run
    result = run(steps=5000, seed=0, warmup=1000, eval_every=5000, eval_episodes=10, log=False)
    assert result['final_mean_return'] > -400.0


def test_kl_to_prior_regularises_towards_the_base_noise():
    from dsrl_core.rl.sac import prior_log_prob
    w = torch.randn(5, 12)
    want = torch.distributions.Normal(0.0, 1.0).log_prob(w).sum(-1)
    torch.testing.assert_close(prior_log_prob(w), want)
    # With a flat critic (reward 0 everywhere) the KL-regularised actor drifts towards N(0, I)
    # (mean 0, std ~1 before the squash), the entropy-regularised one towards the widest spread.
    rng = np.random.default_rng(0)
    batch = {'obs': rng.standard_normal((64, 3)).astype(np.float32),
             'action': rng.uniform(-1, 1, (64, 2)).astype(np.float32),
             'reward': np.zeros(64, np.float32),
             'next_obs': rng.standard_normal((64, 3)).astype(np.float32),
             'terminated': np.zeros(64, np.float32)}
    spread = {}
    for kl in (True, False):
        sac = SAC(3, 2, SACConfig(hidden=(32,), kl_to_prior=kl, action_magnitude=3.0,
                                  init_alpha=1.0, target_entropy=100.0,  # alpha only rises
                                  lr=3e-3, seed=0))
        for _ in range(300):
            stats = sac.update(batch)
        assert all(np.isfinite(v) for v in stats.values())
        a = sac.act(np.zeros((2000, 3), np.float32))
        spread[kl] = float(np.std(a))
    # N(0, 1) squashed by 3 tanh(u / ...) keeps most mass inside +-2; max entropy pushes outwards
    assert 0.7 < spread[True] < 1.3 < spread[False], spread
