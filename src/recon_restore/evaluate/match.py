"""Assigning reconstructions to training images, the paper's best-match rule (section
5.1.1, footnotes 3 and 4).

Every reconstruction of a method is assigned to exactly one image of a gallery (the
evaluation network's training images, or a null gallery of unseen images): its nearest.
A gallery image's best match is the best among the reconstructions assigned to it; an
image that no reconstruction is assigned to has no match (a black cell in the grids,
never good). Assignment rules:

* ``ssim`` (default): nearest by the exact SSIM, from the all-pairs GEMM;
* ``ncc``: Haim et al.'s heuristic (``metrics.ncc``), then the exact SSIM of that pair,
  as the paper did it (footnote 3);
* ``none``: no assignment; each image's best match is the maximum over all
  reconstructions. Kept for comparison only: it lets one smooth reconstruction count
  for many images.

``assign`` makes one pass over the SSIM matrix (streamed in blocks, never held whole)
and returns both the assignment and, per run, each image's maximum over all of that
run's reconstructions (the ``none`` rule), so that counts can be recomputed for any
subset of runs (bootstrap intervals, the two halves of Figure 5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..metrics import haarpsi, ncc_nearest, psnr, ssim, ssim_blocks

RULES = ("ssim", "ncc", "none")


@dataclass
class Assignment:
    image: np.ndarray  # (N,) gallery index each reconstruction is assigned to
    ssim: np.ndarray  # (N,) exact SSIM of each reconstruction to its assigned image
    run_max: np.ndarray  # (R, M) per run, each image's SSIM maximum over all the run's reconstructions


@torch.no_grad()
def assign(cands: torch.Tensor, gallery: torch.Tensor, run_index: np.ndarray, n_runs: int, rule: str = "ssim",
           variant: str = "haim", chunk: int | None = None) -> Assignment:
    """cands (N, 3, H, W), gallery (M, 3, H, W) in [0, 1]; run_index (N,) in [0, n_runs)."""
    if rule not in RULES:
        raise ValueError(f"unknown assignment rule {rule!r}; expected one of {RULES}")
    n, m = cands.shape[0], gallery.shape[0]
    cands, gallery = cands.float(), gallery.float()
    dev = cands.device
    ridx = torch.as_tensor(run_index, dtype=torch.long, device=dev)
    image = torch.empty(n, dtype=torch.long, device=dev)
    best = torch.empty(n, dtype=torch.float64, device=dev)
    run_max = torch.full((n_runs, m), -float("inf"), dtype=torch.float64, device=dev)
    for start, block in ssim_blocks(cands, gallery, variant, chunk):  # block: (b, M)
        rows = slice(start, start + block.shape[0])
        v, a = block.max(1)
        best[rows], image[rows] = v.double(), a
        idx = ridx[rows].unsqueeze(1).expand(-1, m)
        run_max.scatter_reduce_(0, idx, block.double(), reduce="amax")
    if rule == "ncc":
        image = ncc_nearest(cands, gallery).to(dev)
        best = ssim(cands.double(), gallery.double()[image], variant)
    return Assignment(image.cpu().numpy(), best.cpu().numpy(), run_max.cpu().numpy())


@torch.no_grad()
def match_streamed(read: Callable[[slice], torch.Tensor], n: int, targets: torch.Tensor, galleries: list[torch.Tensor],
                   run_index: np.ndarray, n_runs: int, rule: str, variant: str, chunk: int) -> dict[str, np.ndarray]:
    """``assign`` and ``pair_scores`` against the training images and every null gallery, for
    ``n`` reconstructions read ``chunk`` rows at a time (``read(slice)``): every quantity is
    per reconstruction or a per-run maximum, so the chunks reduce exactly and memory holds
    one chunk. Returns the match file's arrays."""
    out = {"assigned": np.empty(n, np.int64), "ssim": np.empty(n), "haarpsi": np.empty(n), "psnr": np.empty(n),
           "run_max": np.full((n_runs, len(targets)), -np.inf),
           "null_assigned": np.empty((len(galleries), n), np.int64), "null_ssim": np.empty((len(galleries), n)),
           "null_run_max": np.full((len(galleries), n_runs, len(targets)), -np.inf)}
    for s in range(0, n, chunk):
        sl = slice(s, min(n, s + chunk))
        c = read(sl).to(targets.device)
        a = assign(c, targets, run_index[sl], n_runs, rule, variant)
        out["assigned"][sl], out["ssim"][sl] = a.image, a.ssim
        np.maximum(out["run_max"], a.run_max, out=out["run_max"])
        out["haarpsi"][sl], out["psnr"][sl] = pair_scores(c, targets, a.image)
        for k, g in enumerate(galleries):
            b = assign(c, g, run_index[sl], n_runs, rule, variant)
            out["null_assigned"][k, sl], out["null_ssim"][k, sl] = b.image, b.ssim
            np.maximum(out["null_run_max"][k], b.run_max, out=out["null_run_max"][k])
    return out


