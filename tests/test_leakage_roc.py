"""ROC-calibrated leakage counts (Maciazek and Allison 2025): AUROC and the true-positive rate
at a fixed false-positive rate, the threshold chosen on the null scores alone, with bootstrap
intervals over runs; checked against brute-force recomputations."""

from __future__ import annotations

import numpy as np

from recon_restore.metrics.roc import leakage_roc, leakage_roc_interval, tpr_at_fpr


def test_tpr_at_fpr_picks_its_threshold_on_the_negatives_alone():
    rng = np.random.default_rng(0)
    neg = rng.normal(size=1000)
    pos = rng.normal(1.5, size=300)
    for f in (0.01, 0.05, 0.2):
        tpr, t = tpr_at_fpr(pos, neg, f)
        assert (neg > t).mean() <= f and (neg >= t).mean() > f  # the lowest threshold that keeps the rate
        assert tpr == (pos > t).mean()
        tpr2, t2 = tpr_at_fpr(pos + 10, neg, f)  # moving the positives never moves the threshold
        assert t2 == t and tpr2 == 1.0


def test_leakage_roc_matches_a_brute_force_computation():
    rng = np.random.default_rng(1)
    R, n, K = 6, 40, 5
    real = rng.uniform(-0.2, 0.9, (R, n))
    real[:, :5] = -np.inf  # images with nothing assigned
    null = rng.uniform(-0.2, 0.6, (K, R, n))
    out = leakage_roc(real, null)
    pos = np.where(np.isinf(real.max(0)), -2, real.max(0))
    neg = null.max(1).ravel()
    brute = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert abs(out["auroc"] - brute) < 1e-12
    t = np.sort(neg)[len(neg) - int(0.01 * len(neg)) - 1]
    assert out["tpr_1"] == (pos > t).mean() and out["threshold_1"] == t
    # runs: the best over the chosen runs only
    sub = leakage_roc(real, null, np.array([0, 0, 3]))
    assert sub["auroc"] == leakage_roc(real[[0, 3]], null[:, [0, 3]])["auroc"]


def test_chance_gives_auroc_one_half_and_tpr_at_its_fpr():
    """Training images scored like unseen ones (no leakage): AUROC about 0.5, TPR about the FPR."""
    rng = np.random.default_rng(2)
    R, n, K = 8, 400, 5
    out = leakage_roc_interval(rng.normal(size=(R, n)), rng.normal(size=(K, R, n)), n_boot=200, seed=0)
    assert abs(out["auroc"] - 0.5) < 0.05 and out["auroc_lo"] < 0.5 < out["auroc_hi"]
    assert abs(out["tpr_5"] - 0.05) < 0.03 and out["tpr_1"] < 0.04
    leak = leakage_roc_interval(rng.normal(1.0, size=(R, n)), rng.normal(size=(K, R, n)), n_boot=200, seed=0)
    assert leak["auroc_lo"] > 0.6 and leak["tpr_1_lo"] > out["tpr_1_hi"]


def test_compare_and_curve_arguments_name_a_bad_item_or_a_missing_file(tmp_path):
    import pytest

    from recon_restore.cli_args import labelled_paths
    from recon_restore.errors import UserError

    f = tmp_path / "plain.h5"
    f.write_bytes(b"")
    assert labelled_paths([f"plain={f}"], "evaluate compare --same", "METHOD", "match file") == {"plain": str(f)}
    with pytest.raises(UserError, match=r"evaluate compare --same 'plain': expected METHOD=PATH"):
        labelled_paths(["plain"], "evaluate compare --same", "METHOD", "match file")
    with pytest.raises(UserError, match=r"nope\.h5: match file \(evaluate compare --other tv\) does not exist"):
        labelled_paths([f"tv={tmp_path / 'nope.h5'}"], "evaluate compare --other", "METHOD", "match file")
