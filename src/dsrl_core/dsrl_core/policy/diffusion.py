"""
Our default base policy: a DDPM-trained diffusion policy sampled with deterministic DDIM.

Network: a conditional residual MLP that predicts the noise of a flattened action chunk
(T x act_dim) from the noisy chunk, the normalised observation and a sinusoidal embedding of the
diffusion step. An MLP, not a 1D-conv U-Net, because our chunks are tiny (4 x 3 = 12 numbers): a
U-Net's temporal convolutions have nothing to convolve over at T = 4, while the MLP is ~20x cheaper
per denoising step on the CPU (see ``python -m dsrl_core.bench.policy``) and fits the
demonstrations just as well.

Sampling (what DSRL steers): start from the given noise ``w`` (never drawn inside), run
``ddim_steps`` DDIM steps with eta = 0 over a ``train_steps``-step DDPM schedule, clamping the
predicted clean sample to [-1, 1] at every step, and un-normalise.
The map ``(obs, w) -> chunk`` is a fixed function.

Checkpoints are a directory with ``model.safetensors`` (weights and normalisation statistics) and
``config.json`` (architecture, schedule, :class:`PolicyMeta`). Loading never unpickles.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any

import safetensors.torch
import torch
from torch import nn

from dsrl_core.policy.base import PolicyMeta

CONFIG_FILE = 'config.json'
WEIGHTS_FILE = 'model.safetensors'
FORMAT_VERSION = 1


@dataclasses.dataclass
class DiffusionConfig:
    """Architecture and noise schedule of :class:`DiffusionPolicy`."""

    # Width of the residual MLP.
    hidden: int = 128
    # Number of residual blocks.
    n_blocks: int = 3
    # Size of the sinusoidal diffusion-step embedding.
    time_embed: int = 32
    # Number of steps of the DDPM training schedule (squared-cosine betas).
    train_steps: int = 20
    # Number of deterministic DDIM steps used by sample() (<= train_steps).
    ddim_steps: int = 8

    def __post_init__(self) -> None:
        if self.hidden <= 0 or self.n_blocks <= 0 or self.time_embed <= 0:
            raise ValueError('hidden, n_blocks and time_embed must be positive')
        if self.time_embed % 2:
            raise ValueError('time_embed must be even')
        if not 1 <= self.ddim_steps <= self.train_steps:
            raise ValueError(f'need 1 <= ddim_steps <= train_steps, got {self.ddim_steps} and '
                             f'{self.train_steps}')


def cosine_alpha_bars(train_steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Cumulative alpha products of the squared-cosine schedule (Nichol & Dhariwal), float64."""
    def f(t: float) -> float:
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = [min(1 - f((i + 1) / train_steps) / f(i / train_steps), max_beta)
             for i in range(train_steps)]
    return torch.cumprod(1 - torch.tensor(betas, dtype=torch.float64), dim=0)


def ddim_timesteps(train_steps: int, ddim_steps: int) -> list[int]:
    """Descending training-step indices visited by DDIM ('leading' spacing, ends at 0)."""
    ratio = train_steps // ddim_steps
    return [i * ratio for i in range(ddim_steps)][::-1]


