"""Haim et al.'s cheap nearest-image heuristic (paper section 5.1.1, footnote 3).

Both image sets are bicubically downsampled by 1/2 (16x16 for CIFAR, ``align_corners``
off, no antialiasing), each image is standardised per channel (subtract the channel
mean, divide by its unbiased standard deviation), and the distance is the squared L2
distance divided by the number of values. Haim et al. call it ``ncc2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def standardise(x: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Per image and channel: subtract the mean, divide by the unbiased std. (N, ...) -> (N, d)."""
    n = x.shape[0]
    v = x.reshape(n, channels, -1)
    v = (v - v.mean(-1, keepdim=True)) / v.std(-1, keepdim=True).clamp_min(1e-12)
    return v.reshape(n, -1)


def ncc_features(x: torch.Tensor, downsample: int = 2) -> torch.Tensor:
    """(N, C, H, W) -> (N, C*H*W/downsample^2) standardised, downsampled features."""
    x = x.double()
    if downsample > 1:
        x = F.interpolate(x, scale_factor=1 / downsample, mode="bicubic", align_corners=False, antialias=False)
    return standardise(x, x.shape[1])


@torch.no_grad()
def ncc_nearest(a: torch.Tensor, b: torch.Tensor, downsample: int = 2, chunk: int = 4096) -> torch.Tensor:
    """For each a[i], the index of the nearest b[j] by the ncc distance. Returns (N,) long."""
    fb = ncc_features(b, downsample)
    nb = fb.pow(2).sum(1)
    out = torch.empty(a.shape[0], dtype=torch.long)
    for s in range(0, a.shape[0], chunk):
        fa = ncc_features(a[s : s + chunk], downsample)
        dist = fa.pow(2).sum(1, keepdim=True) + nb - 2 * fa @ fb.T
        out[s : s + chunk] = dist.argmin(1)
    return out
