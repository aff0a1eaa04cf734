"""
Soft actor-critic, written as plainly as CleanRL's single-file SAC.

:class:`SAC` is ordinary action-space SAC (used by the Pendulum peer check). :class:`DSRLSAC` is
the same algorithm in the latent-noise MDP of a frozen base policy: its action is the flattened
initial noise ``w`` (``T * act_dim`` numbers) and the base policy is never called in training.

A batch is a dict of tensors: ``obs [B, obs_dim]``, ``action [B, act_dim]`` (DSRL-SAC reads
``noise [B, T, act_dim]`` instead), ``reward [B]``, ``next_obs [B, obs_dim]``, ``terminated [B]``.
Only ``terminated`` stops bootstrapping; a time-limit truncation must not.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Mapping
import warnings

import numpy as np
import torch

from dsrl_core.policy.base import PolicyMeta
from dsrl_core.rl.networks import (
    CriticEnsemble,
    HALF_LOG_2PI,
    polyak_update,
    TanhGaussianActor,
)

# Bumped whenever the layout of ``state_dict()`` changes.
STATE_FORMAT_VERSION = 1


@dataclasses.dataclass
class SACConfig:
    """Hyperparameters of SAC (defaults: the DSRL authors' DSRL-SAC settings)."""

    # Hidden widths of the actor and critic MLPs (Linear -> LayerNorm -> ReLU per layer).
    hidden: tuple[int, ...] = (256, 256, 256)
    # LayerNorm after every hidden Linear layer.
    layer_norm: bool = True
    # Number of critics in the ensemble; the TD backup uses the minimum over them.
    n_critics: int = 2
    # Discount per (latent) transition.
    gamma: float = 0.99
    # Polyak rate of the target critics.
    tau: float = 0.005
    # Adam learning rate of actor, critics and temperature.
    lr: float = 3e-4
    # Transitions per gradient step (read by the training loop that samples batches).
    batch_size: int = 256
    # Initial entropy temperature alpha.
    init_alpha: float = 1.0
    # Target entropy of the actor; None means -act_dim (the usual SAC heuristic). With
    # kl_to_prior, minus the KL budget in nats (e.g. -3.0: alpha rises when the KL exceeds 3).
    target_entropy: float | None = 0.0
    # Regularise towards the base policy's noise N(0, I) instead of towards maximum entropy: the
    # entropy terms use log pi(w|s) - log N(w; 0, I), a sample of KL(pi || N(0, I)). At a large
    # alpha the actor is the plain base policy; it departs only where the critic says so.
    kl_to_prior: bool = False
    # The actor's actions lie in [-action_magnitude, action_magnitude].
    action_magnitude: float = 1.5
    # Clamp range of the actor's log standard deviation.
    log_std_min: float = -20.0
    log_std_max: float = 2.0
    # Gradient updates per environment (latent) step (read by the training loop).
    utd_ratio: int = 20
    # Seed of the network initialisation and of the update's sampling noise.
    seed: int = 0

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ValueError(f'hidden must be a non-empty list of positive widths: {self.hidden}')
        if self.n_critics < 1:
            raise ValueError(f'n_critics must be >= 1, got {self.n_critics}')
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f'gamma must be in [0, 1], got {self.gamma}')
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f'tau must be in (0, 1], got {self.tau}')
        if self.lr <= 0:
            raise ValueError(f'lr must be positive, got {self.lr}')
        if self.batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {self.batch_size}')
        if self.init_alpha <= 0:
            raise ValueError(f'init_alpha must be positive, got {self.init_alpha}')
        if self.action_magnitude <= 0:
            raise ValueError(f'action_magnitude must be positive, got {self.action_magnitude}')
        if self.log_std_min >= self.log_std_max:
            raise ValueError('log_std_min must be < log_std_max')
        if self.utd_ratio < 1:
            raise ValueError(f'utd_ratio must be >= 1, got {self.utd_ratio}')


def prior_log_prob(w: torch.Tensor) -> torch.Tensor:
    """Return log N(w; 0, I) summed over the last axis (the base policy's noise density)."""
    return -0.5 * w.square().sum(-1) - w.shape[-1] * HALF_LOG_2PI


