"""The match file of one method (``evaluate/match/<method>.h5``) and the counts read
from it (paper section 5.1.1; docs/metrics.md).

Schema (N reconstructions, R successful runs, M training images, K null galleries)::

    run       int64 (N,)       run id of each reconstruction
    runs      int64 (R,)       the successful runs, sorted
    assigned  int64 (N,)       training image each reconstruction is assigned to
    ssim, haarpsi, psnr  (N,)  each reconstruction against its assigned image
    run_max   (R, M)           per run, each image's SSIM maximum over all reconstructions
    null/assigned (K, N), null/ssim (K, N), null/run_max (K, R, M)   the same per gallery
    attrs: method, assignment, ssim_variant, galleries, provenance

Everything a table reports is recomputed from it: best match per image under the
assignment (``ssim``/``ncc``) or the ``none`` rule, good counts, null counts and their
excess, and a bootstrap interval over runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from ..errors import UserError
from ..io import atomic_path, open_h5, require_datasets, set_attrs
from .match import best_of, bootstrap_interval, count_good, per_run_best

DATASETS = ["run", "runs", "assigned", "ssim", "haarpsi", "psnr", "run_max", "null/assigned", "null/ssim", "null/run_max"]


@dataclass
class MatchData:
    method: str
    assignment: str
    run: np.ndarray
    runs: np.ndarray
    assigned: np.ndarray
    ssim: np.ndarray
    haarpsi: np.ndarray
    psnr: np.ndarray
    run_max: np.ndarray
    null_assigned: np.ndarray
    null_ssim: np.ndarray
    null_run_max: np.ndarray

    @property
    def images(self) -> int:
        return self.run_max.shape[1]

    @property
    def galleries(self) -> int:
        return self.null_ssim.shape[0]

    @property
    def run_index(self) -> np.ndarray:
        return np.searchsorted(self.runs, self.run)

    def best(self, metric: str = "ssim") -> tuple[np.ndarray, np.ndarray]:
        """Per training image: best value among the reconstructions assigned to it, and its row (-1: unmatched)."""
        return best_of(getattr(self, metric), self.assigned, self.images)

    def best_ssim(self) -> np.ndarray:
        """Best-match SSIM per image under this file's rule (``none``: maximum over all)."""
        return self.run_max.max(0, initial=-np.inf) if self.assignment == "none" else self.best("ssim")[0]

    def run_best(self, metric: str = "ssim") -> np.ndarray:
        """(R, M) per run best among assigned reconstructions (``none`` rule: over all, SSIM only)."""
        if self.assignment == "none" and metric == "ssim":
            return self.run_max
        return per_run_best(getattr(self, metric), self.assigned, self.run_index, len(self.runs), self.images)

    def null_run_best(self, k: int) -> np.ndarray:
        if self.assignment == "none":
            return self.null_run_max[k]
        return per_run_best(self.null_ssim[k], self.null_assigned[k], self.run_index, len(self.runs), self.images)

    def counts(self, threshold: float, n_boot: int = 1000, seed: int = 0) -> dict:
        """Good, its bootstrap interval, the ``none`` rule's count, null counts and the excess; the
        ROC of training images against the null galleries' images (``metrics.roc.leakage_roc``):
        AUROC and the TPR at 1% and 5% FPR (thresholds chosen on the null scores), with 95%
        bootstrap intervals over runs."""
        rb = self.run_best("ssim")
        good = count_good(rb, threshold)
        lo, hi = bootstrap_interval(rb, threshold, n_boot, seed) if n_boot else (float("nan"), float("nan"))
        null = [count_good(self.null_run_best(k), threshold) for k in range(self.galleries)]
        null_none = [count_good(self.null_run_max[k], threshold) for k in range(self.galleries)]
        nm = float(np.mean(null)) if null else float("nan")
        from ..metrics.roc import leakage_roc_interval

        nulls = np.stack([self.null_run_best(k) for k in range(self.galleries)]) if self.galleries else np.zeros((0, *rb.shape))
        roc = leakage_roc_interval(rb, nulls, n_boot, seed + 1)
        return {"good": good, "good_lo": lo, "good_hi": hi, "good_none": count_good(self.run_max, threshold),
                "null": null, "null_mean": nm, "null_min": min(null, default=float("nan")), "null_max": max(null, default=float("nan")),
                "excess": good - nm, "null_none": null_none, "null_none_mean": float(np.mean(null_none)) if null_none else float("nan"),
                **roc}


def write_match(path, d: MatchData, attrs: dict, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            for k in DATASETS:
                f.create_dataset(k, data=getattr(d, k.replace("/", "_")))
            set_attrs(f, dict(attrs, kind="recon-restore/match", method=d.method, assignment=d.assignment, galleries=d.galleries))


def write_skipped(path, method: str, reason: str, attrs: dict, overwrite: bool = False) -> None:
    """A match file for an optional method that could not run here: no arrays, the reason."""
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            set_attrs(f, dict(attrs, kind="recon-restore/match", method=method, skipped=reason))


def read_skipped(path) -> tuple[str, str] | None:
    """(method, reason) when ``path`` is the match file of a skipped method, else None."""
    with open_h5(path, "match file") as f:
        if "skipped" in f.attrs:
            return str(f.attrs["method"]), str(f.attrs["skipped"])
    return None


def read_match(path) -> MatchData:
    with open_h5(path, "match file") as f:
        require_datasets(f, DATASETS)
        if f.attrs.get("kind") != "recon-restore/match":
            raise UserError(f"{path}: not a recon-restore match file")
        arrays = {k.replace("/", "_"): f[k][()] for k in DATASETS}
        d = MatchData(method=str(f.attrs["method"]), assignment=str(f.attrs["assignment"]), **arrays)
    n = len(d.run)
    if not all(len(getattr(d, k)) == n for k in ("assigned", "ssim", "haarpsi", "psnr")) or d.run_max.shape[0] != len(d.runs):
        raise UserError(f"{path}: match file arrays disagree in length")
    return d
