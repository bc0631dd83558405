"""EDM preconditioning with a conditioning image (paper section 3; EDM Table 1;
Karras et al. 2022, Table 1 and appendix B.6).

    c_skip = s_d^2 / (s^2 + s_d^2)      c_out = s s_d / sqrt(s^2 + s_d^2)
    c_in   = 1 / sqrt(s^2 + s_d^2)      c_noise = ln(s) / 4
    D(x; s, cond) = c_skip x + c_out F([c_in x, cond]; c_noise, aug)

The network sees 6 channels: the noisy target scaled by c_in and the conditioning
reconstruction *unscaled* (c_in -> 0 at large sigma would otherwise erase it). The skip
path covers only the 3 target channels. Images are in [-1, 1], sigma_data = 0.5.
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
    def __init__(self, network: dict, sigma_data: float = 0.5):
        super().__init__()
        self.config = dict(network=dict(network), sigma_data=sigma_data)
        self.net = DDPMpp(**network)
        self.sigma_data = sigma_data

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, aug_label: torch.Tensor | None = None) -> torch.Tensor:
        """x: noisy target (N, 3, H, W); sigma: (N,) or scalar; cond: (N, 3, H, W) in [-1, 1]."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1).expand(x.shape[0], 1, 1, 1)
        c_skip, c_out, c_in, c_noise = coefficients(sigma, self.sigma_data)
        f = self.net(torch.cat([c_in * x, cond.to(x.dtype)], dim=1), c_noise.flatten(), aug_label)
        return c_skip * x + c_out * f.to(x.dtype)
