"""Demonstrations cut into offline chunk transitions (dsrl_core.rl.offline)."""

from dsrl_core.rl import demos_to_buffer, MixedSampler, ReplayBuffer
from dsrl_core.rl.offline import load_offline_demos
from dsrl_core.sim.demos import collect_demos, save_demos
import numpy as np
import pytest


def _demos(lengths, success, obs_dim=2, act_dim=1):
    n = sum(lengths)
    # obs[i] = (i, -i), action[i] = 100 + i: every row is recognisable
    obs = np.stack([np.arange(n), -np.arange(n)], 1).astype(np.float32)[:, :obs_dim]
    action = (100 + np.arange(n, dtype=np.float32))[:, None].repeat(act_dim, 1)
    return {'obs': obs, 'action': action, 'episode_ends': np.cumsum(lengths).astype(np.int64),
            'success': np.asarray(success, bool)}


def test_demos_become_chunk_transitions_with_the_task_reward():
    # episode 0: 6 steps, successful -> chunks [0:3], [3:6] (the last ends on the success step)
    # episode 1: 5 steps, successful -> [6:9], [9:11] padded with command 110
    # episode 2: 4 steps, failed     -> [11:14]; the tail [14:15] has no next obs: left out
    buf, rep = demos_to_buffer(_demos([6, 5, 4], [True, True, False]), horizon=3)
    d = buf._chronological()
    assert (rep.episodes, rep.successful, rep.steps, rep.transitions, rep.dropped_tails) == (
        3, 2, 15, 5, 1)
    assert '5 chunk transitions' in str(rep) and '1 final chunks of failed' in str(rep)
    assert d['obs'][:, 0].tolist() == [0, 3, 6, 9, 11]
    assert d['action'][:, :, 0].tolist() == [[100, 101, 102], [103, 104, 105], [106, 107, 108],
                                             [109, 110, 110], [111, 112, 113]]
    # -1 per step until success, 0 on the success step
    assert d['reward'].tolist() == [-3, -2, -3, -1, -3]
    assert d['terminated'].tolist() == [False, True, False, True, False]
    assert d['next_obs'][:, 0].tolist() == [3, 5, 9, 10, 14]
    assert not d['truncated'].any() and not d['noise'].any()
    assert buf.noise_shape == buf.action_shape == (3, 1)


def test_demos_to_buffer_rejects_malformed_input():
    good = _demos([4, 4], [True, True])
    with pytest.raises(ValueError, match='horizon'):
        demos_to_buffer(good, horizon=0)
    with pytest.raises(ValueError, match='same N'):
        demos_to_buffer({**good, 'action': good['action'][:-1]}, horizon=2)
    with pytest.raises(ValueError, match='strictly increasing'):
        demos_to_buffer({**good, 'episode_ends': np.array([4, 7])}, horizon=2)
    bad = {**good, 'obs': good['obs'].copy()}
    bad['obs'][1, 0] = np.nan
    with pytest.raises(ValueError, match='non-finite'):
        demos_to_buffer(bad, horizon=2)


def test_scripted_demos_mix_into_online_batches():
    demos = collect_demos(n=2, seed=0)
    offline, rep = demos_to_buffer(demos, horizon=4)
    lengths = np.diff(np.r_[0, demos['episode_ends']])
    assert rep.transitions == sum(-(-int(n) // 4) for n in lengths)
    # every demo ends in success: the summed reward is -(steps - episodes)
    d = offline._chronological()
    assert d['reward'].sum() == -(rep.steps - rep.episodes) and d['terminated'].sum() == 2
    online = ReplayBuffer(offline.obs_dim, offline.noise_shape, offline.action_shape, 10)
    online.add(np.full(8, 7.0), None, np.zeros((4, 3)), -4.0, np.zeros(8), False)
    batch = MixedSampler(online, offline, 0.25).sample(16, np.random.default_rng(0))
    assert int((batch['obs'][:, 0] == 7.0).sum()) == 12  # 4 offline rows, 12 online


def test_na_distillation_pool_sees_online_states_when_demos_are_mixed_in():
    # DSRL-NA grows its distillation pool from the first pool_states rows of each batch: with
    # demonstrations mixed in, those must be online states too, not only demonstration ones
    from dsrl_core.policy import default_checkpoint
    from dsrl_core.policy.diffusion import DiffusionPolicy
    from dsrl_core.rl import DSRLNA, NAConfig
    import torch
    torch.set_num_threads(1)
    policy = DiffusionPolicy.load(default_checkpoint())
    offline, _ = demos_to_buffer(collect_demos(n=4, seed=0), policy.meta.horizon)
    online = ReplayBuffer(8, (4, 3), (4, 3), 100)
    for _ in range(50):  # marker: online observations have obs[0] == 9.0
        online.add(np.full(8, 9.0), None, np.zeros((4, 3)), -4.0, np.full(8, 9.0), False)
    agent = DSRLNA(policy, config=NAConfig(hidden=(16,), pool_noises=2, n_distill=1,
                                           action_input='delta'))
    rng = np.random.default_rng(0)
    sampler = MixedSampler(online, offline, 0.1)
    for _ in range(10):
        agent.update(sampler.sample(64, rng))
    pooled = agent._pool[0][:agent._pool_size, 0]
    assert len(pooled) == 80 and 0.5 < float((pooled == 9.0).float().mean()) <= 1.0


def test_load_offline_demos_reads_files_and_names_bad_ones(tmp_path):
    a, b = tmp_path / 'a.npz', tmp_path / 'b.npz'
    save_demos(collect_demos(n=1, seed=0), str(a))
    save_demos(collect_demos(n=2, seed=5), str(b))
    buf, lines = load_offline_demos([str(a), str(b)], obs_dim=8, horizon=4, act_dim=3)
    one, _ = demos_to_buffer(collect_demos(n=1, seed=0), 4)
    two, _ = demos_to_buffer(collect_demos(n=2, seed=5), 4)
    assert len(buf) == len(one) + len(two) and len(lines) == 2
    assert lines[0].startswith(f'{a}: 1 demonstration episodes')
    with pytest.raises(ValueError, match='does not exist'):
        load_offline_demos([str(tmp_path / 'missing.npz')], 8, 4, 3)
    with pytest.raises(ValueError, match='obs_dim 8 and act_dim 3; the policy has 9 and 3'):
        load_offline_demos([str(a)], 9, 4, 3)
    (tmp_path / 'junk.npz').write_bytes(b'not a zip file')
    with pytest.raises(ValueError, match='junk.npz: not a readable'):
        load_offline_demos([str(tmp_path / 'junk.npz')], 8, 4, 3)
    data = a.read_bytes()
    (tmp_path / 'cut.npz').write_bytes(data[:len(data) // 2])  # a truncated copy
    with pytest.raises(ValueError, match='cut.npz: not a readable'):
        load_offline_demos([str(tmp_path / 'cut.npz')], 8, 4, 3)