def make_adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam with the fastest implementation available for the parameters' device."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, foreach=True)


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """Return a torch generator on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def actor_act(actor: TanhGaussianActor, obs: np.ndarray | torch.Tensor, deterministic: bool,
              generator: torch.Generator | None, device: torch.device,
              eps: np.ndarray | torch.Tensor | None = None) -> np.ndarray:
    """
    Run ``actor`` on one observation ``[obs_dim]`` or a batch ``[B, obs_dim]`` -> numpy.

    ``eps``: a fixed standard-normal draw ``[act_dim]`` (or ``[B, act_dim]``) instead of a fresh
    one (correlated exploration, see :meth:`TanhGaussianActor.forward`).
    """
    o = torch.as_tensor(obs, dtype=torch.float32, device=device)
    single = o.ndim == 1
    if single:
        o = o.unsqueeze(0)
    if o.ndim != 2 or o.shape[1] != actor.obs_dim:
        raise ValueError(f'obs must be [obs_dim] or [B, obs_dim] with obs_dim={actor.obs_dim}, '
                         f'got {tuple(o.shape)}')
    with torch.no_grad():
        e = None if eps is None else torch.as_tensor(np.asarray(eps, dtype=np.float32)).reshape(
            -1, actor.act_dim).to(device)
        a, _ = actor(o, deterministic=deterministic, with_log_prob=False, generator=generator,
                     eps=e)
    a = a.cpu().numpy()
    return a[0] if single else a


def freeze(module: torch.nn.Module) -> torch.nn.Module:
    """Turn off gradients of every parameter of ``module`` (for target networks)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class SAC:
    """
    Soft actor-critic with a critic ensemble, min backup and learned temperature.

    One :meth:`update` is one critic step, one actor step, one temperature step and one Polyak step
    (the training loop calls it ``utd_ratio`` times per environment step).
    """

    def __init__(self, obs_dim: int, act_dim: int, config: SACConfig | None = None,
                 device: str | torch.device = 'cpu') -> None:
        self.config = cfg = config if config is not None else SACConfig()
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        if self.obs_dim < 1 or self.act_dim < 1:
            raise ValueError(f'obs_dim and act_dim must be positive: {obs_dim}, {act_dim}')
        self.device = torch.device(device)
        self.target_entropy = float(-act_dim if cfg.target_entropy is None
                                    else cfg.target_entropy)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.actor = TanhGaussianActor(obs_dim, act_dim, cfg.hidden, cfg.action_magnitude,
                                           cfg.log_std_min, cfg.log_std_max, cfg.layer_norm)
            self.critic = CriticEnsemble(obs_dim, act_dim, cfg.n_critics, cfg.hidden,
                                         cfg.layer_norm)
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.critic_target = freeze(copy.deepcopy(self.critic))
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), device=self.device,
                                      requires_grad=True)
        self.actor_optim = make_adam(self.actor.parameters(), cfg.lr)
        self.critic_optim = make_adam(self.critic.parameters(), cfg.lr)
        self.alpha_optim = make_adam([self.log_alpha], cfg.lr)
        self._actor_params = list(self.actor.parameters())
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        # Noise of the update (reparameterised samples) and of act(), kept apart so that acting
        # does not change the sequence of updates.
        self._gen = make_generator(cfg.seed, self.device)
        self._act_gen = make_generator(cfg.seed + 1, self.device)
        self.num_updates = 0

    @property
    def alpha(self) -> float:
        """Current entropy temperature."""
        return float(self.log_alpha.exp())

    def _batch_tensor(self, batch: Mapping[str, Any], key: str) -> torch.Tensor:
        return torch.as_tensor(batch[key], dtype=torch.float32, device=self.device)

    def _actions(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self._batch_tensor(batch, 'action').reshape(-1, self.act_dim)

    def update(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """Do one critic, actor, temperature and Polyak step on ``batch``; return statistics."""
        obs = self._batch_tensor(batch, 'obs')
        next_obs = self._batch_tensor(batch, 'next_obs')
        action = self._actions(batch)
        reward = self._batch_tensor(batch, 'reward').reshape(-1)
        terminated = self._batch_tensor(batch, 'terminated').reshape(-1)
        gamma = self.config.gamma
        alpha = self.log_alpha.detach().exp()

        # Critic: soft TD target with the minimum over the target ensemble.
        with torch.no_grad():
            next_action, next_log_prob = self.actor(next_obs, generator=self._gen)
            if self.config.kl_to_prior:
                next_log_prob = next_log_prob - prior_log_prob(next_action)
            next_q = self.critic_target(next_obs, next_action).min(0).values
            target_q = reward + gamma * (1.0 - terminated) * (next_q - alpha * next_log_prob)
        q = self.critic(obs, action)
        critic_loss = (q - target_q).square().mean(1).sum()
        self.critic_optim.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optim.step()

        # Actor: maximise min-Q plus entropy; gradients only reach the actor's parameters.
        pi_action, log_prob = self.actor(obs, generator=self._gen)
        if self.config.kl_to_prior:
            log_prob = log_prob - prior_log_prob(pi_action)
        pi_q = self.critic(obs, pi_action).min(0).values
        actor_loss = (alpha * log_prob - pi_q).mean()
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=self._actor_params)
        self.actor_optim.step()

        # Temperature: drive the entropy towards the target.
        log_prob = log_prob.detach()
        alpha_loss = (-self.log_alpha.exp() * (log_prob + self.target_entropy)).mean()
        self.alpha_optim.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_optim.step()

        polyak_update(self._critic_params, self._target_params, self.config.tau)
        self.num_updates += 1
        stats = torch.stack([critic_loss.detach(), actor_loss.detach(), alpha,
                             alpha_loss.detach(), q.detach().mean(), -log_prob.mean()]).tolist()
        return dict(zip(('critic_loss', 'actor_loss', 'alpha', 'alpha_loss', 'q_mean',
                         'entropy'), stats))

    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = False,
            eps: np.ndarray | None = None) -> np.ndarray:
        """
        Return actions ``[act_dim]`` for one observation or ``[B, act_dim]`` for a batch.

        ``eps``: use this standard-normal draw (``act_dim`` values) instead of a fresh one.
        """
        return actor_act(self.actor, obs, deterministic, self._act_gen, self.device, eps)

    def set_obs_normalizer(self, mean: Any, std: Any) -> None:
        """
        Normalise observations as ``(obs - mean) / std`` inside every network from now on.

        Call it once before training (e.g. with the base policy's demonstration statistics, or
        the replay buffer's at the first update); the statistics ship with the actor weights.
        """
        for module in (self.actor, self.critic, self.critic_target):
            module.obs_norm.set(torch.as_tensor(mean, dtype=torch.float32),
                                torch.as_tensor(std, dtype=torch.float32))

    def actor_state_dict(self) -> dict[str, torch.Tensor]:
        """Return a detached CPU copy of the actor's weights (what the policy node needs)."""
        return {k: v.detach().cpu().clone() for k, v in self.actor.state_dict().items()}

    def load_actor_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load actor weights (strict: names and shapes must match)."""
        self.actor.load_state_dict(state_dict)

    def _stateful(self) -> dict[str, Any]:
        """Name -> network or optimiser whose state a checkpoint holds."""
        return {'actor': self.actor, 'critic': self.critic, 'critic_target': self.critic_target,
                'actor_optim': self.actor_optim, 'critic_optim': self.critic_optim,
                'alpha_optim': self.alpha_optim}

    def state_dict(self) -> dict[str, Any]:
        """Return a deep copy of everything needed to resume training bit for bit."""
        return algorithm_state(self)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (the networks' shapes must match this object's)."""
        load_algorithm_state(self, state_dict)


