"""EDM training loss (Karras et al. 2022, section 5 and Table 1).

ln sigma ~ N(P_mean, P_std^2) with P_mean = -1.2, P_std = 1.2; noise is added to the
target only; weight lambda(sigma) = (sigma^2 + s_d^2) / (sigma s_d)^2; the loss is summed
over pixels and averaged over the batch. The target is the augmented clean image and the
network is told the augmentation label ("non-leaky" augmentation).
"""

from __future__ import annotations

import torch

from .precond import EDMPrecond


def edm_loss(model: EDMPrecond, target: torch.Tensor, cond: torch.Tensor, aug_label: torch.Tensor | None,
             P_mean: float = -1.2, P_std: float = 1.2, generator: torch.Generator | None = None,
             part: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Mean over the batch. ``part=(lo, hi, n)``: the batch is rows lo..hi-1 of a global batch
    of n (data-parallel training); noise levels and noise are drawn for all n and sliced."""
    n = target.shape[0]
    lo, hi, n_all = part or (0, n, n)
    rnd = torch.randn(n_all, 1, 1, 1, generator=generator, device=target.device, dtype=target.dtype)[lo:hi]
    sigma = (rnd * P_std + P_mean).exp()
    weight = (sigma**2 + model.sigma_data**2) / (sigma * model.sigma_data) ** 2
    noise = torch.randn((n_all, *target.shape[1:]), generator=generator, device=target.device, dtype=target.dtype)[lo:hi]
    noise = noise * sigma
    denoised = model(target + noise, sigma.flatten(), cond, aug_label)
    return (weight * (denoised - target) ** 2).sum() / n
