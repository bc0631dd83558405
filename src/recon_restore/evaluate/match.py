"""Best match per training image (paper section 5.1.1 and Figures 2, 3, 5).

For every training image of the evaluation network, the best match among a method's
restored reconstructions is the one with the highest SSIM (exact all pairs, variant
``haim`` by default). HaarPSI best matches are exact over all pairs when ``topk`` is
None; otherwise HaarPSI is computed for each training image's ``topk`` candidates by
SSIM (the paper, like Haim et al., pre-matches with a cheaper heuristic; its footnote 3).
The same reductions are kept separately for the two random halves of the runs
(Figure 5). The SSIM matrix is streamed in blocks and never held whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import haarpsi
from ..metrics.ssim import _blocks


@dataclass
class MatchResult:
    ssim: np.ndarray  # (M,) best SSIM per training image
    ssim_arg: np.ndarray  # (M,) candidate row
    haarpsi: np.ndarray  # (M,)
    haarpsi_arg: np.ndarray
    half_ssim: np.ndarray  # (2, M) best SSIM within each half of the runs
    half_haarpsi: np.ndarray  # (2, M)


@torch.no_grad()
def best_match(cands: torch.Tensor, targets: torch.Tensor, half: np.ndarray, variant: str = "haim",
               topk: int | None = 32, chunk: int | None = None) -> MatchResult:
    """cands (N, 3, H, W) and targets (M, 3, H, W) in [0, 1]; half: (N,) in {0, 1}."""
    n, m = cands.shape[0], targets.shape[0]
    cands = cands.float()
    targets = targets.float()
    half_t = torch.as_tensor(half, dtype=torch.long)
    best = torch.full((m,), -float("inf"), dtype=torch.float64)
    arg = torch.full((m,), -1, dtype=torch.long)
    hbest = torch.full((2, m), -float("inf"), dtype=torch.float64)
    k = n if topk is None else min(topk, n)
    top_v = torch.full((m, 0), -float("inf"), dtype=torch.float64)
    top_i = torch.zeros((m, 0), dtype=torch.long)
    for start, block in _blocks(cands, targets, variant, chunk):  # block: (b, M)
        rows = torch.arange(start, start + block.shape[0])
        bmax, barg = block.max(0)
        upd = bmax > best
        best, arg = torch.where(upd, bmax, best), torch.where(upd, barg + start, arg)
        for h in (0, 1):
            sel = half_t[rows] == h
            if sel.any():
                hbest[h] = torch.maximum(hbest[h], block[sel].max(0).values)
        v = torch.cat([top_v, block.t()], 1)
        i = torch.cat([top_i, rows.unsqueeze(0).expand(m, -1)], 1)
        kk = min(k, v.shape[1])
        tv, ti = v.topk(kk, dim=1)
        top_v, top_i = tv, torch.gather(i, 1, ti)
    # HaarPSI on each target's candidate list
    flat_t = torch.arange(m).repeat_interleave(top_i.shape[1])
    flat_c = top_i.flatten()
    hp = torch.empty(flat_c.shape[0], dtype=torch.float64)
    for s in range(0, len(flat_c), 4096):
        hp[s : s + 4096] = haarpsi(cands[flat_c[s : s + 4096]], targets[flat_t[s : s + 4096]]).double()
    hp = hp.view(m, -1)
    hbest_val, hidx = hp.max(1)
    harg = torch.gather(top_i, 1, hidx.unsqueeze(1)).squeeze(1)
    hhalf = torch.full((2, m), -float("inf"), dtype=torch.float64)
    for h in (0, 1):
        mask = half_t[top_i] == h
        hhalf[h] = torch.where(mask, hp, torch.full_like(hp, -float("inf"))).max(1).values
    return MatchResult(best.numpy(), arg.numpy(), hbest_val.numpy(), harg.numpy(), hbest.numpy(), hhalf.numpy())


def split_halves(run_ids: np.ndarray, seed: int) -> dict[int, int]:
    """Assign every run to one of two random halves (Figure 5)."""
    runs = np.unique(run_ids)
    perm = np.random.default_rng(seed).permutation(len(runs))
    return {int(runs[p]): int(i >= len(runs) // 2 + len(runs) % 2) for i, p in enumerate(perm)}