def algorithm_state(algo: Any) -> dict[str, Any]:
    """
    Deep copy of an algorithm's training state (SAC, DSRL-SAC, DSRL-NA).

    The header (format, algorithm, dims, config), every entry of ``algo._stateful()``, the
    temperature, the update counter and both random generators.
    """
    state = {
        'format_version': STATE_FORMAT_VERSION,
        'algorithm': type(algo).__name__,
        'obs_dim': algo.obs_dim,
        'act_dim': algo.act_dim,
        'config': dataclasses.asdict(algo.config),
    }
    state.update({name: obj.state_dict() for name, obj in algo._stateful().items()})
    state.update(log_alpha=algo.log_alpha.detach().clone(), num_updates=algo.num_updates,
                 rng=algo._gen.get_state(), act_rng=algo._act_gen.get_state())
    return copy.deepcopy(state)


def load_algorithm_state(algo: Any, state_dict: Mapping[str, Any]) -> None:
    """Restore what :func:`algorithm_state` returned (header checked first)."""
    check_state_header(state_dict, type(algo).__name__, algo.obs_dim, algo.act_dim)
    # The actor's tanh output is scaled by the bound and the critics were fitted to actions
    # inside it: a state trained under another bound (every DSRL state before session 9 used
    # 1.5) would resume as a different policy.
    theirs = (state_dict.get('config') or {}).get('action_magnitude')
    if theirs is not None and not math.isclose(float(theirs), algo.config.action_magnitude,
                                               rel_tol=1e-6):
        raise ValueError(f'the state was trained with action_magnitude {theirs}; this learner '
                         f'uses {algo.config.action_magnitude}: set them to match to resume')
    for name, obj in algo._stateful().items():
        obj.load_state_dict(state_dict[name])
    with torch.no_grad():
        algo.log_alpha.copy_(state_dict['log_alpha'])
    algo.num_updates = int(state_dict['num_updates'])
    for gen, key in ((algo._gen, 'rng'), (algo._act_gen, 'act_rng')):
        state = torch.as_tensor(state_dict[key])
        if state.dtype != torch.uint8:
            raise ValueError(f'{key} state must be bytes (uint8), got {state.dtype}')
        if state.numel() != gen.get_state().numel():
            # A CPU generator's state is 5,056 bytes, a CUDA one's 16: a checkpoint written on
            # another kind of device resumes with this object's seeded generators instead. A
            # damaged state of the right size still fails in set_state.
            warnings.warn(f'{key} state not restored ({state.numel()} bytes for a '
                          f'{gen.device.type} generator of {gen.get_state().numel()}); a '
                          'checkpoint from another kind of device resumes with freshly seeded '
                          'random generators', RuntimeWarning, stacklevel=2)
            continue
        gen.set_state(state)


