"""
Collect scripted demonstrations of the push task and read them back.

Usage::

    python -m dsrl_core.sim.demos --n 50 --seed 0 [--recovery 8] --out demos.npz

On-disk format: one ``.npz`` file (``numpy.savez_compressed``; read with
``allow_pickle=False``) holding flat arrays, episodes stored back to back:

================  ===========  =============================================================
key               dtype/shape  meaning
================  ===========  =============================================================
``obs``           float32      [N, 8] observation before each step (layout: ``obs_names``)
``action``        float32      [N, 3] joint position targets sent at that step (rad)
``episode_ends``  int64        [E] exclusive end index of each episode in ``obs``/``action``
                               (episode i is ``episode_ends[i-1]:episode_ends[i]``, like the
                               replay buffer of diffusion_policy); strictly increasing,
                               last entry == N
``success``       bool         [E] whether the episode reached the goal
``obs_names``     unicode      [8] ``push_env.OBS_NAMES``
``action_names``  unicode      [3] ``push_env.ACTION_NAMES`` (joint names)
``meta_json``     unicode      [] JSON object: ``control_hz``, ``joint_limits`` ([3][2] rad),
                               ``goal_xy``, ``goal_radius``, ``max_steps``, ``seed``, ``n``
                               (episodes kept), ``attempts``, ``only_success``,
                               ``format_version``
================  ===========  =============================================================

Episode k of a collection uses env seed ``seed + k`` (k counts attempts, including discarded
failures) and a demonstrator generator seeded with ``seed``, so a collection is reproducible.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Optional, Sequence

import numpy as np
from tqdm import tqdm

from dsrl_core.sim.demonstrator import run_episode, ScriptedPusher
from dsrl_core.sim.push_env import (
    ACT_DIM,
    ACTION_NAMES,
    CONTROL_HZ,
    GOAL_RADIUS,
    GOAL_XY,
    JOINT_LIMITS,
    OBS_DIM,
    OBS_NAMES,
    PushEnv,
)

FORMAT_VERSION = 1
_KEYS = ('obs', 'action', 'episode_ends', 'success', 'obs_names', 'action_names', 'meta_json')


# Recovery episodes start with the puck at rest this far from the goal centre (m): just outside
# the goal radius, where a pusher that stopped short leaves it.
RECOVERY_DIST = (0.055, 0.10)


def collect_demos(n: int = 50, seed: int = 0, max_steps: int = 60, only_success: bool = True,
                  noise_scale: float = 1.0, progress: bool = False,
                  max_attempts: Optional[int] = None, recovery: int = 0,
                  recovery_seed: Optional[int] = None) -> dict[str, Any]:
    """
    Run the scripted demonstrator until ``n`` episodes are kept; return the format's dict.

    With ``only_success`` failed episodes are discarded (at most ``max_attempts`` episodes are
    tried, default ``3 * n + 10``; RuntimeError if that is not enough). ``recovery`` more
    episodes follow the ``n``: each starts from an ordinary arm pose with the puck at rest
    ``RECOVERY_DIST`` from the goal centre (a push that stopped short) and shows the pusher
    fetching it in; they use their own generators, so the first ``n`` episodes are the same
    with or without them: the recovery pusher's is seeded with ``recovery_seed`` and the start
    placements' with ``recovery_seed + 1`` (default: both derived from ``seed``).
    """
    if n <= 0:
        raise ValueError('n must be positive')
    if recovery < 0:
        raise ValueError('recovery must be >= 0')
    max_attempts = 3 * n + 10 if max_attempts is None else max_attempts
    env = PushEnv(max_steps=max_steps)
    pusher = ScriptedPusher(np.random.default_rng(seed), noise_scale=noise_scale)
    episodes: list[dict] = []
    attempts = successes = 0
    bar = tqdm(total=n + recovery, disable=not progress, desc='demos', unit='ep')
    while len(episodes) < n:
        if attempts >= max_attempts:
            raise RuntimeError(f'only {len(episodes)}/{n} episodes kept after {attempts} tries')
        episode = run_episode(env, pusher, seed=seed + attempts)
        attempts += 1
        successes += episode['success']
        if episode['success'] or not only_success:
            episodes.append(episode)
            bar.update(1)
        bar.set_postfix(success_rate=f'{successes / attempts:.3f}')
    if recovery_seed is None:
        rec_rng, pusher_rng = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    else:
        rec_rng = np.random.default_rng(recovery_seed + 1)
        pusher_rng = np.random.default_rng(recovery_seed)
    rec_pusher = ScriptedPusher(pusher_rng, noise_scale=noise_scale)
    kept = tried = 0
    while kept < recovery:
        if tried >= 3 * recovery + 10:
            raise RuntimeError(f'only {kept}/{recovery} recovery episodes kept after '
                               f'{tried} tries')
        qpos, _ = env.sample_initial_conditions(rec_rng)
        dist, angle = rec_rng.uniform(*RECOVERY_DIST), rec_rng.uniform(0.0, 2 * np.pi)
        puck = GOAL_XY + dist * np.array([np.cos(angle), np.sin(angle)])
        episode = run_episode(env, rec_pusher, options={'qpos': qpos, 'object_xy': puck})
        tried += 1
        if episode['success'] or not only_success:
            episodes.append(episode)
            kept += 1
            bar.update(1)
    bar.close()
    env.close()
    meta = {
        'control_hz': CONTROL_HZ, 'joint_limits': JOINT_LIMITS.tolist(),
        'goal_xy': GOAL_XY.tolist(), 'goal_radius': GOAL_RADIUS, 'max_steps': max_steps,
        'seed': seed, 'n': n, 'attempts': attempts, 'only_success': only_success,
        'demonstrator_success_rate': successes / attempts, 'format_version': FORMAT_VERSION,
        'recovery': recovery, 'recovery_attempts': tried, 'recovery_seed': recovery_seed,
        'recovery_dist': list(RECOVERY_DIST),
    }
    return {
        'obs': np.concatenate([e['obs'] for e in episodes]).astype(np.float32),
        'action': np.concatenate([e['action'] for e in episodes]).astype(np.float32),
        'episode_ends': np.cumsum([e['length'] for e in episodes]).astype(np.int64),
        'success': np.array([e['success'] for e in episodes], dtype=bool),
        'obs_names': np.array(OBS_NAMES, dtype=np.str_),
        'action_names': np.array(ACTION_NAMES, dtype=np.str_),
        'meta_json': np.array(json.dumps(meta), dtype=np.str_),
    }


def save_demos(demos: dict[str, Any], path: str) -> None:
    """Validate ``demos`` and write it to ``path`` (a compressed ``.npz``)."""
    validate_demos(demos, source='demos')
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, 'wb') as f:
        np.savez_compressed(f, **{k: np.asarray(demos[k]) for k in _KEYS})


def load_demos(path: str) -> dict[str, Any]:
    """
    Load and validate a demo file; returns the arrays plus ``meta`` (the parsed meta_json).

    Raises ValueError with a message naming the problem for malformed files.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            demos = {k: data[k] for k in data.files}
    except Exception as exc:  # BadZipFile, bad CRC, truncated file, object arrays, OSError
        raise ValueError(f'{path}: not a readable .npz demo file ({exc})') from exc
    validate_demos(demos, source=path)
    demos['meta'] = json.loads(str(demos['meta_json']))
    return demos


