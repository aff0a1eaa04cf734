"""
DSRL-NA: noise aliasing (the DSRL authors' preferred variant).

Three learned pieces and one frozen one:

* ``Q^A(s, a)``: an action-space critic ensemble on the flattened executed chunk, either
  normalised to ``[-1, 1]`` with the base policy's action bounds (``action_input='absolute'``) or
  taken relative to the measured joint positions in ``s`` (``'delta'``, see :class:`NAConfig`;
  what the learner uses by default). Trained by soft TD on stored
  ``(s, a_executed, r, s', terminated)`` with ``a' = pi_dp(s', w')``, ``w' ~ pi^W(. | s')``.
  Because it is defined on executed actions, any data trains it (offline demos, teleop, other
  policies): batches need no ``noise``.
* ``Q^W(s, w)``: a noise-space critic ensemble distilled from ``Q^A`` by regressing every member
  onto ``min`` (or ``mean``) over ``Q^A(s, pi_dp(s, w))`` for ``w ~ N(0, I)`` (optionally some
  ``w`` drawn from the actor).
* ``pi^W(w | s)``: the tanh-Gaussian noise actor, trained with the SAC actor loss against the
  mean over the ``Q^W`` ensemble, with a learned temperature.
* ``pi_dp``: the frozen base policy, only ever called under ``torch.no_grad``.

Schedule of one :meth:`DSRLNA.update` call: one ``Q^A`` step, one temperature step, one actor
step, one Polyak step of the ``Q^A`` targets, then ``n_distill`` ``Q^W`` steps. The authors do,
per update round, ``utd`` x {``Q^A``, alpha, actor, Polyak} followed by 10 ``Q^W`` steps; with our
per-call schedule that corresponds to ``n_distill = 10 / utd`` on average (``n_distill = 0`` on
most calls and a separate loop of :meth:`DSRLNA.distill_step` reproduces it exactly). The default
``n_distill = 1`` distils more often than the authors (20 per round at UTD 20), which keeps
``Q^W`` closer to ``Q^A`` at the cost of one more base-policy call and one more critic step per
update.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from typing import Any, Mapping

import numpy as np
import torch

from dsrl_core.policy.base import BasePolicy
from dsrl_core.rl.networks import (
    CriticEnsemble,
    hl_gauss_probs,
    polyak_update,
    TanhGaussianActor,
)
from dsrl_core.rl.sac import (
    actor_act,
    algorithm_state,
    freeze,
    load_algorithm_state,
    make_adam,
    make_generator,
    prior_log_prob,
    SACConfig,
)


def _module_device(obj: Any) -> torch.device:
    """Device of a torch module's first parameter or buffer; the CPU for anything else."""
    if isinstance(obj, torch.nn.Module):
        for t in itertools.chain(obj.parameters(), obj.buffers()):
            return t.device
    return torch.device('cpu')


