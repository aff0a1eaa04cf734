"""Learner core: params schema, weights key, transition checks, UTD accounting, checkpoints."""

import dataclasses
import json
import os
import pathlib

from dsrl_core.params import from_param_dict, param_names, ParamError
from dsrl_core.policy.base import load_plugin, PolicyMeta
from dsrl_core.rl import checkpoint as ck
from dsrl_core.rl import DSRLSAC, ReplayBuffer, SACConfig
from dsrl_core.rl.keys import resolve_key, WeightsKeyError
from dsrl_core.rl.learner_params import LearnerNodeParams
from dsrl_core.rl.trainer import (
    build_algorithm,
    check_transition,
    EpisodeStats,
    Trainer,
    Transition,
    TransitionRejected,
)
import numpy as np
import pytest
import torch
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
META = PolicyMeta(obs_dim=8, act_dim=3, horizon=4, action_low=(-1.6, -2.4, -2.4),
                  action_high=(1.6, 2.4, 2.4), control_hz=10.0)
SMALL = {'hidden': (32, 32), 'batch_size': 16, 'utd_ratio': 2, 'warmup_transitions': 5}

torch.set_num_threads(1)


def transition(**kw):
    t = {'robot_id': 'arm0', 'episode_id': 1, 'obs': np.zeros(8), 'next_obs': np.ones(8),
         'noise': np.zeros(12), 'action': np.zeros(12), 'reward': -1.0, 'terminated': False,
         'truncated': False, 'actor_version': 0, 'obs_dim': 8, 'chunk_length': 4,
         'action_dim': 3, 'executed_steps': 4}
    t.update(kw)
    return Transition(**t)


def fill(trainer, n, seed=0):
    rng = np.random.default_rng(seed)
    p = LearnerNodeParams()
    for i in range(n):
        arrays = check_transition(transition(obs=rng.normal(size=8), next_obs=rng.normal(size=8),
                                             noise=rng.normal(size=12), reward=-float(i % 3)),
                                  8, (4, 3), p.accepts_robot)
        trainer.add('arm0', arrays)


def make_trainer(params=None, capacity=1000):
    p = params or LearnerNodeParams(**SMALL)
    algo = DSRLSAC(META, config=p.algo_config())
    buf = ReplayBuffer(8, (4, 3), (4, 3), capacity)
    return Trainer(algo, buf, p.utd_ratio, p.warmup_transitions, p.batch_size, p.seed)


def test_yaml_block_equals_schema():
    doc = yaml.safe_load((ROOT / 'config' / 'dsrl.yaml').read_text())
    block = doc['learner_node']['ros__parameters']
    assert sorted(block) == sorted(param_names(LearnerNodeParams))
    assert from_param_dict(LearnerNodeParams, block, partial=False) == LearnerNodeParams()


def test_offline_demo_rewards_equal_the_reward_nodes():
    doc = yaml.safe_load((ROOT / 'config' / 'dsrl.yaml').read_text())
    learner = doc['learner_node']['ros__parameters']
    reward = doc['reward_node']['ros__parameters']
    assert learner['offline_step_reward'] == reward['step_reward']
    assert learner['offline_success_reward'] == reward['success_reward']