def check_state_header(state_dict: Mapping[str, Any], algorithm: str, obs_dim: int,
                       act_dim: int) -> None:
    """Raise ValueError unless ``state_dict`` is a current-format state of this algorithm/shape."""
    if state_dict.get('format_version') != STATE_FORMAT_VERSION:
        raise ValueError(f'state format {state_dict.get("format_version")!r} is not '
                         f'{STATE_FORMAT_VERSION}')
    if state_dict.get('algorithm') != algorithm:
        raise ValueError(f'state is from {state_dict.get("algorithm")!r}, not {algorithm!r}')
    if (state_dict.get('obs_dim'), state_dict.get('act_dim')) != (obs_dim, act_dim):
        raise ValueError(f'state has obs_dim/act_dim {state_dict.get("obs_dim")}/'
                         f'{state_dict.get("act_dim")}, expected {obs_dim}/{act_dim}')


class DSRLSAC(SAC):
    """
    DSRL-SAC: SAC whose action is the base policy's flattened initial noise ``w``.

    Batches must hold ``noise [B, T, act_dim]`` (the noise that produced the executed chunk);
    the executed ``action`` is not needed. :meth:`act` returns noise shaped ``[T, act_dim]`` for
    one observation or ``[B, T, act_dim]`` for a batch, ready for ``policy.sample``.
    """

    def __init__(self, meta: PolicyMeta, obs_dim: int | None = None,
                 config: SACConfig | None = None, device: str | torch.device = 'cpu') -> None:
        self.meta = meta
        self.noise_shape: tuple[int, int] = meta.noise_shape
        super().__init__(meta.obs_dim if obs_dim is None else obs_dim, meta.noise_dim, config,
                         device)

    def _actions(self, batch: Mapping[str, Any]) -> torch.Tensor:
        noise = self._batch_tensor(batch, 'noise')
        if tuple(noise.shape[1:]) != self.noise_shape:
            raise ValueError(f'noise must be [B, {self.noise_shape[0]}, {self.noise_shape[1]}], '
                             f'got {tuple(noise.shape)}')
        return noise.reshape(-1, self.act_dim)

    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = False,
            eps: np.ndarray | None = None) -> np.ndarray:
        """Return noise ``[T, act_dim]`` for one observation or ``[B, T, act_dim]`` for a batch."""
        w = super().act(obs, deterministic, eps)
        return w.reshape(w.shape[:-1] + self.noise_shape)