def pair_scores(cands: torch.Tensor, gallery: torch.Tensor, image: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """HaarPSI and PSNR of each reconstruction against its assigned image. Returns two (N,) arrays."""
    idx = torch.as_tensor(image, dtype=torch.long, device=gallery.device)
    hp = torch.empty(len(idx), dtype=torch.float64)
    ps = torch.empty(len(idx), dtype=torch.float64)
    for s in range(0, len(idx), batch):
        a, b = cands[s : s + batch].float(), gallery[idx[s : s + batch]].float()
        hp[s : s + batch] = haarpsi(a, b).double().cpu()
        ps[s : s + batch] = psnr(a, b).cpu()
    return hp.numpy(), ps.numpy()


def per_run_best(values: np.ndarray, image: np.ndarray, run_index: np.ndarray, n_runs: int, m: int) -> np.ndarray:
    """(R, M): per run, each image's best value among the reconstructions assigned to it (-inf: none)."""
    out = np.full((n_runs, m), -np.inf)
    np.maximum.at(out, (np.asarray(run_index), np.asarray(image)), np.asarray(values, dtype=np.float64))
    return out


def best_of(values: np.ndarray, image: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image's best value among the reconstructions assigned to it, and that
    reconstruction's row. Unmatched images get -inf and row -1; ties go to the first row."""
    values = np.asarray(values, dtype=np.float64)
    image = np.asarray(image)
    best = np.full(m, -np.inf)
    arg = np.full(m, -1, dtype=np.int64)
    order = np.lexsort((np.arange(len(values)), -values, image))  # by image, best first, then lowest row
    first = order[np.r_[True, image[order][1:] != image[order][:-1]]] if len(order) else order
    best[image[first]], arg[image[first]] = values[first], first
    return best, arg


def count_good(run_best: np.ndarray, threshold: float, runs: np.ndarray | None = None) -> int:
    """Images whose best match over the chosen runs (rows; all when None) exceeds the threshold."""
    rb = run_best if runs is None else run_best[runs]
    if rb.shape[0] == 0:
        return 0
    return int((rb.max(0) > threshold).sum())


def bootstrap_interval(run_best: np.ndarray, threshold: float, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """A ``level`` interval for the good count from resampling the runs with replacement.

    A resample holds only about 63% of the distinct runs, and the count can only grow with
    more runs, so raw bootstrap counts sit below the observed one. The interval is the
    bootstrap distribution's central ``level`` range re-centred on the observed count
    (shifted by observed minus bootstrap median): the spread is the bootstrap's, the
    centre is the count.
    """
    rng = np.random.default_rng(seed)
    r = run_best.shape[0]
    counts = np.array([count_good(run_best, threshold, rng.integers(0, r, r)) for _ in range(n_boot)])
    a = (1 - level) / 2
    shift = count_good(run_best, threshold) - np.median(counts)
    return float(np.quantile(counts, a) + shift), float(np.quantile(counts, 1 - a) + shift)


def split_halves(run_ids: np.ndarray, seed: int) -> dict[int, int]:
    """Assign every run to one of two random halves (Figure 5)."""
    runs = np.unique(run_ids)
    perm = np.random.default_rng(seed).permutation(len(runs))
    return {int(runs[p]): int(i >= len(runs) // 2 + len(runs) % 2) for i, p in enumerate(perm)}