@pytest.mark.parametrize('bad, match', [
    ({'algorithm': 'ppo'}, "algorithm must be one of \\('dsrl_sac', 'dsrl_na'\\)"),
    ({'utd_ratio': 0}, 'utd_ratio must be in'),
    ({'warmup_transitions': 10, 'buffer_capacity': 5}, 'warmup_transitions must be in'),
    ({'robot_ids': ['']}, 'robot_ids must list non-empty ids'),
    ({'hidden': []}, 'hidden must be a non-empty list'),
    ({'policy_plugin': 'nocolon'}, 'policy_plugin must look like'),
    ({'episode_status_topic': '/{robot}/episode_status'}, 'needs explicit robot_ids'),
    ({'offline_ratio': 1.5}, 'offline_ratio must be in'),
    ({'offline_ratio': float('nan')}, 'offline_ratio must be a finite number'),
    ({'offline_step_reward': float('nan')}, 'offline_step_reward must be a finite number'),
    ({'offline_success_reward': float('inf')}, 'offline_success_reward must be a finite'),
    ({'algorithm': 'dsrl_sac', 'offline_demos': 'd.npz'}, 'offline_demos needs algorithm dsrl_na'),
    ({'critic_loss': 'huber'}, "critic_loss must be 'mse' or 'hl_gauss'"),
    ({'value_min': 5.0}, 'value_min must be < value_max'),
    ({'value_bins': 1}, 'value_bins must be >= 3'),
    ({'value_max': float('nan')}, 'value_min must be < value_max'),
    ({'algorithm': 'dsrl_sac', 'critic_loss': 'hl_gauss'},
     'critic_loss .* needs algorithm dsrl_na'),
    ({'device': 'gpu'}, "device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
    ({'device': 'meta'}, "device must be 'cpu', 'cuda' or 'cuda:N', got 'meta'"),
    ({'device': 'cuda:99'}, "device 'cuda:99', but"),
])
def test_params_reject_bad_values(bad, match):
    with pytest.raises(ParamError, match=match):
        from_param_dict(LearnerNodeParams, bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has a CUDA device')
def test_params_name_a_missing_cuda_device():
    with pytest.raises(ParamError, match="device 'cuda', but torch .* sees no CUDA device"):
        LearnerNodeParams(device='cuda')


def test_params_dirs_and_robots(tmp_path):
    p = LearnerNodeParams(robot_ids=('arm0', 'arm1'))
    assert p.accepts_robot('arm1') and not p.accepts_robot('arm2') and not p.accepts_robot('')
    assert p.status_topics() == ['episode_status']
    multi = LearnerNodeParams(robot_ids=('arm0', 'arm1'),
                              episode_status_topic='/{robot}/episode_status')
    assert multi.status_topics() == ['/arm0/episode_status', '/arm1/episode_status']
    data, ckpt, tb = p.resolved_dirs({'DSRL_DATA': str(tmp_path)})
    assert (data, ckpt, tb) == (str(tmp_path), str(tmp_path / 'checkpoints'),
                                str(tmp_path / 'logs' / 'tensorboard' / 'learner'))


def test_key_resolution(tmp_path):
    good = tmp_path / 'k'
    good.write_text('0123456789abcdef0123\n')
    assert resolve_key(str(good), False, '', {})[0] == b'0123456789abcdef0123'
    assert resolve_key('', False, '', {'DSRL_WEIGHTS_KEY_FILE': str(good)})[0] == \
        b'0123456789abcdef0123'
    assert resolve_key('', False, '', {'DSRL_WEIGHTS_KEY': 'x' * 20})[0] == b'x' * 20
    with pytest.raises(WeightsKeyError, match='only sim mode may generate'):
        resolve_key('', False, str(tmp_path / 'gen'), {})
    with pytest.raises(WeightsKeyError, match='cannot read weights key file'):
        resolve_key(str(tmp_path / 'absent'), False, '', {})
    (tmp_path / 'short').write_text('abc')
    with pytest.raises(WeightsKeyError, match='3 bytes'):
        resolve_key(str(tmp_path / 'short'), True, '', {})
    # sim: a named but missing file is created, then reused; without a name the default is used
    key, where = resolve_key(str(tmp_path / 'run' / 'sim.key'), True, '', {})
    assert len(key) == 64 and 'generated' in where
    assert os.stat(tmp_path / 'run' / 'sim.key').st_mode & 0o777 == 0o600
    assert resolve_key(str(tmp_path / 'run' / 'sim.key'), True, '', {})[0] == key
    other, _ = resolve_key('', True, str(tmp_path / 'default.key'), {})
    assert other != key and (tmp_path / 'default.key').read_bytes().strip() == other


@pytest.mark.parametrize('kw, match', [
    ({'obs': np.zeros(7)}, 'obs has 7 values, expected 8'),
    ({'noise': np.zeros(11)}, 'noise has 11 values, expected 12'),
    ({'action': np.r_[np.zeros(11), np.nan]}, 'action holds NaN'),
    ({'next_obs': np.r_[np.zeros(7), np.inf]}, 'next_obs holds NaN'),
    ({'reward': float('nan')}, 'reward is not finite'),
    ({'obs_dim': 9}, 'declared obs_dim/chunk_length/action_dim 9/4/3'),
    ({'robot_id': ''}, "robot_id '' is not accepted"),
    ({'executed_steps': 5}, 'executed_steps 5 not in'),
])
def test_check_transition_rejects(kw, match):
    with pytest.raises(TransitionRejected, match=match):
        check_transition(transition(**kw), 8, (4, 3), LearnerNodeParams().accepts_robot)


def test_check_transition_accepts_and_reshapes():
    out = check_transition(transition(noise=np.arange(12.0)), 8, (4, 3),
                           LearnerNodeParams().accepts_robot)
    assert out['noise'].shape == (4, 3) and out['noise'][1, 0] == 3.0
    assert out['obs'].dtype == np.float32


def test_utd_accounting_warmup_and_idle():
    tr = make_trainer()
    fill(tr, 4)
    assert tr.updates_due() == 0 and tr.train(100) == []  # before warm-up
    fill(tr, 1)
    assert tr.updates_due() == 2
    assert len(tr.train(100)) == 2 and tr.num_updates == 2
    assert tr.updates_due() == 0 and tr.train(100) == []  # idle without new data
    fill(tr, 3)
    assert tr.updates_due() == 6 and len(tr.train(4)) == 4 and tr.updates_due() == 2
    stats = tr.train(10)
    assert len(stats) == 2 and {'critic_loss', 'actor_loss', 'alpha', 'q_mean'} <= set(stats[0])


def test_trainer_mixes_offline_transitions_into_every_batch():
    tr = make_trainer()
    offline = ReplayBuffer(8, (4, 3), (4, 3), 10)
    offline.add(np.full(8, 7.0), None, np.zeros((4, 3)), -4.0, np.zeros(8), True)
    with pytest.raises(ValueError, match='other shapes'):
        tr.set_offline(ReplayBuffer(9, (4, 3), (4, 3), 10), 0.5)
    tr.set_offline(offline, 0.25)
    seen = []
    real_update = tr.algorithm.update
    tr.algorithm.update = lambda batch: seen.append(batch['obs'][:, 0].clone()) or real_update(
        batch)
    fill(tr, 5)
    assert len(tr.train(100)) == 2 and len(seen) == 2
    for col in seen:  # batch 16: 4 offline rows (obs 7.0) and 12 online, shuffled together
        assert int((col == 7.0).sum()) == 4


def test_flatten_roundtrip_keeps_types():
    state = {'a': torch.arange(3), 0: {'b': (1, 2.5, None, 'x')}, 'l': [torch.ones(2, 2), True]}
    tensors = {}
    tree = ck.flatten_state(state, tensors)
    back = ck.unflatten_state(json.loads(json.dumps(tree)), tensors)
    assert back[0]['b'] == (1, 2.5, None, 'x') and isinstance(back[0]['b'], tuple)
    assert torch.equal(back['a'], state['a']) and back['l'][1] is True
    with pytest.raises(TypeError, match='without pickle'):
        ck.flatten_state({'f': object()}, {})


@pytest.mark.parametrize('algorithm, extra', [
    ('dsrl_sac', {}), ('dsrl_na', {}),
    ('dsrl_na', {'critic_loss': 'hl_gauss', 'value_min': -20.0, 'value_bins': 11})])
def test_checkpoint_resume_is_exact(tmp_path, algorithm, extra):
    p = LearnerNodeParams(algorithm=algorithm, **SMALL, **extra)
    base = load_plugin(p.policy_plugin)

    def make():
        algo = build_algorithm(p, base)
        return Trainer(algo, ReplayBuffer(8, (4, 3), (4, 3), 100), p.utd_ratio,
                       p.warmup_transitions, p.batch_size, p.seed)

    a = make()
    if extra:
        assert a.algorithm.q_action.support.tolist() == torch.linspace(-20.0, 5.0, 11).tolist()
    fill(a, 8)
    a.train(6)
    path = ck.write_checkpoint(str(tmp_path), a.algorithm, a.buffer, a.info())
    b = make()
    info = ck.read_checkpoint(ck.latest_checkpoint(str(tmp_path)), b.algorithm, b.buffer)
    b.restore_info(info)
    assert info['num_updates'] == 6 == b.num_updates and len(b.buffer) == 8
    assert b.buffer.total_added == 8 and b.updates_due() == a.updates_due()
    sa, sb = a.train(2), b.train(2)
    assert sa == sb  # bit-identical continuation (weights, Adam, generators, batch sampling)
    assert os.path.basename(path).startswith('ckpt-0000000006-')


def test_checkpoint_rotation_and_damage(tmp_path):
    tr = make_trainer()
    fill(tr, 6)
    paths = []
    for _ in range(3):
        tr.train(1)
        paths.append(ck.write_checkpoint(str(tmp_path), tr.algorithm, tr.buffer, tr.info(),
                                         keep=2))
    assert ck.list_checkpoints(str(tmp_path)) == [os.path.basename(x) for x in paths[1:]]
    assert ck.latest_checkpoint(str(tmp_path)) == paths[2]
    (tmp_path / '.tmp-crashed').mkdir()  # a half-written checkpoint is never picked
    assert ck.latest_checkpoint(str(tmp_path)) == paths[2]
    with open(os.path.join(paths[2], 'algorithm.safetensors'), 'r+b') as fh:
        fh.write(b'garbage!')
    with pytest.raises(ck.CheckpointError, match='cannot read algorithm state'):
        ck.read_checkpoint(paths[2], make_trainer().algorithm, make_trainer().buffer)
    bigger = DSRLSAC(META, config=SACConfig(hidden=(64, 64)))
    with pytest.raises(ck.CheckpointError, match='does not fit this learner'):
        ck.read_checkpoint(paths[1], bigger, make_trainer().buffer)
    # trained under another noise bound: refused, with the reason
    other_bound = DSRLSAC(META, config=dataclasses.replace(
        make_trainer().algorithm.config, action_magnitude=2.5))
    with pytest.raises(ck.CheckpointError, match='action_magnitude'):
        ck.read_checkpoint(paths[1], other_bound, make_trainer().buffer)
    assert ck.latest_checkpoint(str(tmp_path / 'none')) is None


def test_episode_stats():
    st = EpisodeStats(window=3)
    assert np.isnan(st.success_rate())
    assert st.episode_end('arm0', 1, True, -3.0)
    assert not st.episode_end('arm0', 1, True, -3.0)  # repeated status of the same episode
    for i, ok in enumerate([False, False, True], start=2):
        st.episode_end('arm1' if i == 4 else 'arm0', i, ok, -5.0)
    assert st.success_rate() == pytest.approx(1 / 3) and st.finished == 4
    assert st.success_rate('arm0') == pytest.approx(1 / 3) and st.success_rate('arm1') == 1.0
    assert (st.count('arm0'), st.count('arm1'), st.count('arm9')) == (3, 1, 0)
    assert st.transition('arm0', 7, -1.0, False) is None
    assert st.transition('arm0', 7, -2.0, True) == -3.0
