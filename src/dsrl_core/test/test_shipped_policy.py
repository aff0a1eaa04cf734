"""The shipped BC checkpoint: loads, reproduces its golden actions, leaves room to steer."""

import dataclasses
import json
import pathlib

from dsrl_core.bench.steering import BenchConfig, make_agent, report, run_method
from dsrl_core.bench.steering import main as steering_main
from dsrl_core.evaluation import (
    EvalResult,
    evaluate,
    failure_summary,
    gaussian_noise_fn,
    zero_noise_fn,
)
from dsrl_core.policy import default_checkpoint
from dsrl_core.policy.diffusion import DiffusionPolicy, load_policy
from dsrl_core.sim.push_env import GOAL_RADIUS
import numpy as np
import pytest
import torch


def test_shipped_checkpoint_is_small_and_safetensors():
    d = default_checkpoint()
    files = {p.name: p.stat().st_size for p in d.iterdir()}
    assert set(files) == {'config.json', 'model.safetensors', 'golden.npz'}
    assert sum(files.values()) < 3 * 2**20
    cfg = json.loads((d / 'config.json').read_text())
    assert cfg['meta']['horizon'] == 4 and cfg['meta']['act_dim'] == 3
    assert cfg['diffusion']['ddim_steps'] <= 10


def test_shipped_checkpoint_reproduces_golden_actions():
    policy = load_policy()
    golden = np.load(pathlib.Path(default_checkpoint()) / 'golden.npz', allow_pickle=False)
    out = policy.sample(torch.from_numpy(golden['obs']), torch.from_numpy(golden['noise']))
    np.testing.assert_allclose(out.numpy(), golden['actions'], rtol=0, atol=1e-5)


def test_shipped_bc_policy_leaves_room_to_improve():
    policy = DiffusionPolicy.load(default_checkpoint())
    res = evaluate(policy, gaussian_noise_fn(policy.meta.noise_shape, 0), episodes=100)
    print(f'shipped BC success over 100 seeded episodes: {res.success_rate:.2f}')
    assert 0.3 <= res.success_rate <= 0.7


def test_shipped_checkpoint_was_trained_on_make_defaults_recipe():
    # 8 ordinary + 8 recovery demonstrations: the checkpoint records how many episodes and
    # samples it was trained on, and make_default's recipe gives exactly those
    from dsrl_core.policy import make_default
    from dsrl_core.sim.demos import collect_demos
    cfg = json.loads((default_checkpoint() / 'config.json').read_text())
    demos = collect_demos(n=make_default.N_DEMOS, seed=make_default.DEMO_SEED,
                          recovery=make_default.N_RECOVERY,
                          recovery_seed=make_default.RECOVERY_SEED)
    assert make_default.N_RECOVERY == 8 and cfg['extra']['episodes'] == 16
    assert len(demos['episode_ends']) == 16 and demos['obs'].shape[0] == cfg['extra']['samples']


def test_bc_reference_reports_random_and_zero_noise(tmp_path):
    torch.set_num_threads(1)
    policy = DiffusionPolicy.load(default_checkpoint())
    # on these 8 starts the mode and random noise differ (0.875 vs 0.50), so each rate is
    # checked against its own noise
    cfg = BenchConfig(episodes=2, eval_every=2, eval_episodes=8, threads=1)
    r = run_method('bc', policy, cfg, seed=0, progress=False)
    zero = evaluate(policy, zero_noise_fn(policy.meta.noise_shape), episodes=8)
    rand = evaluate(policy, gaussian_noise_fn(policy.meta.noise_shape, 0), episodes=8)
    assert zero.success_rate != rand.success_rate
    assert r['zero_noise_success'] == zero.success_rate
    assert r['curve'] == [(0, rand.success_rate), (2, rand.success_rate)]
    text = report([r], tmp_path)
    assert (f'bc: success with w ~ N(0, I) {rand.success_rate:.2f}; with w = 0 (the mode) '
            f'{zero.success_rate:.2f}') in text


