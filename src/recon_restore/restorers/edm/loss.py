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
             P_mean: float = -1.2, P_std: float = 1.2, generator: torch.Generator | None = None) -> torch.Tensor:
    n = target.shape[0]
    rnd = torch.randn(n, 1, 1, 1, generator=generator, device=target.device, dtype=target.dtype)
    sigma = (rnd * P_std + P_mean).exp()
    weight = (sigma**2 + model.sigma_data**2) / (sigma * model.sigma_data) ** 2
    noise = torch.randn(target.shape, generator=generator, device=target.device, dtype=target.dtype) * sigma
    denoised = model(target + noise, sigma.flatten(), cond, aug_label)
    return (weight * (denoised - target) ** 2).sum() / n