def validate_demos(demos: dict[str, Any], source: str = 'demos') -> None:
    """Raise ValueError if ``demos`` does not follow the format of this module."""
    missing = [k for k in _KEYS if k not in demos]
    if missing:
        raise ValueError(f'{source}: missing keys {missing}')
    obs, action = np.asarray(demos['obs']), np.asarray(demos['action'])
    ends, success = np.asarray(demos['episode_ends']), np.asarray(demos['success'])
    _check(obs.dtype == np.float32 and obs.ndim == 2 and obs.shape[1] == OBS_DIM,
           source, f'obs must be float32 [N, {OBS_DIM}], got {obs.dtype} {obs.shape}')
    _check(action.dtype == np.float32 and action.shape == (obs.shape[0], ACT_DIM),
           source, f'action must be float32 [{obs.shape[0]}, {ACT_DIM}], '
           f'got {action.dtype} {action.shape}')
    _check(ends.dtype == np.int64 and ends.ndim == 1 and ends.size > 0,
           source, f'episode_ends must be a non-empty int64 [E], got {ends.dtype} {ends.shape}')
    _check(bool(np.all(np.diff(ends) > 0)) and ends[0] > 0 and ends[-1] == obs.shape[0],
           source, 'episode_ends must be strictly increasing, positive and end at N')
    _check(success.dtype == np.bool_ and success.shape == ends.shape,
           source, f'success must be bool [{ends.size}], got {success.dtype} {success.shape}')
    _check(np.all(np.isfinite(obs)) and np.all(np.isfinite(action)),
           source, 'obs/action contain non-finite values')
    _check_names(demos['obs_names'], OBS_NAMES, 'obs_names', source)
    _check_names(demos['action_names'], ACTION_NAMES, 'action_names', source)
    meta_json = np.asarray(demos['meta_json'])
    _check(meta_json.dtype.kind == 'U' and meta_json.ndim == 0,
           source, 'meta_json must be a 0-d unicode string array')
    try:
        meta = json.loads(str(meta_json))
    except json.JSONDecodeError as exc:
        raise ValueError(f'{source}: meta_json is not valid JSON ({exc})') from exc
    _check(isinstance(meta, dict) and 'control_hz' in meta and 'joint_limits' in meta,
           source, 'meta_json must be an object with control_hz and joint_limits')