def test_steering_loop_runs_and_keeps_base_policy_frozen(tmp_path):
    torch.set_num_threads(1)
    policy = DiffusionPolicy.load(default_checkpoint())
    before = [p.clone() for p in policy.parameters()]
    cfg = BenchConfig(episodes=3, eval_every=3, eval_episodes=4, warmup=1, utd=2, utd_na=1,
                      hidden=(32, 32), batch_size=16, threads=1)
    results = []
    for method in ('dsrl_sac', 'dsrl_na', 'sac_action'):
        r = run_method(method, policy, cfg, seed=0, progress=False)
        results.append(r)
        assert [ep for ep, _ in r['curve']] == [0, 3]
        assert all(0.0 <= sr <= 1.0 for _, sr in r['curve'])
        assert r['updates'] > 0 and len(r['train_success']) == 3
        # per-start outcomes of the deterministic evaluations agree with the curve
        assert [ep for ep, _ in r['eval_outcomes']] == [0, 3]
        for (_, sr), (_, bits), (_, dist) in zip(r['curve'], r['eval_outcomes'],
                                                 r['eval_failure_goal_dist']):
            assert len(bits) == 4 and set(bits) <= {'0', '1'}
            assert bits.count('1') / 4 == sr
            # the failed starts, with where their puck ended: outside the goal radius
            assert sorted(dist) == [i for i, b in enumerate(bits) if b == '0']
            assert all(d > GOAL_RADIUS for d in dist.values())
    assert all(torch.equal(b, p) for b, p in zip(before, policy.parameters()))
    text = report(results, tmp_path)
    na = results[1]
    failed = [i for i, b in enumerate(na['eval_outcomes'][-1][1]) if b == '0']
    assert f'seed 0: evaluation starts failed at episode 3 (index i = reset seed 10000 + i): ' \
           f'{failed}' in text
    if failed:
        assert 'where the puck ended (m from the goal centre; radius 0.05)' in text
    assert {'results.json', 'results.csv', 'table.txt', 'steering.png'} <= {
        f.name for f in tmp_path.iterdir()}


def test_steering_loop_mixes_offline_demonstrations_into_na_batches():
    torch.set_num_threads(1)
    policy = DiffusionPolicy.load(default_checkpoint())
    cfg = BenchConfig(episodes=2, eval_every=2, eval_episodes=2, warmup=1, utd_na=1,
                      hidden=(32, 32), batch_size=16, threads=1, offline_demos=2,
                      offline_ratio=0.5)
    r = run_method('dsrl_na', policy, cfg, seed=0, progress=False)
    assert 'curve_stochastic' in r and len(r['curve_stochastic']) == 2
    assert r['offline']['episodes'] == 2 and r['offline']['transitions'] >= 2
    assert r['updates'] > 0 and [ep for ep, _ in r['curve']] == [0, 2]
    # the other methods cannot use demonstrations (no noise): they run without them
    sac = run_method('dsrl_sac', policy, dataclasses.replace(cfg, stochastic_eval=False), seed=0,
                     progress=False)
    assert sac['offline'] is None and 'curve_stochastic' not in sac


def test_steering_bench_flags_reach_the_agents(monkeypatch):
    policy = DiffusionPolicy.load(default_checkpoint())
    cfg = BenchConfig(hidden=(16,), distill_target='mean', target_entropy=-3.0, tau=0.02)
    na = make_agent('dsrl_na', policy, cfg, seed=0)
    assert na.config.distill_target == 'mean' and na.target_entropy == -3.0
    assert na.config.tau == 0.02
    assert make_agent('dsrl_sac', policy, cfg, seed=0).target_entropy == -3.0
    seen = {}

    def capture(method, policy, cfg, seed, progress=True):
        seen['cfg'] = cfg
        raise KeyboardInterrupt  # stop before training

    monkeypatch.setattr('dsrl_core.bench.steering.run_method', capture)
    with pytest.raises(KeyboardInterrupt):
        steering_main(['--methods', 'dsrl_na', '--distill-target', 'mean', '--target-entropy',
                       '-2', '--offline-demos', '3', '--offline-ratio', '0.3', '--critic-loss',
                       'hl_gauss', '--value-range', '-90', '1', '--value-bins', '31',
                       '--no-stochastic-eval', '--out', 'x'])
    c = seen['cfg']
    assert (c.distill_target, c.target_entropy, c.offline_demos, c.offline_ratio) == (
        'mean', -2.0, 3, 0.3)
    assert (c.critic_loss, c.value_min, c.value_max, c.value_bins) == ('hl_gauss', -90.0, 1.0, 31)
    assert (c.stochastic_eval, c.device) == (False, 'cpu')
    hl = make_agent('dsrl_na', policy, dataclasses.replace(
        cfg, critic_loss=c.critic_loss, value_min=c.value_min, value_max=c.value_max,
        value_bins=c.value_bins), seed=0)
    assert hl.q_action.support.tolist() == torch.linspace(-90.0, 1.0, 31).tolist()


