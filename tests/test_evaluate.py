import math

import numpy as np
import pytest
import torch

from recon_restore.evaluate.hparams import draw_run
from recon_restore.data.store import ImageSet
from recon_restore.errors import UserError
from recon_restore.evaluate.galleries import build_galleries, check_unseen
from recon_restore.evaluate.match import assign, best_of, bootstrap_interval, count_good, pair_scores, per_run_best, split_halves
from recon_restore.evaluate.match_file import MatchData
from recon_restore.metrics import haarpsi, ssim, ssim_matrix

RANGES = {
    "lr": {"dist": "loguniform", "low": 0.01, "high": 1.0},
    "sigma": {"dist": "loguniform", "low": 1e-6, "high": 0.1},
    "lambda_min": {"dist": "uniform", "low": 0.01, "high": 0.5},
    "alpha": {"dist": "uniform", "low": 10.0, "high": 500.0},
}


def test_hyperparameter_draws_follow_the_paper_ranges():
    draws = [draw_run(7, r, RANGES, 1e-4) for r in range(400)]
    lr = np.array([d["lr"] for d in draws])
    sig = np.array([d["sigma"] for d in draws])
    assert lr.min() >= 0.01 and lr.max() <= 1 and sig.min() >= 1e-6 and sig.max() <= 0.1
    # log-uniform: the median of log10 sigma is near the middle (-3.5)
    assert np.median(np.log10(sig)) == pytest.approx(-3.5, abs=0.3)
    assert all(10 <= d["alpha"] <= 500 and 0.01 <= d["lambda_min"] <= 0.5 and d["lambda_lr"] == 1e-4 for d in draws)
    assert draw_run(7, 3, RANGES, None) == draw_run(7, 3, RANGES, None)
    assert draw_run(7, 3, RANGES, None)["lambda_lr"] == draw_run(7, 3, RANGES, None)["lr"]
    assert draw_run(7, 3, RANGES, 1e-4)["seed"] != draw_run(7, 4, RANGES, 1e-4)["seed"]