def _check_names(names: Any, expected: Sequence[str], key: str, source: str) -> None:
    names = np.asarray(names)
    _check(names.dtype.kind == 'U' and tuple(names.tolist()) == tuple(expected),
           source, f'{key} must be the unicode array {list(expected)}')


def _check(ok: bool, source: str, message: str) -> None:
    if not ok:
        raise ValueError(f'{source}: {message}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description='Collect scripted push-task demonstrations.')
    parser.add_argument('--n', type=int, default=50, help='episodes to keep')
    parser.add_argument('--seed', type=int, default=0, help='base seed')
    parser.add_argument('--max-steps', type=int, default=60, help='control steps per episode')
    parser.add_argument('--noise-scale', type=float, default=1.0, help='demonstrator noise')
    parser.add_argument('--keep-failures', action='store_true', help='also keep failures')
    parser.add_argument('--recovery', type=int, default=0,
                        help='episodes added after the --n that start with the puck stopped '
                             f'{RECOVERY_DIST[0]}-{RECOVERY_DIST[1]} m from the goal centre')
    parser.add_argument('--recovery-seed', type=int, default=None,
                        help='seed of the recovery episodes (pusher S, placements S + 1; '
                             'default: derived from --seed)')
    parser.add_argument('--out', required=True, help='output .npz path')
    args = parser.parse_args(argv)
    demos = collect_demos(n=args.n, seed=args.seed, max_steps=args.max_steps,
                          only_success=not args.keep_failures, noise_scale=args.noise_scale,
                          progress=True, recovery=args.recovery,
                          recovery_seed=args.recovery_seed)
    save_demos(demos, args.out)
    meta = json.loads(str(demos['meta_json']))
    lengths = np.diff(np.concatenate([[0], demos['episode_ends']]))
    print(f'wrote {args.out}: {len(lengths)} episodes, {demos["obs"].shape[0]} steps, '
          f'mean length {lengths.mean():.1f}, demonstrator success rate '
          f'{meta["demonstrator_success_rate"]:.3f} ({meta["attempts"]} attempts)')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