@dataclasses.dataclass
class NAConfig(SACConfig):
    """Hyperparameters of DSRL-NA: those of SAC plus the distillation of ``Q^W``."""

    # Q^W distillation steps done at the end of every update() call.
    n_distill: int = 1
    # How the Q^A ensemble is reduced to the regression target of Q^W: 'min' or 'mean'.
    distill_target: str = 'min'
    # Fraction of each distillation batch whose noise comes from the actor instead of N(0, I).
    distill_actor_fraction: float = 0.0
    # Subtract alpha * log pi^W(w' | s') in the TD target of Q^A (soft backup).
    backup_entropy: bool = True
    # Distillation pool: when > 0, each update decodes this many N(0, I) noises for each of
    # pool_states batch states once and keeps (s, w, chunk) in a ring of pool_capacity rows;
    # distillation steps then regress Q^W on pool rows relabelled by the current Q^A, with no
    # base-policy call, so many more of them fit (0 = decode fresh noise at every step).
    pool_noises: int = 0
    # What Q^A sees of a chunk: 'absolute' commands scaled by the base policy's action bounds
    # to [-1, 1], or 'delta': each command minus the measured position of its joint (the
    # observation named 'joint_pos/<action name>'), divided by delta_scale (command units).
    # The chunks one state's noises decode to differ by a few hundredths of a radian, ~1 % of
    # the joint range; relative to the arm they span a range a critic can resolve.
    action_input: str = 'absolute'
    delta_scale: float = 0.15
    # How Q^A is fitted to its TD targets: 'mse' (regression, the authors') or 'hl_gauss'
    # (classification over value_bins evenly spaced values in [value_min, value_max], trained by
    # cross-entropy to HL-Gauss targets of std hl_sigma x the bin width; Q^A is the histogram's
    # mean). Meant for values that step sharply (a success vs a near miss under a sparse
    # reward); on the push task it did no better than 'mse' (docs/benchmarks, session 7).
    # TD targets outside the range are clamped (counted in the 'value_clipped' statistic), so
    # the range must hold the returns the task reaches: with r per chunk in [r_min, 0] and
    # discount gamma no value is below r_min / (1 - gamma) (-400 for 4 steps of -1 and 0.99;
    # on the push task TD targets stay above -150, the default), and with backup_entropy the
    # entropy bonus can lift them above 0.
    critic_loss: str = 'mse'
    value_min: float = -150.0
    value_max: float = 5.0
    value_bins: int = 101
    hl_sigma: float = 0.75
    pool_states: int = 4
    pool_capacity: int = 200_000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_distill < 0:
            raise ValueError(f'n_distill must be >= 0, got {self.n_distill}')
        if self.distill_target not in ('min', 'mean'):
            raise ValueError("distill_target must be 'min' or 'mean', got "
                             f'{self.distill_target!r}')
        if self.action_input not in ('absolute', 'delta'):
            raise ValueError(f"action_input must be 'absolute' or 'delta', got "
                             f'{self.action_input!r}')
        if self.delta_scale <= 0:
            raise ValueError(f'delta_scale must be positive, got {self.delta_scale}')
        if self.critic_loss not in ('mse', 'hl_gauss'):
            raise ValueError(f"critic_loss must be 'mse' or 'hl_gauss', got {self.critic_loss!r}")
        if not (math.isfinite(self.value_min) and math.isfinite(self.value_max)
                and self.value_min < self.value_max):
            raise ValueError(f'value_min must be < value_max (both finite), got '
                             f'{self.value_min}, {self.value_max}')
        if self.value_bins < 3:
            raise ValueError(f'value_bins must be >= 3, got {self.value_bins}')
        if not (math.isfinite(self.hl_sigma) and self.hl_sigma > 0):
            raise ValueError(f'hl_sigma must be positive, got {self.hl_sigma}')
        if self.pool_noises < 0 or self.pool_states < 1 or self.pool_capacity < 1:
            raise ValueError('pool_noises must be >= 0, pool_states and pool_capacity >= 1')
        if not 0.0 <= self.distill_actor_fraction <= 1.0:
            raise ValueError('distill_actor_fraction must be in [0, 1], got '
                             f'{self.distill_actor_fraction}')


