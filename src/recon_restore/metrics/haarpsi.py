"""HaarPSI (Reisenhofer et al. 2018) through piq, on [0, 1] RGB or grey images (paper Figures 2, 3).

Caveat: piq first averages 2x2, so HaarPSI is
blind to patterns that the 2x2 mean cancels (a Nyquist checkerboard scores 1.0).
Its wavelet filters need sides of at least ``MIN_SIDE`` pixels: smaller images (e.g. 8x8
digits) get NaN, and tables report its means as missing.
"""

from __future__ import annotations

import torch


MIN_SIDE = 16  # piq's default scales: kernel size 2^(scales + 1) = 16 after the 2x2 mean


def haarpsi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """HaarPSI of each pair (x[i], y[i]); (N, C, H, W) in [0, 1], C = 1 or 3; returns (N,)
    (NaN for images smaller than ``MIN_SIDE``)."""
    import piq

    if min(x.shape[-2:]) < MIN_SIDE:
        return torch.full((x.shape[0],), float("nan"), dtype=x.dtype, device=x.device)
    x = x.clamp(0, 1)
    y = y.clamp(0, 1)
    return piq.haarpsi(x, y, data_range=1.0, reduction="none")


@torch.no_grad()
def haarpsi_matrix(a: torch.Tensor, b: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """HaarPSI of every pair (a[i], b[j]), computed in chunks of pairs. (N, M)."""
    n, m = a.shape[0], b.shape[0]
    out = torch.empty(n * m, dtype=a.dtype, device=a.device)
    ii = torch.arange(n, device=a.device).repeat_interleave(m)
    jj = torch.arange(m, device=a.device).repeat(n)
    for s in range(0, n * m, chunk):
        out[s : s + chunk] = haarpsi(a[ii[s : s + chunk]], b[jj[s : s + chunk]])
    return out.view(n, m)
