"""Aborting hopeless reconstruction runs early (paper section 5.1: 56 of 303 runs aborted).

* ``blind`` (default): uses only the objective's own values, no ground truth. The score is
  the first layer's relative stationarity residual ||W1 - g1||^2 / ||W1||^2 (the first
  layer is where the training images are encoded; the total residual is dominated by
  W2 and barely separates good from hopeless runs). A run whose score is still above
  ``threshold`` at the abort iteration has not explained the weights and is stopped.
* ``oracle``: Haim et al.'s criterion, which needs the training set: the NCC
  "extraction score" (mean of the 10 smallest per-training-image nearest-candidate
  distances between per-image, per-channel standardised images); runs above
  ``threshold`` (Haim: 3300 for CIFAR-10) are stopped.
"""

from __future__ import annotations

import torch

from ..metrics.ncc import standardise as _standardise

CRITERIA = ("none", "blind", "oracle")


def blind_score(stat_first: torch.Tensor, first_sq: torch.Tensor) -> torch.Tensor:
    """||W1 - g1||^2 / ||W1||^2 per run: 1 at initialisation (x ~ 0), 0 at an exact KKT point."""
    return stat_first / first_sq


def ncc_extraction_score(cands: torch.Tensor, train: torch.Tensor, top: int = 10) -> torch.Tensor:
    """Haim's extraction score per run. cands: (R, m, d); train: (n, d). Returns (R,)."""
    t = _standardise(train.to(cands.dtype))
    scores = []
    for r in range(cands.shape[0]):
        c = _standardise(cands[r])
        dist = (c.pow(2).sum(1, keepdim=True) + t.pow(2).sum(1) - 2 * c @ t.T).clamp_min(0)  # (m, n)
        per_train = dist.min(0).values  # at most one candidate per training image
        k = min(top, per_train.numel())
        scores.append(per_train.sort().values[:k].mean())
    return torch.stack(scores)