def test_evaluate_with_the_actor_of_a_learner_checkpoint(tmp_path, capsys):
    from dsrl_core.policy.evaluate import learner_noise_fn, main
    from dsrl_core.rl import checkpoint as ck
    from dsrl_core.rl.buffer import ReplayBuffer
    from dsrl_core.rl.sac import DSRLSAC, SACConfig
    policy = load_policy()
    meta = policy.meta
    algo = DSRLSAC(meta, config=SACConfig(hidden=(32, 32), seed=3))
    algo.set_obs_normalizer(policy.obs_mean, policy.obs_std)
    ck.write_checkpoint(str(tmp_path / 'ckpts'), algo, ReplayBuffer(8, (4, 3), (4, 3), 10), {})
    fn, what = learner_noise_fn(str(tmp_path / 'ckpts'), meta)
    obs = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    np.testing.assert_allclose(fn(obs), algo.act(obs, deterministic=True), atol=1e-6)
    assert 'deterministic DSRLSAC actor' in what and '0 updates' in what
    assert main(['--episodes', '2', '--threads', '1', '--learner-checkpoint',
                 str(tmp_path / 'ckpts')]) == 0
    out = capsys.readouterr().out
    assert 'with the deterministic DSRLSAC actor' in out
    assert 'failures: no failed episode' in out or 'near misses' in out
    assert main(['--episodes', '2', '--learner-checkpoint', str(tmp_path / 'none')]) == 2
    (tmp_path / 'empty').mkdir()
    assert main(['--episodes', '2', '--learner-checkpoint', str(tmp_path / 'empty')]) == 2
    assert 'no learner checkpoint in' in capsys.readouterr().out


def test_diagnose_runs_small(capsys):
    from dsrl_core.bench.diagnose import first_chunk_leverage, main, start_difficulty
    lev = first_chunk_leverage(load_policy(), starts=1, candidates=2, repeats=2)
    assert lev.shape == (1, 2) and ((lev >= 0) & (lev <= 1)).all()
    assert main(['--starts', '1', '--candidates', '2', '--repeats', '1', '--episodes', '4',
                 '--draws', '2', '--eval-starts', '3']) == 0
    out = capsys.readouterr().out
    assert '[1] first-chunk leverage over 1 starts' in out
    assert 'classifier on (noise)' in out and 'classifier on (action)' in out
    assert '[3] BC success per evaluation start' in out and 'of 3' in out
    hard = start_difficulty(load_policy(), draws=2, starts=3)
    assert hard.shape == (2, 3) and hard.dtype == bool
    # the same noise streams as the CLI: the printed rates are these
    assert ' '.join(f'{i}:{v:.2f}' for i, v in enumerate(hard.mean(0))) in out


def test_failure_summary_separates_near_misses():
    res = EvalResult(success=np.array([True, False, False, True, False]),
                     returns=np.zeros(5), lengths=np.zeros(5, np.int64), frames=[],
                     goal_dist=np.array([0.01, 0.052, 0.30, 0.02, 0.099]))
    assert failure_summary(res, 0.05, 100) == (
        '3 failed (2 near misses, ending within 0.10 m of the goal; index i = seed 100 + i): '
        '1 (0.052 m), 2 (0.300 m), 4 (0.099 m)')
    assert failure_summary(EvalResult(np.ones(2, bool), np.zeros(2), np.zeros(2, np.int64), [],
                                      np.zeros(2)), 0.05) == 'no failed episode'


def test_update_rate_bench_prints_one_rate_per_width(capsys):
    from dsrl_core.bench.update_rate import main
    torch.set_num_threads(1)
    for algorithm in ('dsrl_na', 'dsrl_sac'):
        assert main(['--algorithm', algorithm, '--seconds', '0.01', '--hidden', '16',
                     '--hidden', '8', '8', '--batch-size', '32']) == 0
        out = capsys.readouterr().out
        assert f'{algorithm} update(), batch 32, on CPU, 1 torch thread(s):' in out
        rates = [float(line.split(':')[1].split()[0]) for line in out.splitlines()
                 if 'updates/s' in line]
        assert len(rates) == 2 and all(r > 0 for r in rates)
        assert 'hidden                 16:' in out and 'hidden              8 x 8:' in out
    with pytest.raises(SystemExit):
        main(['--seconds', '0'])
    with pytest.raises(SystemExit):
        main(['--device', 'gpu'])
    assert "device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'" in capsys.readouterr().err
