"""
Networks of the noise-space RL core: MLPs, a batched critic ensemble and a tanh-Gaussian actor.

Everything here is plain PyTorch and runs on the CPU. The critic ensemble keeps the weights of all
members stacked (``[n, in, out]``) so that evaluating every member is one batched matmul per layer
instead of ``n`` separate MLP calls; on a 2-core CPU that is where SAC spends its time.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

LOG_2 = math.log(2.0)
HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int] = (256, 256, 256),
        layer_norm: bool = True) -> nn.Sequential:
    """Build ``Linear -> [LayerNorm] -> ReLU`` blocks for each hidden width, then a Linear head."""
    layers: list[nn.Module] = []
    prev = in_dim
    for width in hidden:
        layers.append(nn.Linear(prev, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        prev = width
    layers.append(nn.Linear(prev, out_dim))
    return nn.Sequential(*layers)


def run_mlp(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """
    ``net(x)`` for an :func:`mlp`, calling the functional ops on its parameters directly.

    The same numbers as ``net(x)``, without ``nn.Module.__call__`` per layer: at batch 1 (the
    policy node's actor, once per chunk) that call overhead is about a third of the forward.
    """
    for m in net:
        if isinstance(m, nn.Linear):
            x = F.linear(x, m.weight, m.bias)
        elif isinstance(m, nn.LayerNorm):
            x = F.layer_norm(x, m.normalized_shape, m.weight, m.bias, m.eps)
        elif isinstance(m, nn.ReLU):
            x = F.relu(x)
        else:
            x = m(x)
    return x


class ObsNormalizer(nn.Module):
    """
    Fixed affine observation normaliser ``(obs - mean) / std`` stored as buffers.

    It travels inside the state dict (so the policy node's actor normalises exactly as the
    learner's); identity until :meth:`set` is called.
    """

    def __init__(self, obs_dim: int) -> None:
        super().__init__()
        self.register_buffer('obs_mean', torch.zeros(obs_dim))
        self.register_buffer('obs_std', torch.ones(obs_dim))

    @torch.no_grad()
    def set(self, mean: torch.Tensor, std: torch.Tensor, min_std: float = 1e-3) -> None:
        """Set the statistics; ``std`` is clamped below at ``min_std``."""
        self.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(min_std))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalise a batch of observations."""
        return (obs - self.obs_mean) / self.obs_std


class CriticEnsemble(nn.Module):
    """
    ``n`` independent Q(s, a) MLPs evaluated together with one batched matmul per layer.

    Member ``i`` computes exactly what ``mlp(obs_dim + act_dim, out, hidden, layer_norm)`` with
    its weights would (see :meth:`member`); the LayerNorm affine parameters are per member.

    With ``support`` (the bin centres of a value histogram, ``[bins]``) each member outputs
    ``bins`` logits (:meth:`logits`) and :meth:`forward` returns the expected value under their
    softmax: a classification critic trained with :func:`hl_gauss_probs` targets. Without it,
    one scalar per member (plain regression).
    """

    def __init__(self, obs_dim: int, act_dim: int, n: int = 2,
                 hidden: Sequence[int] = (256, 256, 256), layer_norm: bool = True,
                 support: torch.Tensor | None = None) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f'an ensemble needs at least one member, got n={n}')
        self.obs_dim, self.act_dim, self.n = obs_dim, act_dim, n
        self.hidden = tuple(int(h) for h in hidden)
        self.layer_norm = layer_norm
        self.obs_norm = ObsNormalizer(obs_dim)
        self.out_dim = 1
        self.support: torch.Tensor | None
        if support is None:
            self.register_buffer('support', None)
        else:
            support = torch.as_tensor(support, dtype=torch.float32).reshape(-1)
            if support.numel() < 2 or not bool((support[1:] > support[:-1]).all()):
                raise ValueError('support must hold at least 2 increasing bin centres')
            self.register_buffer('support', support)
            self.out_dim = support.numel()
        dims = (obs_dim + act_dim,) + self.hidden + (self.out_dim,)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.ln_weights = nn.ParameterList()
        self.ln_biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims[:-1], dims[1:]):
            # Same initialisation as nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            bound = 1.0 / math.sqrt(fan_in)
            w = torch.empty(n, fan_in, fan_out).uniform_(-bound, bound)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.empty(n, 1, fan_out).uniform_(-bound, bound)))
        if layer_norm:
            for width in self.hidden:
                self.ln_weights.append(nn.Parameter(torch.ones(n, 1, width)))
                self.ln_biases.append(nn.Parameter(torch.zeros(n, 1, width)))

    def logits(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Return every member's raw output, shape ``[n, B, out_dim]``."""
        x = torch.cat((self.obs_norm(obs), act), dim=-1)
        h = x.unsqueeze(0).expand(self.n, -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i == last:
                break
            if self.layer_norm:
                h = F.layer_norm(h, (h.shape[-1],))
                h = torch.addcmul(self.ln_biases[i], h, self.ln_weights[i])
            h = torch.relu(h)
        return h

    def expectation(self, logits: torch.Tensor) -> torch.Tensor:
        """Q-values ``[n, B]`` of :meth:`logits` output (the histogram mean with a support)."""
        if self.support is None:
            return logits.squeeze(-1)
        return logits.softmax(-1) @ self.support

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Return the Q-values of every member, shape ``[n, B]``."""
        return self.expectation(self.logits(obs, act))

    @torch.no_grad()
    def member(self, i: int) -> nn.Sequential:
        """Return an independent ``mlp`` holding a copy of member ``i``'s weights (raw obs in)."""
        net = mlp(self.obs_dim + self.act_dim, self.out_dim, self.hidden, self.layer_norm)
        linears = [m for m in net if isinstance(m, nn.Linear)]
        norms = [m for m in net if isinstance(m, nn.LayerNorm)]
        for lin, w, b in zip(linears, self.weights, self.biases):
            lin.weight.copy_(w[i].T)
            lin.bias.copy_(b[i, 0])
        for ln, g, b in zip(norms, self.ln_weights, self.ln_biases):
            ln.weight.copy_(g[i, 0])
            ln.bias.copy_(b[i, 0])
        return net


class TanhGaussianActor(nn.Module):
    """
    Diagonal Gaussian squashed by tanh and scaled to ``[-magnitude, magnitude]``.

    The log-std is clamped to ``[log_std_min, log_std_max]`` (the DSRL authors' choice). The
    log-probability includes the Jacobian of ``a = magnitude * tanh(u)``.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256, 256),
                 magnitude: float = 1.5, log_std_min: float = -20.0, log_std_max: float = 2.0,
                 layer_norm: bool = True) -> None:
        super().__init__()
        if magnitude <= 0:
            raise ValueError(f'magnitude must be positive, got {magnitude}')
        if log_std_min >= log_std_max:
            raise ValueError('log_std_min must be < log_std_max')
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.magnitude = float(magnitude)
        self.log_std_min, self.log_std_max = float(log_std_min), float(log_std_max)
        self.obs_norm = ObsNormalizer(obs_dim)
        self.net = mlp(obs_dim, 2 * act_dim, hidden, layer_norm)
        self._log_magnitude = math.log(self.magnitude)

    def forward(self, obs: torch.Tensor, deterministic: bool = False, with_log_prob: bool = True,
                generator: torch.Generator | None = None, eps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Sample (reparameterised) an action and its log-probability ``[B]`` (or None).

        ``deterministic=True`` returns ``magnitude * tanh(mean)`` and the log-density there.
        ``eps`` (``[act_dim]`` or ``[B, act_dim]``), when given, is the standard-normal draw to
        use instead of a fresh one: the same ``eps`` for every chunk of an episode gives
        temporally correlated exploration (a new deterministic-looking behaviour per episode).
        """
        mean, log_std = run_mlp(self.net, self.obs_norm.forward(obs)).chunk(2, dim=-1)
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        if deterministic:
            eps = torch.zeros_like(mean)
            u = mean
        else:
            if eps is None:
                eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype,
                                  device=mean.device)
            else:
                eps = torch.as_tensor(eps, dtype=mean.dtype, device=mean.device).expand_as(mean)
            u = mean + log_std.exp() * eps
        action = self.magnitude * torch.tanh(u)
        if not with_log_prob:
            return action, None
        # log N(u; mean, std) with (u - mean) / std = eps.
        log_prob = (-0.5 * eps.square() - log_std - HALF_LOG_2PI).sum(-1)
        # log |d a / d u| = log(magnitude) + log(1 - tanh(u)^2), written stably.
        log_det = (2.0 * (LOG_2 - u - F.softplus(-2.0 * u))).sum(-1)
        log_prob = log_prob - log_det - self.act_dim * self._log_magnitude
        return action, log_prob


def hl_gauss_probs(values: torch.Tensor, support: torch.Tensor,
                   sigma_ratio: float = 0.75) -> torch.Tensor:
    """
    HL-Gauss classification targets ``[B, bins]`` for scalar ``values`` ``[B]``.

    Each value becomes a Gaussian of standard deviation ``sigma_ratio`` x the bin width,
    integrated over the bins around the ``support`` centres and renormalised (the centres must
    be evenly spaced, as ``torch.linspace`` makes them: the width is read from the first gap);
    values outside the support are clamped to its ends first. Training a critic by cross-entropy
    to these (Imani & White 2018; Farebrother et al. 2024, "Stop Regressing") keeps the
    expected value near the regression target and is reported to fit sharp value steps better.
    """
    width = float(support[1] - support[0])
    edges = torch.cat([support - width / 2, support[-1:] + width / 2])
    v = values.clamp(float(support[0]), float(support[-1])).unsqueeze(-1)
    cdf = torch.special.ndtr((edges - v) / (sigma_ratio * width))
    probs = cdf[..., 1:] - cdf[..., :-1]
    return probs / probs.sum(-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def polyak_update(params: Iterable[torch.Tensor], target_params: Iterable[torch.Tensor],
                  tau: float) -> None:
    """In place ``target <- (1 - tau) * target + tau * param`` for every pair."""
    params, target_params = list(params), list(target_params)
    if len(params) != len(target_params):
        raise ValueError(f'{len(params)} params but {len(target_params)} target params')
    torch._foreach_lerp_(target_params, params, tau)
