"""EDM preconditioning with a conditioning image (paper section 3; EDM Table 1;
Karras et al. 2022, Table 1 and appendix B.6).

    c_skip = s_d^2 / (s^2 + s_d^2)      c_out = s s_d / sqrt(s^2 + s_d^2)
    c_in   = 1 / sqrt(s^2 + s_d^2)      c_noise = ln(s) / 4
    D(x; s, cond) = c_skip x + c_out F([c_in x, cond]; c_noise, aug)

The network sees 6 channels: the noisy target scaled by c_in and the conditioning
reconstruction, unscaled by default (``cond_scaling: none``; c_in -> 0 at large sigma would
otherwise shrink it) or scaled by c_in like the target (``c_in``). Paper 000 only says
"the same method with six input channels"; which the authors did is not stated, so it is a
parameter (docs/methods.md gives the demo's measurement of both). The skip path covers only
the 3 target channels. Images are in [-1, 1], sigma_data = 0.5.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .network import DDPMpp


def coefficients(sigma: torch.Tensor, sigma_data: float = 0.5):
    """(c_skip, c_out, c_in, c_noise) for a tensor of noise levels."""
    s2, d2 = sigma**2, sigma_data**2
    return d2 / (s2 + d2), sigma * sigma_data / (s2 + d2).sqrt(), 1 / (s2 + d2).sqrt(), sigma.log() / 4


class EDMPrecond(nn.Module):
    def __init__(self, network: dict, sigma_data: float = 0.5, cond_scaling: str = "none"):
        super().__init__()
        if cond_scaling not in ("none", "c_in"):
            raise ValueError(f"cond_scaling {cond_scaling!r}: expected 'none' or 'c_in'")
        self.config = dict(network=dict(network), sigma_data=sigma_data, cond_scaling=cond_scaling)
        self.net = DDPMpp(**network)
        self.sigma_data = sigma_data
        self.cond_scaling = cond_scaling

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, aug_label: torch.Tensor | None = None) -> torch.Tensor:
        """x: noisy target (N, 3, H, W); sigma: (N,) or scalar; cond: (N, 3, H, W) in [-1, 1]."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
        c_skip, c_out, c_in, c_noise = coefficients(sigma, self.sigma_data)
        cond = cond.to(x.dtype) * (c_in if self.cond_scaling == "c_in" else 1)
        f = self.net(torch.cat([c_in * x, cond], dim=1), c_noise.flatten(), aug_label)
        return c_skip * x + c_out * f.to(x.dtype)
