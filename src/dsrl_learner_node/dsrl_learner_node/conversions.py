"""Message <-> plain value conversions of the learner node (pure functions, no node needed)."""

from __future__ import annotations

from typing import Mapping

from dsrl_core.rl.serialize import pack_actor
from dsrl_core.rl.trainer import Transition
import numpy as np
import torch

from dsrl_msgs.msg import ActorWeights
from dsrl_msgs.msg import Transition as TransitionMsg


def transition_from_msg(msg: TransitionMsg) -> Transition:
    """Return the plain values of a Transition message (arrays are float32 numpy views)."""
    return Transition(
        robot_id=msg.robot_id, episode_id=int(msg.episode_id),
        obs=np.asarray(msg.obs, np.float32), next_obs=np.asarray(msg.next_obs, np.float32),
        noise=np.asarray(msg.noise, np.float32), action=np.asarray(msg.action, np.float32),
        reward=float(msg.reward), terminated=bool(msg.terminated),
        truncated=bool(msg.truncated), actor_version=int(msg.actor_version),
        obs_dim=int(msg.obs_dim), chunk_length=int(msg.chunk_length),
        action_dim=int(msg.action_dim), executed_steps=int(msg.executed_steps))


def weights_msg(state_dict: Mapping[str, torch.Tensor], version: int, key: bytes, obs_dim: int,
                noise_shape: tuple[int, int], architecture: str, algorithm: str,
                action_magnitude: float) -> ActorWeights:
    """Pack and sign actor weights into an ActorWeights message (header stamp left to caller)."""
    payload, sha, tag = pack_actor(state_dict, version, key)
    msg = ActorWeights()
    msg.version = int(version)
    msg.payload = payload
    msg.sha256, msg.hmac_sha256 = sha, tag
    msg.obs_dim = int(obs_dim)
    msg.chunk_length, msg.action_dim = int(noise_shape[0]), int(noise_shape[1])
    msg.architecture, msg.algorithm = architecture, algorithm
    msg.action_magnitude = float(action_magnitude)
    return msg