class DSRLNA:
    """
    DSRL with noise aliasing; same surface as :class:`dsrl_core.rl.sac.SAC`.

    A batch holds ``obs [B, obs_dim]``, ``action [B, T, act_dim]`` (executed chunk, command units),
    ``reward [B]``, ``next_obs [B, obs_dim]`` and ``terminated [B]``. :meth:`act` returns noise
    ``[T, act_dim]`` (or ``[B, T, act_dim]``) for the base policy.
    """

    def __init__(self, base_policy: BasePolicy, obs_dim: int | None = None,
                 config: NAConfig | None = None, device: str | torch.device = 'cpu') -> None:
        self.config = cfg = config if config is not None else NAConfig()
        self.base_policy = base_policy
        self.meta = meta = base_policy.meta
        self.obs_dim = int(meta.obs_dim if obs_dim is None else obs_dim)
        if self.obs_dim != meta.obs_dim:
            raise ValueError(f'obs_dim {self.obs_dim} differs from the base policy obs_dim '
                             f'{meta.obs_dim}: NA feeds the same observation to both')
        self.noise_shape: tuple[int, int] = meta.noise_shape
        self.act_dim = meta.noise_dim  # the actor's action is the flattened noise
        self.chunk_dim = meta.horizon * meta.act_dim
        self.device = torch.device(device)
        self.target_entropy = float(-self.act_dim if cfg.target_entropy is None
                                    else cfg.target_entropy)
        low = torch.tensor(meta.action_low, dtype=torch.float32, device=self.device)
        high = torch.tensor(meta.action_high, dtype=torch.float32, device=self.device)
        self._act_center = (high + low) / 2
        self._act_half_range = (high - low) / 2
        self._joint_obs_index = None
        if cfg.action_input == 'delta':
            names = list(meta.obs_names)
            missing = [a for a in meta.action_names if f'joint_pos/{a}' not in names]
            if not meta.action_names or missing:
                raise ValueError("action_input 'delta' needs an observation 'joint_pos/<name>' "
                                 f'for every action; missing for {missing or "(no names)"} in '
                                 f'obs_names {names}')
            self._joint_obs_index = torch.tensor(
                [names.index(f'joint_pos/{a}') for a in meta.action_names], device=self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.actor = TanhGaussianActor(self.obs_dim, self.act_dim, cfg.hidden,
                                           cfg.action_magnitude, cfg.log_std_min,
                                           cfg.log_std_max, cfg.layer_norm)
            support = (torch.linspace(cfg.value_min, cfg.value_max, cfg.value_bins)
                       if cfg.critic_loss == 'hl_gauss' else None)
            self.q_action = CriticEnsemble(self.obs_dim, self.chunk_dim, cfg.n_critics,
                                           cfg.hidden, cfg.layer_norm, support=support)
            self.q_noise = CriticEnsemble(self.obs_dim, self.act_dim, cfg.n_critics, cfg.hidden,
                                          cfg.layer_norm)
        for module in (self.actor, self.q_action, self.q_noise):
            module.to(self.device)
        self.q_action_target = freeze(copy.deepcopy(self.q_action))
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), device=self.device,
                                      requires_grad=True)
        self.actor_optim = make_adam(self.actor.parameters(), cfg.lr)
        self.q_action_optim = make_adam(self.q_action.parameters(), cfg.lr)
        self.q_noise_optim = make_adam(self.q_noise.parameters(), cfg.lr)
        self.alpha_optim = make_adam([self.log_alpha], cfg.lr)
        self._actor_params = list(self.actor.parameters())
        self._q_action_params = list(self.q_action.parameters())
        self._q_action_target_params = list(self.q_action_target.parameters())
        self._gen = make_generator(cfg.seed, self.device)
        self._act_gen = make_generator(cfg.seed + 1, self.device)
        self.num_updates = 0
        # distillation pool (a cache rebuilt after a restart, not part of the state)
        self._pool: tuple[torch.Tensor, ...] | None = None
        self._pool_ptr = self._pool_size = 0

    @property
    def alpha(self) -> float:
        """Current entropy temperature."""
        return float(self.log_alpha.exp())

    def normalize_actions(self, actions: torch.Tensor,
                          obs: torch.Tensor | None = None) -> torch.Tensor:
        """
        Map chunks ``[B, T, act_dim]`` (command units) to Q^A's input ``[B, T * act_dim]``.

        'absolute': scaled to [-1, 1] by the action bounds; 'delta': relative to the joint
        positions in ``obs`` ``[B, obs_dim]`` (required then), over ``delta_scale``.
        """
        if self._joint_obs_index is None:
            out = (actions - self._act_center) / self._act_half_range
        else:
            if obs is None:
                raise ValueError("action_input 'delta' needs the observations of the chunks")
            joints = obs.index_select(-1, self._joint_obs_index).unsqueeze(-2)
            out = (actions - joints) / self.config.delta_scale
        return out.reshape(-1, self.chunk_dim)

    @torch.no_grad()
    def _decode(self, obs: torch.Tensor, noise_flat: torch.Tensor) -> torch.Tensor:
        """Run the frozen base policy and return the normalised flat chunk."""
        w = noise_flat.reshape((-1,) + self.noise_shape)
        # The policy gets its inputs on its own device: a torch module's (move it next to the
        # networks with .to(device) to decode on the GPU), the CPU for any other black box.
        dev = _module_device(self.base_policy)
        actions = self.base_policy.sample(obs.to(dev), w.to(dev))
        return self.normalize_actions(actions.to(self.device, torch.float32), obs)

    def _tensor(self, batch: Mapping[str, Any], key: str) -> torch.Tensor:
        return torch.as_tensor(batch[key], dtype=torch.float32, device=self.device)

    def update(self, batch: Mapping[str, Any]) -> dict[str, float]:
        """Do one Q^A, alpha, actor, Polyak step, then ``n_distill`` Q^W steps; return stats."""
        cfg = self.config
        obs = self._tensor(batch, 'obs')
        next_obs = self._tensor(batch, 'next_obs')
        executed = self._tensor(batch, 'action')
        if tuple(executed.shape[1:]) != self.noise_shape:
            raise ValueError(f'action must be [B, {self.noise_shape[0]}, {self.noise_shape[1]}], '
                             f'got {tuple(executed.shape)}')
        action = self.normalize_actions(executed, obs)
        reward = self._tensor(batch, 'reward').reshape(-1)
        terminated = self._tensor(batch, 'terminated').reshape(-1)
        alpha = self.log_alpha.detach().exp()

        # Q^A: soft TD on executed chunks; the next chunk is what the actor's noise decodes to.
        target_q = self.td_target(reward, next_obs, terminated, alpha)
        q_action_loss, q = self.q_action_loss(obs, action, target_q)
        self.q_action_optim.zero_grad(set_to_none=True)
        q_action_loss.backward()
        self.q_action_optim.step()

        # Temperature, from a fresh actor sample (also used by the actor step below).
        w, log_prob = self.actor(obs, generator=self._gen)
        if cfg.kl_to_prior:
            log_prob = log_prob - prior_log_prob(w)
        alpha_loss = (-self.log_alpha.exp() * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_optim.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_optim.step()
        alpha = self.log_alpha.detach().exp()

        # Actor: maximise Q^W plus entropy; gradients only reach the actor's parameters.
        pi_q = self.q_noise(obs, w).mean(0)
        actor_loss = (alpha * log_prob - pi_q).mean()
        self.actor_optim.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=self._actor_params)
        self.actor_optim.step()

        polyak_update(self._q_action_params, self._q_action_target_params, cfg.tau)

        q_noise_loss = torch.zeros((), device=self.device)
        if cfg.pool_noises > 0:
            self._grow_pool(obs[:cfg.pool_states])
        for _ in range(cfg.n_distill):
            q_noise_loss = self.distill_step(obs)
        self.num_updates += 1
        values = [q_action_loss.detach(), q_noise_loss, actor_loss.detach(), alpha,
                  alpha_loss.detach(), q.detach().mean(), pi_q.detach().mean(),
                  -log_prob.detach().mean()]
        names = ['critic_loss', 'q_noise_loss', 'actor_loss', 'alpha', 'alpha_loss', 'q_mean',
                 'q_noise_mean', 'entropy']
        if cfg.critic_loss == 'hl_gauss':
            # share of TD targets outside [value_min, value_max] (clamped; should stay ~0)
            values.append(((target_q < cfg.value_min) | (target_q > cfg.value_max)).float().mean())
            names.append('value_clipped')
        return dict(zip(names, torch.stack(values).tolist()))

    def q_action_loss(self, obs: torch.Tensor, action: torch.Tensor,
                      target_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Loss of Q^A on normalised chunks against TD targets ``[B]``, summed over the members.

        'mse': mean squared error; 'hl_gauss': cross-entropy to HL-Gauss target histograms.
        Also returns the members' Q-values ``[n, B]`` (detached for 'hl_gauss').
        """
        if self.config.critic_loss == 'mse':
            q = self.q_action(obs, action)
            return (q - target_q).square().mean(1).sum(), q
        logits = self.q_action.logits(obs, action)
        probs = hl_gauss_probs(target_q, self.q_action.support, self.config.hl_sigma)
        loss = -(probs * logits.log_softmax(-1)).sum(-1).mean(1).sum()
        return loss, self.q_action.expectation(logits.detach())

    @torch.no_grad()
    def td_target(self, reward: torch.Tensor, next_obs: torch.Tensor, terminated: torch.Tensor,
                  alpha: torch.Tensor) -> torch.Tensor:
        """
        Soft TD target of Q^A: ``r + gamma (1 - term) (min Q^A_targ(s', a') - alpha log pi)``.

        ``a' = pi_dp(s', w')`` with ``w' ~ pi^W(. | s')`` (drawn from the update generator).
        """
        next_w, next_log_prob = self.actor(next_obs, generator=self._gen)
        if self.config.kl_to_prior:
            next_log_prob = next_log_prob - prior_log_prob(next_w)
        next_q = self.q_action_target(next_obs, self._decode(next_obs, next_w)).min(0).values
        if self.config.backup_entropy:
            next_q = next_q - alpha * next_log_prob
        return reward + self.config.gamma * (1.0 - terminated) * next_q

    def distill_targets(self, obs: torch.Tensor,
                        noise: torch.Tensor) -> torch.Tensor:
        """Regression target of ``Q^W(obs, noise)``: reduced ``Q^A(obs, pi_dp(obs, noise))``."""
        with torch.no_grad():
            qa = self.q_action(obs, self._decode(obs, noise))
            return qa.min(0).values if self.config.distill_target == 'min' else qa.mean(0)

    def distill_noise(self, obs: torch.Tensor) -> torch.Tensor:
        """Noise ``[B, T * act_dim]`` for a distillation step: N(0, I), partly actor samples."""
        b = obs.shape[0]
        w = torch.randn((b, self.act_dim), generator=self._gen, device=self.device)
        n_actor = int(round(self.config.distill_actor_fraction * b))
        if n_actor > 0:
            with torch.no_grad():
                w[:n_actor] = self.actor(obs[:n_actor], with_log_prob=False,
                                         generator=self._gen)[0]
        return w

    def distill_loss(self, obs: torch.Tensor, noise: torch.Tensor,
                     target: torch.Tensor) -> torch.Tensor:
        """Sum over the Q^W members of the mean squared error to ``target``."""
        return (self.q_noise(obs, noise) - target).square().mean(1).sum()

    @torch.no_grad()
    def _grow_pool(self, obs: torch.Tensor) -> None:
        """Decode pool_noises fresh noises for each of ``obs`` and add them to the ring."""
        m, cap = self.config.pool_noises, self.config.pool_capacity
        o = obs.repeat_interleave(m, 0)
        w = torch.randn((len(o), self.act_dim), generator=self._gen, device=self.device)
        rows = (o, w, self._decode(o, w))
        if self._pool is None:
            self._pool = tuple(torch.empty((cap, r.shape[1]), device=self.device)
                               for r in rows)
        idx = (self._pool_ptr + torch.arange(len(o), device=self.device)) % cap
        for store, r in zip(self._pool, rows):
            store[idx] = r
        self._pool_ptr = int((self._pool_ptr + len(o)) % cap)
        self._pool_size = min(cap, self._pool_size + len(o))

    def distill_step(self, obs: torch.Tensor) -> torch.Tensor:
        """One Q^W regression step on fresh noise; return the (detached) loss before the step."""
        if self.config.pool_noises > 0 and self._pool_size > 0:
            idx = torch.randint(self._pool_size, (obs.shape[0],), generator=self._gen,
                                device=self.device)
            o, w, chunk = (t[idx] for t in self._pool)
            with torch.no_grad():
                qa = self.q_action(o, chunk)
                target = qa.min(0).values if self.config.distill_target == 'min' else qa.mean(0)
            loss = self.distill_loss(o, w, target)
            self.q_noise_optim.zero_grad(set_to_none=True)
            loss.backward()
            self.q_noise_optim.step()
            return loss.detach()
        w = self.distill_noise(obs)
        loss = self.distill_loss(obs, w, self.distill_targets(obs, w))
        self.q_noise_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.q_noise_optim.step()
        return loss.detach()

    def act(self, obs: np.ndarray | torch.Tensor, deterministic: bool = False,
            eps: np.ndarray | None = None) -> np.ndarray:
        """Return noise ``[T, act_dim]`` for one observation or ``[B, T, act_dim]`` for a batch."""
        w = actor_act(self.actor, obs, deterministic, self._act_gen, self.device, eps)
        return w.reshape(w.shape[:-1] + self.noise_shape)

    def set_obs_normalizer(self, mean: Any, std: Any) -> None:
        """
        Normalise observations as ``(obs - mean) / std`` inside every network from now on.

        Call it once before training (e.g. with the base policy's demonstration statistics, or
        the replay buffer's at the first update); the statistics ship with the actor weights.
        """
        for module in (self.actor, self.q_action, self.q_action_target, self.q_noise):
            module.obs_norm.set(torch.as_tensor(mean, dtype=torch.float32),
                                torch.as_tensor(std, dtype=torch.float32))

    def actor_state_dict(self) -> dict[str, torch.Tensor]:
        """Return a detached CPU copy of the noise actor's weights."""
        return {k: v.detach().cpu().clone() for k, v in self.actor.state_dict().items()}

    def load_actor_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load noise-actor weights (strict: names and shapes must match)."""
        self.actor.load_state_dict(state_dict)

    def _stateful(self) -> dict[str, Any]:
        """Name -> network or optimiser whose state a checkpoint holds."""
        return {'actor': self.actor, 'q_action': self.q_action,
                'q_action_target': self.q_action_target, 'q_noise': self.q_noise,
                'actor_optim': self.actor_optim, 'q_action_optim': self.q_action_optim,
                'q_noise_optim': self.q_noise_optim, 'alpha_optim': self.alpha_optim}

    def state_dict(self) -> dict[str, Any]:
        """Return a deep copy of everything needed to resume training (not the base policy)."""
        state = algorithm_state(self)
        if self._pool is not None:  # the distillation pool's filled rows, in ring order
            n = self._pool_size
            state['pool'] = {'obs': self._pool[0][:n].clone(), 'noise': self._pool[1][:n].clone(),
                             'chunk': self._pool[2][:n].clone(), 'ptr': self._pool_ptr}
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (the networks' shapes must match this object's)."""
        # Q^A's weights mean something only for the chunk input they were trained on (states
        # saved before 'delta' existed hold absolute inputs).
        saved = state_dict.get('config') or {}
        cfg = self.config
        theirs = (saved.get('action_input', 'absolute'), saved.get('delta_scale', cfg.delta_scale))
        ours = (cfg.action_input, cfg.delta_scale)
        if theirs[0] != ours[0] or (ours[0] == 'delta' and theirs[1] != ours[1]):
            raise ValueError(f"the state's action critic was trained on action_input "
                             f'{theirs[0]!r} (delta_scale {theirs[1]}); this learner uses '
                             f'{ours[0]!r} (delta_scale {ours[1]}): set them to match to resume')
        # ... and its outputs are values or histograms over one support (states saved before
        # the classification critic existed are 'mse').
        keys = ('value_min', 'value_max', 'value_bins')
        theirs_loss = (saved.get('critic_loss', 'mse'),) + tuple(saved.get(k) for k in keys)
        ours_loss = (cfg.critic_loss,) + tuple(getattr(cfg, k) for k in keys)
        if theirs_loss[0] != ours_loss[0] or (ours_loss[0] == 'hl_gauss'
                                             and theirs_loss != ours_loss):
            raise ValueError(f"the state's action critic was trained with critic_loss "
                             f'{theirs_loss[0]!r} (value_min/max/bins {theirs_loss[1:]}); this '
                             f'learner uses {ours_loss[0]!r} (value_min/max/bins '
                             f'{ours_loss[1:]}): set them to match to resume')
        load_algorithm_state(self, state_dict)
        pool = state_dict.get('pool')
        self._pool, self._pool_ptr, self._pool_size = None, 0, 0
        if pool is not None:
            cap = self.config.pool_capacity
            rows = [torch.as_tensor(pool[k], dtype=torch.float32, device=self.device)
                    for k in ('obs', 'noise', 'chunk')]
            n = min(len(rows[0]), cap)
            self._pool = tuple(torch.zeros((cap, r.shape[1]), device=self.device) for r in rows)
            for store, r in zip(self._pool, rows):
                store[:n] = r[:n]
            self._pool_size, self._pool_ptr = n, int(pool['ptr']) % cap
