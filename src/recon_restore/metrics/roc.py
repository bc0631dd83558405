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
