"""EDM's deterministic Heun sampler (Karras et al. 2022, Algorithm 2).

t_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho, t_N = 0, with N = 18,
s_min = 0.002, s_max = 80, rho = 7: 80, 57.59, 40.79, ... 0.002, 0; 2N - 1 = 35 network
evaluations. Optional stochastic churn (S_churn, S_min, S_max, S_noise). The state keeps
3 channels; the conditioning reconstruction is passed unchanged to every evaluation and
the augmentation label is zero ("generate non-augmented images").
"""

from __future__ import annotations

import math

import torch


def sigma_steps(num_steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """The N + 1 noise levels t_0 > ... > t_{N-1} > t_N = 0 (float64)."""
    i = torch.arange(num_steps, dtype=torch.float64)
    t = (sigma_max ** (1 / rho) + i / max(num_steps - 1, 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([t, torch.zeros(1, dtype=torch.float64)])


def heun(denoiser, cond: torch.Tensor, num_steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0,
                rho: float = 7.0, S_churn: float = 0.0, S_min: float = 0.0, S_max: float = float("inf"),
                S_noise: float = 1.0, generator: torch.Generator | list[torch.Generator] | None = None,
                dtype: torch.dtype = torch.float64, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Sample x ~ p(x | cond); denoiser(x, sigma, cond) -> D(x; sigma). Returns (N, 3, H, W) in model units.
    ``generator``: one for the batch, or one per image (a sample then does not depend on the
    batch it is drawn in). ``noise``: the initial N(0, I) draw itself (the GPU check compares
    devices on the same draw), instead of drawing it."""
    t = sigma_steps(num_steps, sigma_min, sigma_max, rho).to(cond.device)
    shape = tuple(cond.shape)  # the target has the conditioning image's channels (3 for RGB)
    x = (_randn(shape, generator, cond.device) if noise is None else noise.to(cond.device, torch.float64)) * t[0]
    x = x.contiguous(memory_format=torch.channels_last) if cond.is_contiguous(memory_format=torch.channels_last) else x
    den = lambda x, s: denoiser(x.to(dtype), s.to(dtype), cond.to(dtype)).to(torch.float64)  # noqa: E731
    for i in range(num_steps):
        tc, tn = t[i], t[i + 1]
        gamma = min(S_churn / num_steps, math.sqrt(2) - 1) if S_min <= float(tc) <= S_max else 0.0
        th = tc + gamma * tc
        if gamma > 0:
            eps = _randn(shape, generator, cond.device)
            x = x + (th**2 - tc**2).sqrt() * S_noise * eps
        d = (x - den(x, th.expand(shape[0]))) / th
        x_next = x + (tn - th) * d
        if i < num_steps - 1:
            d2 = (x_next - den(x_next, tn.expand(shape[0]))) / tn
            x_next = x + (tn - th) * (d + d2) / 2
        x = x_next
    return x


def _randn(shape: tuple, generator, device) -> torch.Tensor:
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for {shape[0]} images")
        return torch.stack([torch.randn(shape[1:], generator=g, device=device, dtype=torch.float64) for g in generator])
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float64)


heun_sample = torch.no_grad()(heun)
"""``heun`` without gradients (restoration); ``heun`` itself is differentiable in ``cond``
(the robustness stage attacks the sampler through it)."""
