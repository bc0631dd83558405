"""Peak signal-to-noise ratio of image pairs in [0, 1] (reported beside SSIM and HaarPSI)."""

from __future__ import annotations

import torch


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each pair (x[i], y[i]), data range 1; identical pairs give +inf. Returns (N,)."""
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1 / mse)
