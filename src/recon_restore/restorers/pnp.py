"""Plug-and-play restoration with a trained denoiser as the prior (paper 003, "denoisers as
implicit priors"; Venkatakrishnan et al. 2013, half-quadratic splitting as in Zhang et al.
2017): the trained BF-DnCNN D stands in for the proximal step of an image prior, and the
data term keeps the result near the reconstruction y.

    min_x 1/2 ||x - y||^2 + R(x)   split as   x = (y + mu z) / (1 + mu)   (data step, exact)
                                               z = D(x)                   (prior step)

starting from z = D(y), ``iterations`` times; the restoration is the last z. mu weighs the
prior's image against the reconstruction (mu -> 0: one pass of D on a mix dominated by y;
mu -> infinity: D applied ``iterations`` times). BF-DnCNN is blind (bias-free: no noise
level to set), so the scheme has no noise-level schedule. Choices where paper 003 is silent:
``mu``, ``iterations`` (params ``restorers.pnp``). The denoiser is the restorer named by
``Method.prior`` (its checkpoint).
"""

from __future__ import annotations

import torch

from .. import methods
from .base import Restored, Restorer


def pnp_hqs(denoise, y: torch.Tensor, mu: float, iterations: int) -> torch.Tensor:
    """Half-quadratic splitting with the denoiser ``denoise`` as the prior's proximal map."""
    z = denoise(y)
    for _ in range(iterations - 1):
        z = denoise((y + mu * z) / (1 + mu))
    return z


class PlugAndPlay(Restorer):
    threads = 2  # a network job

    @property
    def prior(self):
        """The trained restorer whose network is the prior."""
        return methods.restorer(methods.entry(self.name).prior, self.restorers_cfg, self.spec)

    def load(self, device, checkpoint=None) -> None:
        self.device = device
        prior = self.prior
        prior.load(device, checkpoint)
        self.model = prior.model

    @torch.no_grad()
    def restore(self, images, rows, seed, batch, progress=False) -> Restored:
        s = self.section
        model = self.model.to(self.device, torch.float32).eval()
        out = torch.empty_like(images, dtype=torch.float32)
        for i in range(0, len(images), batch):
            y = images[i : i + batch].to(self.device, torch.float32)
            out[i : i + batch] = pnp_hqs(model, y, s["mu"], s["iterations"]).clamp(0, 1).cpu()
        return Restored({self.name: out})

    def restore_flops(self) -> float:
        return float(self.section["iterations"] * self.prior.flops()["forward"])


RESTORER = PlugAndPlay
