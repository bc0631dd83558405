"""Identifying image pairs (paper section 2, "identifying image pairs").

A snapshot x'_i (postprocessed) is a confident match to training image T when its SSIM
to T exceeds ``threshold`` (0.4) and the next best training image scores at least
``margin`` (0.05) lower. If any snapshot of candidate i matches confidently, all of its
snapshots are added as pairs with T. Choices where the paper is silent: if different
snapshots of one candidate match different images, the match with the highest SSIM
wins; the threshold is strict (>) and the margin inclusive (>=); with a single training
image the runner-up is -inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import best_matches, ssim


@dataclass
class Matched:
    candidate: np.ndarray  # (k,) accepted candidate indices
    target: np.ndarray  # (k,) matched training-image index
    accept_epoch: np.ndarray  # (k,) snapshot epoch whose match was accepted
    margin: np.ndarray  # (k,) best - runner-up at that snapshot
    best: np.ndarray  # (k,) SSIM at that snapshot


def accept(best: torch.Tensor, second: torch.Tensor, threshold: float = 0.4, margin: float = 0.05) -> torch.Tensor:
    """The acceptance rule on per-candidate best and runner-up SSIM."""
    return (best > threshold) & (best - second >= margin)


def match_candidates(
    snapshots: dict[int, torch.Tensor],
    targets: torch.Tensor,
    variant: str = "haim",
    threshold: float = 0.4,
    margin: float = 0.05,
) -> Matched:
    """snapshots: epoch -> (m, 3, H, W) postprocessed in [0, 1] (NaN rows = missing);
    targets: (n, 3, H, W) in [0, 1]."""
    m = next(iter(snapshots.values())).shape[0]
    best_score = torch.full((m,), -float("inf"), dtype=torch.float64)
    chosen = torch.full((m,), -1, dtype=torch.long)
    epoch = torch.full((m,), -1, dtype=torch.long)
    marg = torch.zeros(m, dtype=torch.float64)
    for ep, snap in snapshots.items():
        ok = ~torch.isnan(snap).flatten(1).any(1)
        if not ok.any():
            continue
        rows = torch.nonzero(ok).flatten()
        bm = best_matches(snap[rows].to(targets.dtype), targets, variant)
        acc = accept(bm.cand_best, bm.cand_second, threshold, margin)
        better = acc & (bm.cand_best.double() > best_score[rows])
        r = rows[better]
        best_score[r] = bm.cand_best[better].double()
        chosen[r] = bm.cand_arg[better]
        epoch[r] = ep
        marg[r] = (bm.cand_best - bm.cand_second)[better].double()
    sel = torch.nonzero(chosen >= 0).flatten()
    return Matched(
        sel.numpy(), chosen[sel].numpy(), epoch[sel].numpy(), marg[sel].numpy(), best_score[sel].numpy()
    )


def pair_ssim(snap: torch.Tensor, targets: torch.Tensor, variant: str = "haim") -> torch.Tensor:
    """SSIM of each snapshot row to its own target row."""
    return ssim(snap.to(targets.dtype), targets, variant)
