"""Reconstruction postprocessing for evaluation (paper section 5.1, "Postprocessing").

Reconstructions live in mean-subtracted space with arbitrary scale. Multiply by the
largest constant r such that ``mean + r * x`` lies in [0, 1], then add the mean back.
An all-zero candidate (r unbounded) maps to the mean image.
"""

from __future__ import annotations

import torch


def postprocess(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """x: (N, C, H, W) mean-subtracted reconstructions; mean: (C, H, W) or (N, C, H, W) in [0, 1]."""
    m = mean.to(x.dtype)
    m = (m.unsqueeze(0) if m.ndim == 3 else m).expand_as(x)
    big = torch.full_like(x, float("inf"))
    # for x > 0: r <= (1 - m) / x ; for x < 0: r <= (0 - m) / x = m / |x|
    r_pos = torch.where(x > 0, (1 - m) / x.clamp_min(1e-30), big)
    r_neg = torch.where(x < 0, m / (-x).clamp_min(1e-30), big)
    r = torch.minimum(r_pos, r_neg).flatten(1).min(1).values
    r = torch.where(torch.isfinite(r), r, torch.zeros_like(r))
    out = m + r.view(-1, 1, 1, 1) * x
    return out.clamp(0, 1)
