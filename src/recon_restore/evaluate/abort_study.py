"""Calibrating the blind abort (paper section 5.1: 56 of 303 evaluation runs aborted after
5,000 iterations, with no criterion given).

Runs made with ``abort.criterion: none`` record the blind score (the first layer's
relative stationarity residual, ``attack/abort.py``) at ``abort.at`` without aborting.
For every run this module measures what it finally contributes: the training images it
reconstructs well on its own (paper's best-match rule, SSIM > threshold, all its
snapshots) and Haim et al.'s oracle extraction score of its last snapshot. A run is
*useless* when it contributes no good reconstruction, *weak* when it contributes fewer than
the median run. The blind score's AUROC for both, its rank correlation with a run's good
count and, per threshold, the runs kept and the good reconstructions lost (good with every
run minus good with the kept runs) tell which threshold to use.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..attack.abort import ncc_extraction_score
from ..metrics import postprocess
from .match import assign, count_good, per_run_best


def run_table(snapshots: np.ndarray, blind: np.ndarray, run_ids: np.ndarray, train_x: torch.Tensor, mean: torch.Tensor,
              targets: torch.Tensor, threshold: float, variant: str = "haim") -> tuple[pd.DataFrame, np.ndarray]:
    """snapshots (R, S, 2m, d) mean-subtracted; train_x (n, d) mean-subtracted; targets (n, C, H, W) in [0, 1].
    Returns the per-run table and the (R, n) per-run best assigned SSIM."""
    R, S = snapshots.shape[:2]
    imgs, owner = [], []
    oracle = np.full(R, np.nan)
    for r in range(R):
        s = torch.from_numpy(snapshots[r]).double()
        ok = ~torch.isnan(s).flatten(2).any(2)  # (S, 2m)
        if ok[-1].any():
            oracle[r] = float(ncc_extraction_score(s[-1][ok[-1]][None], train_x)[0])
        for k in range(S):
            x = s[k][ok[k]].view(-1, *mean.shape)
            imgs.append(postprocess(x, mean).float())
            owner += [r] * x.shape[0]
    owner = np.asarray(owner)
    a = assign(torch.cat(imgs), targets, owner, R, "ssim", variant)
    rb = per_run_best(a.ssim, a.image, owner, R, len(targets))
    table = pd.DataFrame({"run": run_ids, "blind_score": blind, "oracle_score": oracle,
                          "good": [count_good(rb[r : r + 1], threshold) for r in range(R)]})
    table["useless"] = table["good"] == 0
    return table, rb


def threshold_table(table: pd.DataFrame, run_best: np.ndarray, threshold: float) -> pd.DataFrame:
    """For each candidate blind threshold: runs kept, useless runs aborted, good lost."""
    total = count_good(run_best, threshold)
    rows = []
    scores = table["blind_score"].to_numpy()
    for t in np.unique(np.r_[scores[np.isfinite(scores)], np.inf]):
        keep = ~(scores > t)
        rows.append({"threshold": float(t), "kept": int(keep.sum()), "aborted": int((~keep).sum()),
                     "useless_aborted": int((~keep & table["useless"].to_numpy()).sum()),
                     "good_kept": count_good(run_best, threshold, np.nonzero(keep)[0]),
                     "good_lost": total - count_good(run_best, threshold, np.nonzero(keep)[0])})
    return pd.DataFrame(rows)


def choose_threshold(thr: pd.DataFrame, max_lost: int = 0) -> float:
    """The lowest threshold (most runs aborted) that loses at most ``max_lost`` good reconstructions."""
    ok = thr[thr["good_lost"] <= max_lost]
    return float(ok["threshold"].min())


def selection_table(table: pd.DataFrame, run_best: np.ndarray, threshold: float, fractions=(0.25, 0.5, 0.75),
                    rankings: tuple = ("oracle_score", "blind_score", "stationarity"), n_random: int = 200,
                    seed: int = 0) -> pd.DataFrame:
    """Oracle-free run selection (Haim et al.'s released code ranks and aborts runs by their
    distance to the true training set): for each ranking of the runs (lower is better; the
    oracle's NCC extraction score, the blind first-layer residual at the abort iteration, the
    final KKT residual) and each fraction of runs kept, the good reconstructions the kept runs
    hold, beside all runs' and the mean over ``n_random`` random selections of the same size."""
    total = count_good(run_best, threshold)
    R = len(table)
    rng = np.random.default_rng(seed)
    rows = []
    for f in fractions:
        k = max(1, int(round(f * R)))
        rnd = np.mean([count_good(run_best, threshold, rng.choice(R, k, replace=False)) for _ in range(n_random)])
        row = {"fraction": f, "runs_kept": k, "good_all_runs": total, "good_random": round(float(rnd), 2)}
        for name in rankings:
            if name not in table:
                continue
            score = table[name].to_numpy(dtype=np.float64)
            order = np.argsort(np.where(np.isfinite(score), score, np.inf), kind="stable")
            row[f"good_{name.removesuffix('_score')}"] = count_good(run_best, threshold, order[:k])
        rows.append(row)
    return pd.DataFrame(rows)
