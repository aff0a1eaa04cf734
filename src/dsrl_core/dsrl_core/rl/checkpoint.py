"""
Learner checkpoints without pickle: algorithm state as safetensors + JSON, the buffer as .npz.

An algorithm's ``state_dict()`` is a tree of dicts (string or integer keys), lists, tuples,
tensors and Python scalars (network weights, Adam states, generator states, the config).
:func:`flatten_state` moves every tensor into a flat ``{path: tensor}`` map (saved with
safetensors) and keeps the rest as a JSON tree in which each tensor is ``{"__tensor__": path}``;
:func:`unflatten_state` rebuilds the original tree, key types and tuples included.

A checkpoint is a directory ``<root>/ckpt-<updates>-<ns>/`` with ``algorithm.safetensors``,
``algorithm.json``, ``replay.npz`` and ``trainer.json`` (the learner's own counters). It is built
under a temporary name and renamed when complete; ``<root>/latest.json`` then names it (replaced
atomically), and all but the newest ``keep`` checkpoints are deleted. A crash at any moment leaves
the previous checkpoint usable.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from typing import Any

import safetensors.torch
import torch

from dsrl_core.rl.buffer import ReplayBuffer

FORMAT_VERSION = 1
LATEST = 'latest.json'
PREFIX = 'ckpt-'
_SCALARS = (type(None), bool, int, float, str)


class CheckpointError(ValueError):
    """A checkpoint is missing parts, corrupted, or does not fit the running learner."""


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], path: str = 'root') -> Any:
    """Return the JSON tree of ``obj``; its tensors are added to ``tensors`` by path."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().to('cpu').contiguous().clone()
        return {'__tensor__': path}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f'{path}: only str/int dict keys can be saved, got {k!r}')
            items.append([k, flatten_state(v, tensors, f'{path}/{k}')])
        return {'__dict__': items}
    if isinstance(obj, (list, tuple)):
        kind = '__tuple__' if isinstance(obj, tuple) else '__list__'
        return {kind: [flatten_state(v, tensors, f'{path}/{i}') for i, v in enumerate(obj)]}
    if isinstance(obj, _SCALARS):
        return obj
    raise TypeError(f'{path}: cannot save a {type(obj).__name__} without pickle')


def unflatten_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Invert :func:`flatten_state`."""
    if isinstance(tree, dict):
        if set(tree) == {'__tensor__'}:
            try:
                return tensors[tree['__tensor__']]
            except KeyError as exc:
                raise CheckpointError(f'tensor {tree["__tensor__"]!r} missing') from exc
        if set(tree) == {'__dict__'}:
            return {k: unflatten_state(v, tensors) for k, v in tree['__dict__']}
        if set(tree) == {'__list__'}:
            return [unflatten_state(v, tensors) for v in tree['__list__']]
        if set(tree) == {'__tuple__'}:
            return tuple(unflatten_state(v, tensors) for v in tree['__tuple__'])
        raise CheckpointError(f'unexpected node in state tree: {sorted(tree)}')
    if isinstance(tree, _SCALARS):
        return tree
    raise CheckpointError(f'unexpected value in state tree: {tree!r}')


def _write_json(path: str, obj: Any) -> None:
    with open(path, 'w') as fh:
        json.dump(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


def save_state(state: dict[str, Any], directory: str, name: str = 'algorithm') -> None:
    """Write ``state`` as ``<name>.safetensors`` + ``<name>.json`` into ``directory``."""
    tensors: dict[str, torch.Tensor] = {}
    tree = flatten_state(state, tensors)
    safetensors.torch.save_file(tensors, os.path.join(directory, f'{name}.safetensors'))
    _write_json(os.path.join(directory, f'{name}.json'),
                {'format_version': FORMAT_VERSION, 'state': tree})


def load_state(directory: str, name: str = 'algorithm') -> dict[str, Any]:
    """Read a state written by :func:`save_state`; raise CheckpointError if it is damaged."""
    try:
        tensors = safetensors.torch.load_file(os.path.join(directory, f'{name}.safetensors'))
        with open(os.path.join(directory, f'{name}.json')) as fh:
            doc = json.load(fh)
    except Exception as exc:  # missing file, bad JSON, bad safetensors header
        raise CheckpointError(f'cannot read {name} state in {directory!r}: '
                              f'{type(exc).__name__}: {exc}') from exc
    if doc.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(f'{directory!r}: {name} format {doc.get("format_version")!r}, '
                              f'expected {FORMAT_VERSION}')
    return unflatten_state(doc['state'], tensors)


def write_checkpoint(root: str, algorithm: Any, buffer: ReplayBuffer, info: dict[str, Any],
                     keep: int = 2) -> str:
    """Write a complete checkpoint under ``root`` and point ``latest.json`` at it; return it."""
    os.makedirs(root, exist_ok=True)
    updates = int(getattr(algorithm, 'num_updates', 0))
    name = f'{PREFIX}{updates:010d}-{time.time_ns()}'
    tmp = tempfile.mkdtemp(prefix='.tmp-', dir=root)
    try:
        save_state(algorithm.state_dict(), tmp)
        buffer.save(os.path.join(tmp, 'replay.npz'))
        _write_json(os.path.join(tmp, 'trainer.json'),
                    {'format_version': FORMAT_VERSION, 'num_updates': updates, **info})
        final = os.path.join(root, name)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fd, tmp_latest = tempfile.mkstemp(prefix='.latest-', dir=root)
    with os.fdopen(fd, 'w') as fh:
        json.dump({'checkpoint': name}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp_latest, os.path.join(root, LATEST))
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    return final


def list_checkpoints(root: str) -> list[str]:
    """Return the checkpoint directory names under ``root``, oldest first."""
    if not os.path.isdir(root):
        return []
    names = [n for n in os.listdir(root)
             if n.startswith(PREFIX) and os.path.isdir(os.path.join(root, n))]
    return sorted(names, key=lambda n: tuple(int(p) for p in n[len(PREFIX):].split('-')))


def latest_checkpoint(root: str) -> str | None:
    """Return the path of the checkpoint ``latest.json`` names (else the newest), or None."""
    try:
        with open(os.path.join(root, LATEST)) as fh:
            name = json.load(fh)['checkpoint']
        path = os.path.join(root, name)
        if os.path.isdir(path):
            return path
    except (OSError, ValueError, KeyError, TypeError):
        pass
    names = list_checkpoints(root)
    return os.path.join(root, names[-1]) if names else None


def read_checkpoint(path: str, algorithm: Any, buffer: ReplayBuffer) -> dict[str, Any]:
    """Load a checkpoint into ``algorithm`` and ``buffer``; return its ``trainer.json``."""
    try:
        with open(os.path.join(path, 'trainer.json')) as fh:
            info = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f'cannot read {path}/trainer.json: {exc}') from exc
    state = load_state(path)
    try:
        algorithm.load_state_dict(state)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise CheckpointError(f'checkpoint {path!r} does not fit this learner (algorithm, '
                              f'dimensions, network sizes or settings differ): {exc}') from exc
    try:
        buffer.load(os.path.join(path, 'replay.npz'))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f'checkpoint {path!r}: replay buffer: {exc}') from exc
    return info
