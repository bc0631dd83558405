"""Noise2Noise losses (Lehtinen et al. 2018, sections 3.1-3.3; paper 004, section 3.2).

The loss sets which statistic of the target distribution the network learns, so it goes
with the corruption: L2 (mean) for zero-mean noise (Gaussian, Poisson, Bernoulli with its
mask), L1 (median) for text, annealed L0 (mode) for random-valued impulse noise:
(|f(x) - y| + 1e-8)^gamma with gamma lowered linearly from 2 to 0 over training. Only
pixels marked ``valid`` enter the loss (Bernoulli: the target's kept pixels).
"""

from __future__ import annotations

import torch

from ...methods import LOSSES

L0_EPS = 1e-8


def l0_gamma(step: int, steps: int) -> float:
    """The annealed L0 exponent at ``step`` of ``steps``: 2 at the start, 0 at the end."""
    return 2.0 * max(0.0, 1.0 - step / max(steps, 1))


def n2n_loss(pred: torch.Tensor, target: torch.Tensor, loss: str, valid: torch.Tensor | None = None,
             gamma: float = 2.0, valid_total: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the valid pixels of the per-pixel loss (``gamma``: the L0 exponent).
    ``valid_total``: the denominator when the valid pixels are counted elsewhere (data-parallel
    training: the global batch's count; default: this batch's)."""
    d = (pred - target).abs()
    if loss == "l2":
        e = d * d
    elif loss == "l1":
        e = d
    elif loss == "l0":
        e = (d + L0_EPS) ** gamma
    else:
        raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
    if valid is None:
        return e.mean()
    v = valid.expand_as(e)
    return (e * v).sum() / (v.sum() if valid_total is None else valid_total).clamp_min(1.0)
