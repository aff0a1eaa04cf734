"""
The learners and the base policy on a CUDA device (``device: cuda`` in the learner's YAML).

Skipped where torch sees no CUDA device (CI has none); run them on a GPU machine with
``pytest src/dsrl_core/test/test_cuda.py``.
"""

import dataclasses
import math
import warnings

from dsrl_core.bench.steering import BenchConfig, run_method
from dsrl_core.policy.base import load_plugin
from dsrl_core.policy.diffusion import load_policy
from dsrl_core.rl import checkpoint as ck
from dsrl_core.rl import ReplayBuffer
from dsrl_core.rl.learner_params import LearnerNodeParams
from dsrl_core.rl.serialize import pack_actor
from dsrl_core.rl.trainer import build_algorithm, check_transition, Trainer, Transition
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')

SMALL = {'hidden': (32, 32), 'batch_size': 16, 'utd_ratio': 2, 'warmup_transitions': 5}


def fill(trainer, n, seed=0):
    """Add ``n`` checked transitions of the shipped policy's shapes, as the node does."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        t = Transition(robot_id='arm0', episode_id=1, obs=rng.normal(size=8),
                       next_obs=rng.normal(size=8), noise=rng.normal(size=12),
                       action=rng.uniform(-1, 1, size=12), reward=-float(i % 3),
                       terminated=i == n - 1, truncated=False, actor_version=0, obs_dim=8,
                       chunk_length=4, action_dim=3, executed_steps=4)
        trainer.add('arm0', check_transition(t, 8, (4, 3), LearnerNodeParams().accepts_robot))


def _obs_noise(policy, n=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    obs = policy.obs_mean + policy.obs_std * torch.randn(n, policy.meta.obs_dim, generator=gen)
    return obs, torch.randn((n,) + policy.meta.noise_shape, generator=gen)


def test_diffusion_policy_runs_on_its_device_and_answers_on_the_callers():
    cpu, gpu = load_policy(), load_policy().to('cuda')
    obs, noise = _obs_noise(cpu)
    ref = cpu.sample(obs, noise)
    out = gpu.sample(obs, noise)  # CPU in, CPU out, computed on the GPU
    assert out.device.type == 'cpu'
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)
    assert gpu.sample(obs.cuda(), noise.cuda()).is_cuda
    assert cpu.sample(obs.cuda(), noise.cuda()).is_cuda  # CUDA in, CUDA out from a CPU policy
    assert gpu.sample(obs.numpy(), noise.numpy()).device.type == 'cpu'


@pytest.mark.parametrize('algorithm, extra', [
    ('dsrl_sac', {}), ('dsrl_na', {}),
    ('dsrl_na', {'critic_loss': 'hl_gauss', 'value_min': -20.0, 'value_bins': 11})])
def test_learner_trains_on_cuda_checkpoints_and_resumes_on_either_device(tmp_path, algorithm,
                                                                         extra):
    p = LearnerNodeParams(algorithm=algorithm, device='cuda', **SMALL, **extra)

    def make(params):
        base = load_plugin(params.policy_plugin)
        algo = build_algorithm(params, base)
        return Trainer(algo, ReplayBuffer(8, (4, 3), (4, 3), 100), params.utd_ratio,
                       params.warmup_transitions, params.batch_size, params.seed), base

    a, base = make(p)
    assert all(t.is_cuda for t in a.algorithm.actor.parameters())
    if algorithm == 'dsrl_na':  # NA decodes noise with the base policy: it moved to the GPU
        assert all(t.is_cuda for t in base.parameters())
    fill(a, 8)
    stats = a.train(6)
    assert a.num_updates == 6 and all(math.isfinite(v) for st in stats for v in st.values())
    actor = a.algorithm.actor_state_dict()  # what the policy node gets: CPU tensors
    assert all(t.device.type == 'cpu' for t in actor.values())
    assert pack_actor(actor, 1, b'k' * 32)
    noise = a.algorithm.act(np.zeros(8, np.float32), deterministic=True)
    assert isinstance(noise, np.ndarray) and noise.shape == (4, 3)
    ck.write_checkpoint(str(tmp_path), a.algorithm, a.buffer, a.info())
    path = ck.latest_checkpoint(str(tmp_path))

    b, _ = make(p)  # resume on the GPU: the same continuation
    b.restore_info(ck.read_checkpoint(path, b.algorithm, b.buffer))
    sa, sb = a.train(2), b.train(2)
    assert len(sa) == len(sb) == 2
    for x, y in zip(sa, sb):
        assert y == pytest.approx(x, rel=1e-5, abs=1e-6)

    c, _ = make(dataclasses.replace(p, device='cpu'))  # resume on a laptop
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        c.restore_info(ck.read_checkpoint(path, c.algorithm, c.buffer))
    assert any('freshly seeded' in str(w.message) for w in seen)
    assert c.num_updates == 6 and len(c.buffer) == 8
    for k, v in c.algorithm.actor_state_dict().items():
        torch.testing.assert_close(v, actor[k])
    assert all(math.isfinite(v) for st in c.train(2) for v in st.values())

    ck.write_checkpoint(str(tmp_path / 'laptop'), c.algorithm, c.buffer, c.info())
    d, _ = make(p)  # and back: a CPU checkpoint resumes on the GPU
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        d.restore_info(ck.read_checkpoint(ck.latest_checkpoint(str(tmp_path / 'laptop')),
                                          d.algorithm, d.buffer))
    assert any('freshly seeded' in str(w.message) for w in seen)
    assert d.num_updates == 8 and all(t.is_cuda for t in d.algorithm.actor.parameters())
    for k, v in d.algorithm.actor_state_dict().items():
        torch.testing.assert_close(v, c.algorithm.actor_state_dict()[k])
    assert all(math.isfinite(v) for st in d.train(2) for v in st.values())


def test_steering_bench_runs_on_cuda():
    policy = load_policy().to('cuda')
    cfg = BenchConfig(episodes=2, eval_every=2, eval_episodes=2, warmup=1, utd_na=2,
                      hidden=(64, 64), batch_size=32, threads=1, device='cuda',
                      stochastic_eval=False)
    r = run_method('dsrl_na', policy, cfg, seed=0, progress=False)
    assert [ep for ep, _ in r['curve']] == [0, 2] and r['updates'] > 0
    assert 'curve_stochastic' not in r


def test_update_rate_bench_on_cuda(capsys):
    from dsrl_core.bench.update_rate import main
    assert main(['--device', 'cuda', '--seconds', '0.05', '--hidden', '64', '64']) == 0
    out = capsys.readouterr().out
    assert torch.cuda.get_device_name() in out and 'updates/s' in out
