"""Noise-space RL core: networks, DSRL-SAC, DSRL-NA, replay buffer, weight serialisation."""

from dsrl_core.rl.buffer import MixedSampler, ReplayBuffer, sample_mixed
from dsrl_core.rl.na import DSRLNA, NAConfig
from dsrl_core.rl.networks import CriticEnsemble, mlp, polyak_update, TanhGaussianActor
from dsrl_core.rl.offline import demos_to_buffer, OfflineReport
from dsrl_core.rl.sac import DSRLSAC, SAC, SACConfig
from dsrl_core.rl.serialize import actor_shapes, pack_actor, unpack_actor, WeightsRejected

__all__ = [
    'actor_shapes', 'CriticEnsemble', 'demos_to_buffer', 'DSRLNA', 'DSRLSAC', 'MixedSampler',
    'mlp', 'NAConfig', 'OfflineReport', 'pack_actor', 'polyak_update', 'ReplayBuffer', 'SAC',
    'SACConfig', 'sample_mixed', 'TanhGaussianActor', 'unpack_actor', 'WeightsRejected',
]