class _ResBlock(nn.Module):
    def __init__(self, width: int, cond: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.film = nn.Linear(cond, 2 * width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(c).chunk(2, dim=-1)
        h = self.norm(x) * (1 + scale) + shift
        h = self.fc2(torch.relu(self.fc1(torch.relu(h))))
        return x + h


class NoisePredictor(nn.Module):
    """epsilon_theta(x_t, t, obs): a FiLM-conditioned residual MLP over the flattened chunk."""

    def __init__(self, obs_dim: int, chunk_dim: int, cfg: DiffusionConfig) -> None:
        super().__init__()
        self.time_embed = cfg.time_embed
        cond = cfg.hidden
        self.cond = nn.Sequential(nn.Linear(obs_dim + cfg.time_embed, cond), nn.Mish(),
                                  nn.Linear(cond, cond))
        self.inp = nn.Linear(chunk_dim, cfg.hidden)
        self.blocks = nn.ModuleList(_ResBlock(cfg.hidden, cond) for _ in range(cfg.n_blocks))
        self.out_norm = nn.LayerNorm(cfg.hidden)
        self.out = nn.Linear(cfg.hidden, chunk_dim)

    def _embed_t(self, t: torch.Tensor) -> torch.Tensor:
        half = self.time_embed // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, dtype=torch.float32,
                                                                  device=t.device) / half)
        ang = t.float()[:, None] * freqs[None]
        return torch.cat([ang.sin(), ang.cos()], dim=-1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Predict the noise in flattened chunks x [B, chunk_dim] at steps t [B]."""
        c = self.cond(torch.cat([obs, self._embed_t(t)], dim=-1))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        return self.out(torch.relu(self.out_norm(h)))


class DiffusionPolicy(nn.Module):
    """Frozen-able diffusion policy honouring the :class:`BasePolicy` contract."""

    def __init__(self, meta: PolicyMeta, cfg: DiffusionConfig | None = None) -> None:
        super().__init__()
        self.meta = meta
        self.cfg = cfg or DiffusionConfig()
        self.chunk_dim = meta.horizon * meta.act_dim
        self.net = NoisePredictor(meta.obs_dim, self.chunk_dim, self.cfg)
        # Normalisation statistics (fitted on the demonstrations; saved with the weights).
        self.register_buffer('obs_mean', torch.zeros(meta.obs_dim))
        self.register_buffer('obs_std', torch.ones(meta.obs_dim))
        self.register_buffer('act_min', torch.tensor(meta.action_low, dtype=torch.float32))
        self.register_buffer('act_max', torch.tensor(meta.action_high, dtype=torch.float32))
        self.register_buffer('alpha_bars', cosine_alpha_bars(self.cfg.train_steps).float())
        self._ddim_t = ddim_timesteps(self.cfg.train_steps, self.cfg.ddim_steps)

    # ----- normalisation -------------------------------------------------------------------------
    def fit_normalizer(self, obs: torch.Tensor, actions: torch.Tensor,
                       margin: float = 0.02) -> None:
        """Set obs mean/std and the action range from data ([N, obs_dim], [N, act_dim])."""
        self.obs_mean.copy_(obs.mean(0))
        self.obs_std.copy_(obs.std(0).clamp_min(1e-3))
        lo, hi = actions.min(0).values, actions.max(0).values
        pad = (hi - lo).clamp_min(1e-3) * margin
        low = torch.tensor(self.meta.action_low, dtype=torch.float32)
        high = torch.tensor(self.meta.action_high, dtype=torch.float32)
        self.act_min.copy_(torch.maximum(lo - pad, low))
        self.act_max.copy_(torch.minimum(hi + pad, high))

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """Observation in robot units -> zero-mean unit-variance."""
        return (obs - self.obs_mean) / self.obs_std

    def normalize_action(self, act: torch.Tensor) -> torch.Tensor:
        """Map an action in command units to [-1, 1] over the fitted range."""
        return 2 * (act - self.act_min) / (self.act_max - self.act_min) - 1

    def unnormalize_action(self, act: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize_action`."""
        return (act + 1) / 2 * (self.act_max - self.act_min) + self.act_min

    # ----- training ------------------------------------------------------------------------------
    def loss(self, obs: torch.Tensor, actions: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """DDPM epsilon-prediction loss for obs [B, obs_dim] and chunks [B, T, act_dim]."""
        b = obs.shape[0]
        x0 = self.normalize_action(actions).reshape(b, -1)
        t = torch.randint(0, self.cfg.train_steps, (b,), generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        ab = self.alpha_bars[t][:, None]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        return torch.mean((self.net(xt, t, self.normalize_obs(obs)) - eps) ** 2)

    # ----- the contract --------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """
        Run deterministic DDIM (eta = 0) from the given noise.

        obs [B, obs_dim], noise [B, T, A] -> action chunk [B, T, A] in command units. The
        denoising runs on the policy's own device (see ``.to()``); the chunk is returned on the
        device ``obs`` came on (the CPU for numpy input).
        """
        dev = self.alpha_bars.device
        out_device = obs.device if isinstance(obs, torch.Tensor) else torch.device('cpu')
        obs = torch.as_tensor(obs, dtype=torch.float32, device=dev)
        noise = torch.as_tensor(noise, dtype=torch.float32, device=dev)
        b = obs.shape[0]
        if obs.shape != (b, self.meta.obs_dim):
            raise ValueError(f'obs must be [B, {self.meta.obs_dim}], got {tuple(obs.shape)}')
        if noise.shape != (b, *self.meta.noise_shape):
            raise ValueError(f'noise must be [{b}, {self.meta.horizon}, {self.meta.act_dim}], '
                             f'got {tuple(noise.shape)}')
        cond = self.normalize_obs(obs)
        x = noise.reshape(b, -1)
        steps = self._ddim_t
        for i, t in enumerate(steps):
            ab = self.alpha_bars[t]
            ab_prev = (self.alpha_bars[steps[i + 1]] if i + 1 < len(steps)
                       else torch.ones((), device=dev))
            eps = self.net(x, torch.full((b,), t, dtype=torch.long, device=dev), cond)
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        return self.unnormalize_action(x.reshape(b, *self.meta.noise_shape)).to(out_device)

    # ----- checkpoints ---------------------------------------------------------------------------
    def save(self, directory: str | pathlib.Path, extra: dict[str, Any] | None = None) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``."""
        d = pathlib.Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        config = {'format_version': FORMAT_VERSION, 'kind': 'dsrl_core.diffusion_mlp',
                  'meta': self.meta.to_dict(), 'diffusion': dataclasses.asdict(self.cfg),
                  'extra': extra or {}}
        tensors = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        safetensors.torch.save_file(tensors, str(d / WEIGHTS_FILE))
        (d / CONFIG_FILE).write_text(json.dumps(config, indent=2) + '\n')

    @classmethod
    def load(cls, directory: str | pathlib.Path,
             ddim_steps: int | None = None) -> 'DiffusionPolicy':
        """Load a checkpoint directory written by :meth:`save` (frozen, eval mode)."""
        d = pathlib.Path(directory)
        cfg_path, w_path = d / CONFIG_FILE, d / WEIGHTS_FILE
        if not cfg_path.is_file() or not w_path.is_file():
            raise FileNotFoundError(f'{d} is not a diffusion-policy checkpoint: '
                                    f'need {CONFIG_FILE} and {WEIGHTS_FILE}')
        try:
            config = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f'{cfg_path}: invalid JSON: {exc}') from exc
        if config.get('format_version') != FORMAT_VERSION:
            raise ValueError(f'{cfg_path}: unsupported format_version '
                             f'{config.get("format_version")!r} (expected {FORMAT_VERSION})')
        meta = PolicyMeta.from_dict(config['meta'])
        dcfg = dict(config['diffusion'])
        if ddim_steps is not None:
            dcfg['ddim_steps'] = ddim_steps
        policy = cls(meta, DiffusionConfig(**dcfg))
        try:
            tensors = safetensors.torch.load_file(str(w_path))
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f'{w_path}: not a valid safetensors file: {exc}') from exc
        missing = set(policy.state_dict()) - set(tensors)
        unexpected = set(tensors) - set(policy.state_dict())
        if missing or unexpected:
            raise ValueError(f'{w_path}: tensors do not match the config (missing '
                             f'{sorted(missing)}, unexpected {sorted(unexpected)})')
        tensors['alpha_bars'] = policy.alpha_bars  # derived from the config, not trusted input
        policy.load_state_dict(tensors)
        policy.extra = config.get('extra', {})
        return policy.freeze()

    def freeze(self) -> 'DiffusionPolicy':
        """Eval mode, no gradients: the policy is a fixed function from here on."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self


def load_policy(path: str | None = None, ddim_steps: int | None = None) -> DiffusionPolicy:
    """Load a checkpoint (plugin ``dsrl_core.policy.diffusion:load_policy``; default: shipped)."""
    from dsrl_core.policy import default_checkpoint
    return DiffusionPolicy.load(path or default_checkpoint(), ddim_steps=ddim_steps)
