"""The base-policy contract, our diffusion policy, BC training and evaluation."""

import pathlib

from dsrl_core.policy.base import BasePolicy, load_plugin, PolicyMeta, sample_numpy

__all__ = ['BasePolicy', 'PolicyMeta', 'default_checkpoint', 'load_plugin', 'sample_numpy']


def default_checkpoint() -> pathlib.Path:
    """Directory of the shipped BC diffusion policy for the simulated push task."""
    return pathlib.Path(__file__).resolve().parent.parent / 'assets' / 'push_bc'
