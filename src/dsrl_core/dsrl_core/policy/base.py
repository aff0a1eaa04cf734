"""
The black-box contract of a steerable base policy.

DSRL needs nothing from the base policy but one deterministic function::

    sample(obs[B, obs_dim], noise[B, T, act_dim]) -> action_chunk[B, T, act_dim]

``obs`` is in the robot's units (the layout is described by ``PolicyMeta.obs_names``), the returned
chunk is in the robot's command units (radians for joint positions) and lies inside
``[action_low, action_high]``. Normalisation happens inside the policy. For identical inputs the
output is bitwise identical on the CPU. Anything honouring this contract can be steered; point the
``base_policy.plugin`` configuration at ``package.module:factory`` to load another implementation.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class PolicyMeta:
    """What a caller must know about a base policy (stored with every checkpoint)."""

    # Dimension of the flat observation vector.
    obs_dim: int
    # Dimension of one action (number of joints commanded).
    act_dim: int
    # Chunk length T: number of actions produced (and executed) per call.
    horizon: int
    # Lower and upper bound of every action dimension, in command units (length act_dim).
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    # Control rate at which the actions of a chunk are executed, in Hz.
    control_hz: float
    # Name of each observation entry, in order (e.g. 'joint_pos/joint1', 'object/x').
    obs_names: tuple[str, ...] = ()
    # Name of each action entry, in order (e.g. the controller's joint names).
    action_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.obs_dim <= 0 or self.act_dim <= 0 or self.horizon <= 0:
            raise ValueError(f'obs_dim, act_dim and horizon must be positive: {self}')
        if len(self.action_low) != self.act_dim or len(self.action_high) != self.act_dim:
            raise ValueError('action_low/action_high must have act_dim entries')
        if any(lo >= hi for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError('every action_low must be < action_high')
        if self.control_hz <= 0:
            raise ValueError('control_hz must be positive')
        if self.obs_names and len(self.obs_names) != self.obs_dim:
            raise ValueError(f'obs_names has {len(self.obs_names)} entries, '
                             f'obs_dim is {self.obs_dim}')
        if self.action_names and len(self.action_names) != self.act_dim:
            raise ValueError('action_names must have act_dim entries')

    @property
    def noise_shape(self) -> tuple[int, int]:
        """Shape (T, act_dim) of the latent noise of one sample."""
        return (self.horizon, self.act_dim)

    @property
    def noise_dim(self) -> int:
        """Number of entries of the flattened noise of one sample."""
        return self.horizon * self.act_dim

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> 'PolicyMeta':
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f'unknown PolicyMeta keys: {sorted(unknown)}')
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw)


@runtime_checkable
class BasePolicy(Protocol):
    """A frozen, deterministic base policy that DSRL can steer through its noise."""

    meta: PolicyMeta

    def sample(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Map obs [B, obs_dim] and noise [B, T, act_dim] to actions [B, T, act_dim] (no grad)."""
        ...


def sample_numpy(policy: BasePolicy, obs: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Call ``policy.sample`` with numpy arrays; a single sample (1-D obs) is handled too."""
    single = obs.ndim == 1
    o = torch.as_tensor(np.asarray(obs, dtype=np.float32))
    w = torch.as_tensor(np.asarray(noise, dtype=np.float32))
    if single:
        o, w = o[None], w.reshape((1,) + policy.meta.noise_shape)
    out = policy.sample(o, w).detach().cpu().numpy()
    return out[0] if single else out


def load_plugin(spec: str, **kwargs: Any) -> BasePolicy:
    """
    Load a base policy from ``'package.module:factory'`` and check it honours the contract.

    ``factory(**kwargs)`` must return an object with ``meta`` (a :class:`PolicyMeta`) and
    ``sample(obs, noise)``. This is how a lab plugs in its own policy, e.g. a client of a remote
    diffusion or flow-matching policy server, without code changes.
    """
    if ':' not in spec:
        raise ValueError(f"plugin spec must look like 'package.module:factory', got {spec!r}")
    module_name, attr = spec.split(':', 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f'cannot import base-policy plugin module {module_name!r}: {exc}') from exc
    factory = getattr(module, attr, None)
    if factory is None:
        raise ValueError(f'module {module_name!r} has no attribute {attr!r}')
    policy = factory(**kwargs)
    if not isinstance(getattr(policy, 'meta', None), PolicyMeta) or not callable(
            getattr(policy, 'sample', None)):
        raise TypeError(
            f'{spec} did not return a BasePolicy (needs .meta: PolicyMeta and .sample)')
    return policy
