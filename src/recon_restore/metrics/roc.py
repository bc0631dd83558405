"""ROC curves and their area, for blind detectors (the diffusion samples' spread as a
hallucination indicator; the blind abort score as a predictor of a useless run)."""

from __future__ import annotations

import numpy as np


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN without both classes."""
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([pos, neg]))
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def roc_curve(score: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates as the threshold on ``score`` goes down."""
    order = np.argsort(-score, kind="stable")
    tp = np.r_[0, np.cumsum(positive[order])]
    fp = np.r_[0, np.cumsum(~positive[order])]
    return fp / max(1, (~positive).sum()), tp / max(1, positive.sum())


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> tuple[float, float]:
    """(true-positive rate, threshold) at a false-positive rate of at most ``fpr``: the threshold
    is the lowest value that at most ``fpr`` of the negatives exceed (chosen on the negatives
    alone, never on the positives); a positive counts when its score is above it."""
    neg = np.sort(np.asarray(neg, dtype=np.float64))
    if len(neg) == 0 or len(pos) == 0:
        return float("nan"), float("nan")
    k = int(np.floor(fpr * len(neg)))  # negatives allowed above the threshold
    t = neg[len(neg) - k - 1]
    return float((np.asarray(pos) > t).mean()), float(t)


def leakage_roc(real: np.ndarray, null: np.ndarray, runs: np.ndarray | None = None, fprs=(0.01, 0.05)) -> dict:
    """ROC of training images against unseen images (Maciazek and Allison 2025: report true
    positives at a fixed false-positive rate, not a threshold count). ``real`` (R, n): per run,
    each training image's best-match score; ``null`` (K, R, n): the same on K null galleries
    (-inf: nothing assigned). Scores are the best over the chosen ``runs`` (all by default).
    Returns AUROC and, per rate, the TPR and its threshold."""
    sel = slice(None) if runs is None else runs
    floor = -2.0  # below any SSIM: an image with nothing assigned
    pos = np.maximum(real[sel].max(0), floor) if real.shape[0] else np.full(real.shape[1], floor)
    neg = np.concatenate([np.maximum(g[sel].max(0), floor) if g.shape[0] else np.full(g.shape[1], floor)
                          for g in null]) if len(null) else np.zeros(0)
    out = {"auroc": auroc(np.concatenate([pos, neg]), np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)])}
    for f in fprs:
        tpr, t = tpr_at_fpr(pos, neg, f)
        out[f"tpr_{round(f * 100):g}"] = tpr
        out[f"threshold_{round(f * 100):g}"] = t
    return out


def leakage_roc_interval(real: np.ndarray, null: np.ndarray, n_boot: int, seed: int, fprs=(0.01, 0.05),
                         level: float = 0.95) -> dict:
    """``leakage_roc`` with ``level`` intervals from resampling the runs with replacement (the
    same runs for the training images and the galleries); keys ``<key>_lo``, ``<key>_hi`` for
    AUROC and each TPR. As for the good count (``evaluate.match.bootstrap_interval``): a resample
    holds about 63% of the distinct runs and best-over-runs scores only grow with runs, so the
    interval is the bootstrap's central range re-centred on the observed value (shifted by
    observed minus bootstrap median), clipped to [0, 1]. Without runs (every run aborted) every
    score is the floor and every resample the same: the interval is the point."""
    out = leakage_roc(real, null, None, fprs)
    keys = ["auroc"] + [f"tpr_{round(f * 100):g}" for f in fprs]
    if real.shape[0] == 0:
        return dict(out, **{f"{k}_{s}": out[k] for k in keys for s in ("lo", "hi")})
    if not n_boot:
        return dict(out, **{f"{k}_{s}": float("nan") for k in keys for s in ("lo", "hi")})
    rng = np.random.default_rng(seed)
    r = real.shape[0]
    boots = [leakage_roc(real, null, rng.integers(0, r, r), fprs) for _ in range(n_boot)]
    a = (1 - level) / 2
    for k in keys:
        v = np.array([b[k] for b in boots], dtype=np.float64)
        shift = out[k] - np.nanmedian(v)
        out[f"{k}_lo"] = float(np.clip(np.nanquantile(v, a) + shift, 0, 1))
        out[f"{k}_hi"] = float(np.clip(np.nanquantile(v, 1 - a) + shift, 0, 1))
    return out