def _noisy_copies(seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = torch.rand(6, 3, 32, 32, generator=g)
    cands = torch.cat([(targets + 0.1 * torch.randn(6, 3, 32, 32, generator=g)).clamp(0, 1), torch.rand(14, 3, 32, 32, generator=g)])
    return cands, targets


def test_assignment_equals_brute_force():
    cands, targets = _noisy_copies()
    run = np.array([i % 3 for i in range(20)])
    a = assign(cands, targets, run, 3, "ssim", "haim", chunk=7)
    m = ssim_matrix(cands.double(), targets.double())
    assert np.array_equal(a.image, m.argmax(1).numpy())
    assert np.allclose(a.ssim, m.max(1).values.numpy(), atol=1e-5)
    for r in range(3):
        assert np.allclose(a.run_max[r], m[torch.from_numpy(run == r)].max(0).values.numpy(), atol=1e-5)
    hp, ps = pair_scores(cands, targets, a.image)
    assert np.allclose(hp, haarpsi(cands, targets[a.image]).numpy(), atol=1e-6)
    mse = ((cands.double() - targets.double()[a.image]) ** 2).flatten(1).mean(1).numpy()
    assert np.allclose(ps, -10 * np.log10(mse))


def test_ncc_assignment_is_haims_heuristic():
    cands, targets = _noisy_copies(1)
    run = np.zeros(20, dtype=int)
    a = assign(cands, targets, run, 1, "ncc", "haim")
    # independent: bicubic 1/2, per-image per-channel standardisation, squared L2
    def feat(x):
        x = torch.nn.functional.interpolate(x.double(), scale_factor=0.5, mode="bicubic", align_corners=False)
        x = x.flatten(2)
        return ((x - x.mean(2, keepdim=True)) / x.std(2, keepdim=True)).flatten(1)
    d = torch.cdist(feat(cands), feat(targets)) ** 2
    assert np.array_equal(a.image, d.argmin(1).numpy())
    assert np.array_equal(a.image[:6], np.arange(6))  # noisy copies go home
    assert np.allclose(a.ssim, ssim(cands.double(), targets.double()[a.image]).numpy())


def test_one_smooth_reconstruction_counts_for_at_most_one_image():
    """A flat grey image is close (SSIM > 0.4) to many smooth training images: under the
    paper's rule it is assigned to one of them and counts once; the max over all counts it many times."""
    base = torch.linspace(0.3, 0.7, 32).view(1, 1, 1, 32).expand(5, 3, 32, 32)
    targets = (base + torch.arange(5).view(5, 1, 1, 1) * 0.01).clone()
    blurry = base[:1] * 0.9 + 0.05
    a = assign(blurry, targets, np.zeros(1, dtype=int), 1, "ssim", "haim")
    rb = per_run_best(a.ssim, a.image, np.zeros(1, dtype=int), 1, 5)
    assert count_good(a.run_max, 0.4) == 5  # "none": one reconstruction, five good images
    assert count_good(rb, 0.4) == 1  # the paper's rule: one
    best, arg = best_of(a.ssim, a.image, 5)
    assert (arg >= 0).sum() == 1 and np.isinf(best[arg < 0]).all() and (best[arg < 0] < 0).all()


def test_unassigned_images_are_unmatched_and_ties_go_to_the_first_row():
    # dyadic values: exact in binary, so ties are real ties
    values = np.array([0.5, 0.75, 0.75, 0.25, 0.625])
    image = np.array([0, 0, 0, 2, 2])
    best, arg = best_of(values, image, 4)
    assert best.tolist() == [0.75, -np.inf, 0.625, -np.inf] and arg.tolist() == [1, -1, 4, -1]
    run = np.array([0, 1, 0, 1, 0])
    rb = per_run_best(values, image, run, 2, 4)
    assert rb[0].tolist() == [0.75, -np.inf, 0.625, -np.inf] and rb[1].tolist() == [0.75, -np.inf, 0.25, -np.inf]
    assert count_good(rb, 0.625) == 1 and count_good(rb, 0.5) == 2  # strictly above the threshold
    assert count_good(rb, 0.5, np.array([1])) == 1  # a subset of runs (bootstrap, halves)
    assert count_good(rb, 0.5, np.array([], dtype=np.int64)) == 0  # no run: nothing is good
    # no reconstruction at all (a method that restored nothing): every image unmatched
    best, arg = best_of(np.zeros(0), np.zeros(0, dtype=np.int64), 3)
    assert best.tolist() == [-np.inf] * 3 and arg.tolist() == [-1] * 3


def test_bootstrap_interval_is_seeded_and_brackets_the_count():
    rng = np.random.default_rng(0)
    rb = rng.random((12, 40))
    good = count_good(rb, 0.9)
    lo, hi = bootstrap_interval(rb, 0.9, 300, seed=5)
    assert lo <= good <= hi and (lo, hi) == bootstrap_interval(rb, 0.9, 300, seed=5)
    # re-centred: the spread is that of the resampled counts, the centre the observed count
    rng = np.random.default_rng(5)
    raw = np.array([count_good(rb, 0.9, rng.integers(0, 12, 12)) for _ in range(300)])
    assert hi - lo == pytest.approx(np.quantile(raw, 0.975) - np.quantile(raw, 0.025))
    assert (lo + hi) / 2 - good == pytest.approx((np.quantile(raw, 0.975) + np.quantile(raw, 0.025)) / 2 - np.median(raw))
    one_run = np.tile(rb[:1], (1, 1))
    assert bootstrap_interval(one_run, 0.9, 50, seed=1) == (count_good(one_run, 0.9),) * 2


def test_match_data_counts_against_the_null_galleries():
    run = np.array([0, 0, 1, 1])
    runs = np.array([0, 1])
    d = MatchData("plain", "ssim", run, runs, assigned=np.array([0, 0, 1, 2]), ssim=np.array([0.5, 0.75, 0.25, 0.625]),
                  haarpsi=np.zeros(4), psnr=np.zeros(4), run_max=np.array([[0.75, 0.5, 0.5], [0.5, 0.5, 0.625]]),
                  null_assigned=np.array([[0, 1, 1, 1], [2, 2, 2, 2]]), null_ssim=np.array([[0.5, 0.5, 0.25, 0.25], [0.75, 0.5, 0.5, 0.5]]),
                  null_run_max=np.full((2, 2, 3), 0.5))
    c = d.counts(0.4, n_boot=0)
    assert c["good"] == 2 and c["good_none"] == 3 and c["null"] == [2, 1] and c["excess"] == 0.5
    assert c["null_none"] == [3, 3]
    assert np.array_equal(d.best_ssim(), [0.75, 0.25, 0.625])
    assert np.array_equal(d.best('ssim')[1], [1, 2, 3])


def test_null_galleries_exclude_training_and_pool_images_by_content():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (30, 3, 32, 32), dtype=np.uint8)
    labels = np.repeat([-1, 1], 15).astype(np.int8)
    held = ImageSet(imgs, labels, np.arange(30))
    train = imgs[[0, 1, 15, 16]]
    pool = imgs[[2, 17]].copy()  # same pixels as held-out 2 and 17, under other ids
    gal = build_galleries(held, np.array([0, 1, 15, 16]), train, labels[[0, 1, 15, 16]], pool, k=3, seed=0)
    used = set(gal.ids.ravel().tolist())
    assert gal.images.shape == (3, 4, 3, 32, 32) and gal.disjoint
    assert not used & {0, 1, 15, 16, 2, 17}
    assert (gal.labels == np.array([-1, -1, 1, 1])).all()
    check_unseen(gal, train, pool)
    gal.images[0, 0] = pool[0]
    with pytest.raises(UserError, match="pool"):
        check_unseen(gal, train, pool)
    with pytest.raises(UserError, match=r"need 2 unseen held-out images of class \+1"):
        build_galleries(ImageSet(imgs[:5], labels[:5], np.arange(5)), np.arange(0), train[:0], np.array([-1] * 4 + [1] * 2), pool[:0], 1, 0)
    small = build_galleries(held, np.array([0, 1, 15, 16]), train, labels[[0, 1, 15, 16]], pool, k=10, seed=0)
    assert not small.disjoint and len(small) == 10
    # groups: held-out images that share a group (pixels) with a training image never enter a gallery
    grouped = ImageSet(imgs, labels, np.arange(30), np.arange(30) // 2)  # pairs (0,1), (2,3), ...
    gal = build_galleries(grouped, np.array([0, 16]), imgs[[0, 16]], labels[[0, 16]], pool[:0], k=3, seed=0)
    used = gal.ids.ravel()
    assert not set(used.tolist()) & {0, 1, 16, 17}
    assert all(len(set((g // 2).tolist())) == len(g) for g in gal.ids)  # one image per group in a gallery


def test_split_halves_is_a_balanced_random_partition():
    runs = np.repeat(np.arange(11), 4)
    h = split_halves(runs, seed=1)
    assert sorted(h) == list(range(11)) and sum(h.values()) == 5
    assert h == split_halves(runs, seed=1) and h != split_halves(runs, seed=2)


def test_abort_study_records_the_blind_score_without_aborting(tmp_path, tiny_params, tiny_doc):
    import json

    import h5py
    import pandas as pd
    import yaml

    from recon_restore.cli import main

    ev = tiny_doc["presets"]["demo"]["evaluate"]
    ev["reconstruct"]["abort"].update(criterion="none", at=20)
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    P = ["--params", str(p)]
    o = tmp_path
    assert main(["data", "prepare", *P, "--pool", str(o / "pool.h5"), "--heldout", str(o / "held.h5")]) == 0
    assert main(["attack", "target", *P, "--heldout", str(o / "held.h5"), "--out", str(o / "t.pt")]) == 0
    for b in (0, 1):
        assert main(["attack", "runs", *P, "--target", str(o / "t.pt"), "--batch", str(b), "--out", str(o / f"r{b}.h5")]) == 0
    with h5py.File(o / "r0.h5") as f:
        assert (f["status"][()] != 1).all() and np.isfinite(f["abort_score"][()]).all()  # recorded, none aborted
    assert main(["evaluate", "abort-study", *P, "--target", str(o / "t.pt"), "--runs", str(o / "r0.h5"), str(o / "r1.h5"),
                 "--out-csv", str(o / "a.csv"), "--out-json", str(o / "a.json")]) == 0
    table = pd.read_csv(o / "a.csv")
    summ = json.loads((o / "a.json").read_text())
    assert len(table) == 3 and (table["useless"] == (table["good"] == 0)).all()
    thr = pd.DataFrame(summ["thresholds"])
    assert (np.diff(thr["good_lost"]) <= 0).all() and thr["good_lost"].iloc[-1] == 0 and thr["kept"].iloc[-1] == 3
    assert summ["chosen_threshold"] in thr["threshold"].tolist() and -1 <= summ["spearman_blind_good"] <= 1
    assert thr.set_index("threshold").loc[summ["chosen_threshold"], "good_lost"] == 0
    # oracle-free selection: every ranking's kept runs hold at most all runs' good count, and at the
    # largest fraction (all 3 runs when rounded) exactly it
    sel = pd.DataFrame(summ["selection"])
    assert {"good_oracle", "good_blind", "good_stationarity", "good_random"} <= set(sel)
    for c in ("good_oracle", "good_blind", "good_stationarity", "good_random"):
        assert (sel[c] <= sel["good_all_runs"]).all()
    assert "stationarity" in table


def test_selection_table_counts_what_each_ranking_keeps():
    import pandas as pd

    from recon_restore.evaluate.abort_study import selection_table

    # 4 runs x 3 images: run 2 holds every good image, run 0 one of them
    rb = np.full((4, 3), 0.1)
    rb[2] = 0.9
    rb[0, 0] = 0.9
    table = pd.DataFrame({"oracle_score": [2.0, 3.0, 1.0, 4.0], "blind_score": [0.1, 0.2, 0.9, 0.3],
                          "stationarity": [5.0, np.nan, 1.0, 2.0]})
    sel = selection_table(table, rb, 0.4, fractions=(0.25, 0.5), n_random=500, seed=0).set_index("fraction")
    assert sel.loc[0.25, "good_oracle"] == 3 and sel.loc[0.25, "good_blind"] == 1 and sel.loc[0.25, "good_stationarity"] == 3
    assert sel.loc[0.5, "good_blind"] == 1  # runs 0 and 1: run 2 (lowest residual at abort) is never kept
    assert sel.loc[0.5, "good_all_runs"] == 3 and abs(sel.loc[0.25, "good_random"] - (3 + 1 + 0 + 0) / 4) < 0.2
