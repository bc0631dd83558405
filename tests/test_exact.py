"""Exact references and boundary cases for the code that decides what enters the dataset
and what the sampler returns: each test here fails on a plausible one-line fault."""

import math

import numpy as np
import pytest
import torch

from recon_restore.dataset import augment
from recon_restore.dataset import match as dmatch
from recon_restore.metrics.ssim import BestMatches
from recon_restore.restorers.edm import heun_sample, sigma_steps


# ---- Heun sampler against the exact solution for Gaussian data --------------------------

def test_heun_sampler_matches_the_hand_computed_gaussian_solution():
    """Data ~ N(0, s_d^2): the ideal denoiser is D(x; s) = x s_d^2 / (s^2 + s_d^2), so each Heun
    step multiplies x by a scalar computable by hand; the product must match to rounding and
    lie near the exact ODE solution x(0) = x(s_max) s_d / sqrt(s_max^2 + s_d^2)."""
    sd = 0.5
    den = lambda x, s, c: x * (sd**2 / (s.view(-1, 1, 1, 1) ** 2 + sd**2))  # noqa: E731
    cond = torch.zeros(2, 3, 32, 32, dtype=torch.float64)
    out = heun_sample(den, cond, num_steps=18, generator=torch.Generator().manual_seed(7))
    t = sigma_steps(18).tolist()
    x0 = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * t[0]
    c = 1.0
    for i in range(18):
        tc, tn = t[i], t[i + 1]
        d = tc / (tc**2 + sd**2)  # d = (x - D) / t = x t / (t^2 + s_d^2), per unit x
        euler = 1 + (tn - tc) * d
        if i < 17:
            d2 = euler * tn / (tn**2 + sd**2)
            c *= 1 + (tn - tc) * (d + d2) / 2
        else:
            c *= euler
    assert torch.allclose(out, c * x0, rtol=1e-12, atol=0)
    exact = sd / math.sqrt(t[0] ** 2 + sd**2)
    assert c == pytest.approx(exact, rel=0.1)  # 18 Heun steps: within 6% of the exact ODE
    again = heun_sample(den, cond, num_steps=18, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out, again)


# ---- matching rule boundaries (paper section 2), with exactly representable values ------

def _fake_best(per_epoch):
    """Replace best_matches with constructed (best, arg, second) per call, in epoch order."""
    it = iter(per_epoch)

    def fake(c, t, variant="haim", chunk=None):
        best, arg, second = (torch.tensor(v, dtype=torch.float64) for v in next(it))
        return BestMatches(None, None, best, arg.long(), second)

    return fake


def _match(monkeypatch, per_epoch, snaps):
    """match_candidates on constructed (best, arg, second) per snapshot; threshold 0.375, margin 0.125."""
    monkeypatch.setattr(dmatch, "best_matches", _fake_best(per_epoch))
    return dmatch.match_candidates(snaps, torch.zeros(4, 3, 32, 32), threshold=0.375, margin=0.125)


def test_match_threshold_is_strict_and_margin_inclusive(monkeypatch):
    # dyadic values: 0.5 - 0.375 = 0.125 exactly
    m = _match(monkeypatch, [([0.375, 0.5, 0.5, 0.625], [0, 1, 2, 3], [0.0, 0.375, 0.4375, 0.5])], {10: torch.zeros(4, 3, 32, 32)})
    # cand 0: at the threshold (not above); cand 1: margin exactly 0.125 (accepted);
    # cand 2: margin 0.0625 (refused); cand 3: margin exactly 0.125 (accepted)
    assert m.candidate.tolist() == [1, 3] and m.target.tolist() == [1, 3]


def test_match_across_snapshots_highest_wins_not_last(monkeypatch):
    # candidate 0 matches image 1 at epoch 10 (0.75), then image 2 at epoch 20 (0.625): highest wins
    # candidate 1 matches image 0 at epoch 10 (0.5), then image 3 at epoch 20 (0.875): highest (the later) wins
    m = _match(monkeypatch, [
        ([0.75, 0.5], [1, 0], [0.25, 0.25]),
        ([0.625, 0.875], [2, 3], [0.25, 0.25]),
    ], {10: torch.zeros(2, 3, 32, 32), 20: torch.zeros(2, 3, 32, 32)})
    assert m.target.tolist() == [1, 3] and m.accept_epoch.tolist() == [10, 20] and m.best.tolist() == [0.75, 0.875]


def test_match_ties_go_to_the_earliest_snapshot_and_record_the_margin(monkeypatch):
    # candidate 0: the same SSIM at epochs 10 and 20 (a real tie): the earlier snapshot keeps it;
    # candidate 1 matches training image 0 (index 0 must count as a match)
    m = _match(monkeypatch, [
        ([0.75, 0.625], [2, 0], [0.5, 0.25]),
        ([0.75, 0.5], [3, 1], [0.25, 0.4375]),
    ], {10: torch.zeros(2, 3, 32, 32), 20: torch.zeros(2, 3, 32, 32)})
    assert m.candidate.tolist() == [0, 1] and m.target.tolist() == [2, 0]
    assert m.accept_epoch.tolist() == [10, 10]
    assert m.margin.tolist() == [0.25, 0.375] and m.best.tolist() == [0.75, 0.625]


def test_match_skips_a_missing_snapshot_and_goes_on(monkeypatch):
    # epoch 10 diverged for every candidate (NaN rows): epoch 20 must still be matched
    m = _match(monkeypatch, [([0.75], [1], [0.25])], {10: torch.full((1, 3, 32, 32), float("nan")), 20: torch.zeros(1, 3, 32, 32)})
    assert m.candidate.tolist() == [0] and m.accept_epoch.tolist() == [20]


def test_match_uses_the_ssim_variant_it_is_given():
    from recon_restore.metrics import best_matches

    g = torch.Generator().manual_seed(0)
    targets = torch.rand(3, 3, 32, 32, generator=g, dtype=torch.float64)
    snap = (targets + 0.1 * torch.rand(3, 3, 32, 32, generator=g, dtype=torch.float64)).clamp(0, 1)
    ref = {v: best_matches(snap, targets, v).cand_best for v in ("haim", "wang")}
    assert not torch.allclose(ref["haim"], ref["wang"])
    for v in ("haim", "wang"):
        m = dmatch.match_candidates({10: snap}, targets, variant=v)
        assert m.candidate.tolist() == [0, 1, 2] and np.allclose(m.best, ref[v].numpy(), rtol=0, atol=1e-12)


# ---- augmentation labels against the applied transform ---------------------------------

def _centroid(img):
    w = img[0]
    c = torch.arange(32, dtype=w.dtype) + 0.5 - 16  # centred pixel coordinates
    return float((w.sum(0) * c).sum() / w.sum()), float((w.sum(1) * c).sum() / w.sum())


def _blob(cx=-6.0, cy=-3.0, s=2.0):
    c = torch.arange(32, dtype=torch.float64) + 0.5 - 16
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s)).expand(1, 3, 32, 32).clone()


def test_quarter_turn_moves_an_off_centre_pattern_as_the_label_says():
    x = _blob(-6.0, -3.0)
    for sign in (1, -1):
        lab = np.zeros((1, 9), np.float32)
        lab[0, 3], lab[0, 4] = -1.0, sign  # cos(theta) - 1, sin(theta): theta = sign * 90 degrees
        cx, cy = _centroid(augment.apply(x, lab, augment.AugmentConfig())[0])
        # forward map (x, y) -> (x cos - y sin, x sin + y cos)
        assert (cx, cy) == pytest.approx((3.0 * sign, -6.0 * sign), abs=0.1)


def test_scale_and_anisotropy_follow_the_label():
    cfg = augment.AugmentConfig()
    x = _blob(-5.0, 4.0, s=1.5)
    lab = np.zeros((1, 9), np.float32)
    lab[0, 2] = 2.5  # isotropic scale 2 ** (0.2 * 2.5) = sqrt(2)
    cx, cy = _centroid(augment.apply(x, lab, cfg)[0])
    assert (cx, cy) == pytest.approx((-5.0 * math.sqrt(2), 4.0 * math.sqrt(2)), abs=0.15)
    lab = np.zeros((1, 9), np.float32)
    lab[0, 5] = 2.5  # anisotropy along x (r = 0): x * sqrt(2), y / sqrt(2)
    cx, cy = _centroid(augment.apply(x, lab, cfg)[0])
    assert (cx, cy) == pytest.approx((-5.0 * math.sqrt(2), 4.0 / math.sqrt(2)), abs=0.15)



@pytest.mark.parametrize("w, theta, wa, r, tx, ty, lab56", [
    (0.5, 0.3, 0.7, 0.9, 0.4, -0.6, None),        # every component, anisotropy at an angle
    (-1.0, 2.0, 0.5, math.pi / 2, 0.2, 0.3, (0.0, 0.5)),  # anisotropy along y: label column 5 exactly 0
    (0.0, -1.2, -0.3, -0.5, -0.7, 0.9, None),     # |w_a| < 1, negative angles
])
def test_inverse_matrix_inverts_the_labelled_forward_map(w, theta, wa, r, tx, ty, lab56):
    """Written independently of augment: p -> s p, rotate by theta, stretch by 2^(aniso_std w_a)
    along the direction r (1/that across it), translate by (tx, ty) translate_frac_std size."""
    cfg = augment.AugmentConfig()
    size = 32
    lab = np.array([0, 0, w, math.cos(theta) - 1, math.sin(theta), wa * math.cos(r), wa * math.sin(r), tx, ty])
    if lab56 is not None:
        lab[5:7] = lab56
    inv = augment._inverse_matrix(lab, cfg, size)
    s, ka = 2.0 ** (cfg.scale_std * w), 2.0 ** (cfg.aniso_std * math.hypot(lab[5], lab[6]))
    u = np.array([math.cos(r), math.sin(r)])  # stretch direction
    v = np.array([-u[1], u[0]])
    rng = np.random.default_rng(1)
    for p in rng.normal(0, 10, (5, 2)):
        q = s * p
        q = np.array([math.cos(theta) * q[0] - math.sin(theta) * q[1], math.sin(theta) * q[0] + math.cos(theta) * q[1]])
        q = ka * (q @ u) * u + (q @ v) / ka * v
        q = q + np.array([tx, ty]) * cfg.translate_frac_std * size
        back = inv @ np.array([q[0], q[1], 1.0])
        assert back == pytest.approx([p[0], p[1], 1.0], abs=1e-9)


def test_warp_reflects_at_the_border_and_apply_stays_in_range():
    cfg = augment.AugmentConfig()
    lab = np.zeros((1, 9), np.float32)
    lab[0, 3], lab[0, 4], lab[0, 7] = math.cos(0.5) - 1, math.sin(0.5), 0.75  # rotate and shift out of the frame
    flat = torch.full((1, 3, 32, 32), 0.5, dtype=torch.float64)
    # reflection padding: a constant image stays constant, however far the content moves
    assert torch.allclose(augment.apply(flat, lab, cfg), flat, atol=1e-12)
    # bicubic resampling overshoots at a hard edge; the result is clipped to [0, 1]
    edge = torch.zeros(1, 3, 32, 32, dtype=torch.float64)
    edge[..., 12:20, 12:20] = 1.0
    raw = augment._warp(edge, torch.as_tensor(augment._inverse_matrix(lab[0], cfg, 32))[None])
    assert raw.min() < 0 and raw.max() > 1
    out = augment.apply(edge, lab, cfg)
    assert out.min() == 0 and out.max() == 1 and torch.equal(out, raw.clamp(0, 1))


def test_apply_refuses_a_non_square_image_by_name():
    with pytest.raises(ValueError, match="square images, got 32x16"):
        augment.apply(torch.zeros(1, 3, 32, 16), np.zeros((1, 9), np.float32), augment.AugmentConfig())


def test_ncc_features_are_bicubic_halves_standardised_per_channel():
    from recon_restore.metrics.ncc import ncc_features

    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = ncc_features(x).view(2, 3, 16 * 16)  # Haim et al.: bicubic 1/2, then per image and channel
    assert f.mean(-1).abs().max() < 1e-12 and torch.allclose(f.std(-1), torch.ones(2, 3, dtype=f.dtype))


# ---- balanced sampler: exact keep probabilities -----------------------------------------

def test_sampler_keep_probability_is_exactly_k_over_z(tmp_path):
    from test_dataset import _skewed_shard

    from recon_restore.dataset.sampler import BalancedSampler

    _skewed_shard(tmp_path / "s.h5")
    s = BalancedSampler([tmp_path / "s.h5"], K=11, repeats=10, noise_fraction=0.1, seed=3, window=64)
    z = s.z
    assert z[0] == 110 and z[1] == 3
    expect = np.concatenate([np.full(110, 11 / 110), np.full(60, 1.0)]).astype(np.float32)
    assert np.array_equal(s.keep_prob, expect)
    assert s.expected_per_repeat() == pytest.approx((11 + 60) / 0.9, rel=1e-6)


# ---- what restore returns ----------------------------------------------------------------

def test_restore_single_is_a_sample_averaged_their_mean_std_their_spread():
    from recon_restore.restorers import restore as rs

    outs = iter([torch.full((2, 3, 32, 32), v, dtype=torch.float64) for v in (-0.5, 0.0, 0.5)])
    calls = []

    def fake_heun(den, cond, generator=None, dtype=None, **k):
        calls.append(tuple(g.initial_seed() for g in generator))  # one generator per reconstruction
        return next(outs)

    orig = rs.heun_sample
    rs.heun_sample = fake_heun
    try:
        r = rs.restore_edm(torch.nn.Identity(), torch.rand(2, 3, 32, 32), samples=3, sampler_cfg={}, batch=8,
                           device=torch.device("cpu"), seed=1)
    finally:
        rs.heun_sample = orig
    # model units [-1, 1] -> [0, 1]: samples 0.25, 0.5, 0.75
    assert torch.allclose(r.single, torch.full_like(r.single, 0.25))
    assert torch.allclose(r.averaged, torch.full_like(r.averaged, 0.5))
    assert torch.allclose(r.std, torch.full((2,), math.sqrt(((0.25) ** 2 * 2) / 3), dtype=r.std.dtype))
    assert len(calls) == 3 and all(len(c) == 2 for c in calls)
    assert len({s for c in calls for s in c}) == 6  # each sample of each reconstruction its own noise


def test_target_initialisation_stds_are_the_papers():
    """First layer N(0, init_std^2), then He-normal: checked on the drawn weights."""
    from recon_restore.attack.model import init_weights

    w = init_weights(4, 3072, [1000, 500], init_std=1e-4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(w.W1.std()) == pytest.approx(1e-4, rel=0.01) and abs(float(w.W1.mean())) < 1e-6
    assert float(w.W2.std()) == pytest.approx(math.sqrt(2 / 1000), rel=0.01)
    assert float(w.w3.std()) == pytest.approx(math.sqrt(2 / 500), rel=0.05)


def test_every_label_column_follows_the_ada_draw():
    """All nine columns of sampled augmentation labels, against the rules that generate them."""
    n = 40000
    lab = augment.sample_labels(n, augment.AugmentConfig(), np.random.default_rng(1)).astype(np.float64)
    assert lab.shape == (n, 9)
    assert set(np.unique(lab[:, :2])) <= {0.0, 1.0}
    assert lab[:, 0].mean() == pytest.approx(0.5, abs=0.01) and lab[:, 1].mean() == pytest.approx(0.06, abs=0.005)
    # scale: 12% of rows, standard normal
    on = lab[:, 2] != 0
    assert on.mean() == pytest.approx(0.12, abs=0.006) and lab[on, 2].std() == pytest.approx(1.0, abs=0.03)
    assert abs(lab[on, 2].mean()) < 0.05
    # rotation: (cos - 1, sin) of one angle, uniform on (-pi, pi), 12% of rows
    assert np.allclose((lab[:, 3] + 1) ** 2 + lab[:, 4] ** 2, 1.0, atol=1e-6) and (lab[:, 3] <= 0).all()
    rot = (lab[:, 3] != 0) | (lab[:, 4] != 0)
    theta = np.arctan2(lab[rot, 4], lab[rot, 3] + 1)
    assert rot.mean() == pytest.approx(0.12, abs=0.006)
    assert (theta < 0).mean() == pytest.approx(0.5, abs=0.03) and (np.abs(theta) > np.pi / 2).mean() == pytest.approx(0.5, abs=0.03)
    # anisotropy: w_a (cos r, sin r), 12% of rows; r = 0 for half of them, uniform otherwise
    an = (lab[:, 5] != 0) | (lab[:, 6] != 0)
    assert an.mean() == pytest.approx(0.12, abs=0.006)
    assert (lab[an, 6] == 0).mean() == pytest.approx(0.5, abs=0.03)
    assert np.hypot(lab[an, 5], lab[an, 6]).mean() == pytest.approx(np.sqrt(2 / np.pi), abs=0.03)  # E|N(0,1)|
    turned = an & (lab[:, 6] != 0)
    r = np.mod(np.arctan2(lab[turned, 6], lab[turned, 5]), np.pi)  # the axis angle (w_a may be negative)
    assert len(np.unique(np.round(r, 6))) > 0.9 * turned.sum() and r.std() == pytest.approx(np.pi / np.sqrt(12), abs=0.06)
    # translation: both coordinates together, 12% of rows, standard normal
    tr = (lab[:, 7] != 0) | (lab[:, 8] != 0)
    assert tr.mean() == pytest.approx(0.12, abs=0.006) and ((lab[:, 7] != 0) == tr).all() and ((lab[:, 8] != 0) == tr).all()
    assert lab[tr, 7].std() == pytest.approx(1.0, abs=0.04) and lab[tr, 8].std() == pytest.approx(1.0, abs=0.04)
    assert abs(np.corrcoef(lab[tr, 7], lab[tr, 8])[0, 1]) < 0.05  # independent coordinates
    # the transforms are drawn independently of each other
    assert (on & rot).mean() == pytest.approx(0.12 * 0.12, abs=0.003)


# ---- balanced sampler: the stream against its definition, across shards and windows -----

def _marked_shard(path, first_pair, sources, runs, rows):
    """A shard whose pixels name what they are: recon[0, 0, 0] = global pair id; target
    [0, 0, 0] = pool index, [1, 0, 0] = run; run means are flat (dark 0.2 or bright 0.8)."""
    from recon_restore.dataset.shards import ShardData, write_shard

    n, t = len(rows), len(sources)
    recon = np.zeros((n, 3, 32, 32), np.uint8)
    recon[:, 0, 0, 0] = first_pair + np.arange(n)
    image = np.zeros((t, 3, 32, 32), np.uint8)
    image[:, 0, 0, 0] = sources
    trun = np.concatenate([np.full(k, r) for r, (k, _) in runs.items()])
    image[:, 1, 0, 0] = trun
    label = np.arange(t * 9, dtype=np.float32).reshape(t, 9) + 100 * first_pair
    z = lambda k: np.zeros(k)  # noqa: E731
    d = ShardData(
        {"recon": recon, "target_row": np.asarray(rows), "run": trun[rows], "epoch": z(n), "candidate": z(n),
         "ssim": np.ones(n), "margin": np.ones(n)},
        {"image": image, "aug_label": label, "source_index": np.asarray(sources), "run": trun},
        {"run": np.array(list(runs)), "seed": z(len(runs)), "status": z(len(runs)),
         "mean": np.stack([np.full((3, 32, 32), m) for _, m in runs.values()]), "train_loss": z(len(runs)),
         "min_margin": z(len(runs)), "stationarity": z(len(runs)), "box": z(len(runs)), "lam_penalty": z(len(runs)),
         "pairs": np.array([int((trun[rows] == r).sum()) for r in runs])},
    )
    write_shard(path, d, {})
    return d


@pytest.fixture
def two_shards(tmp_path):
    # shard 0: runs 10 (targets 0-1, dark) and 11 (targets 2-4, bright); shard 1: run 20 (bright)
    # pool image 2 is a target in both shards: z = 2 + 2
    a = _marked_shard(tmp_path / "a.h5", 0, [0, 1, 2, 3, 4], {10: (2, 0.2), 11: (3, 0.8)}, [0, 0, 0, 1, 2, 2, 3, 4, 4, 4])
    b = _marked_shard(tmp_path / "b.h5", 10, [2, 5, 6], {20: (3, 0.8)}, [0, 0, 1, 2, 2, 2, 2])
    return [tmp_path / "a.h5", tmp_path / "b.h5"], (a, b)


def _sampler(paths, **kw):
    from recon_restore.dataset.sampler import BalancedSampler

    args = dict(K=1.5, repeats=2, noise_fraction=0.25, seed=4, window=4) | kw
    return BalancedSampler(paths, **args)


def test_sampler_keep_probability_counts_every_shard(two_shards):
    s = _sampler(two_shards[0])
    # z: pool 0: 3, 1: 1, 2: 2 + 2, 3: 1, 4: 3, 5: 1, 6: 4; keep = min(1, 1.5 / z)
    assert s.n_pairs == 17 and s.z.tolist() == [3, 1, 4, 1, 3, 1, 4]
    expect = [0.5] * 3 + [1.0] + [0.375] * 2 + [1.0] + [0.5] * 3 + [0.375] * 2 + [1.0] + [0.375] * 4
    assert s.keep_prob.tolist() == expect


def test_sampler_stream_is_the_repeats_in_order_across_windows_batches_and_restarts(two_shards):
    paths, (a, b) = two_shards
    s = _sampler(paths, K=100, repeats=3)  # every pair kept in every repeat: the boundaries are all exercised
    assert np.array_equal(s.repeat_examples(4), s.repeat_examples(1)) and not np.array_equal(s.repeat_examples(0), s.repeat_examples(1))
    expected = np.concatenate([s.repeat_examples(r) for r in range(5)])
    n0 = len(s.repeat_examples(0))
    assert n0 == 17 + 6  # all pairs, and round(17 x 0.25 / 0.75) noise examples
    images = np.concatenate([a.targets["image"], b.targets["image"]])
    labels = np.concatenate([a.targets["aug_label"], b.targets["aug_label"]])
    rows = np.concatenate([a.pairs["target_row"], b.pairs["target_row"] + 5])
    run_of = {10: range(0, 2), 11: range(2, 5), 20: range(5, 8)}
    for start in (0, 1, 5, n0 - 1, n0, n0 + 2, 2 * n0 + 1, 3 * n0):
        got = []
        for batch in s.batches(3, start=start):
            got += [(batch.recon[i], batch.target[i], batch.aug_label[i], bool(batch.noise[i])) for i in range(3)]
            if len(got) >= len(expected) - start - 3:
                break
        assert len(got) >= len(expected) - start - 3
        for k, (recon, target, label, noise) in enumerate(got):
            e = int(expected[start + k])
            t = torch.from_numpy(images).float() / 255
            if e >= 0:  # a pair: its reconstruction, its training image and that image's label
                assert not noise and round(float(recon[0, 0, 0]) * 255) == e
                assert torch.equal(target, t[rows[e]]) and torch.equal(label, torch.from_numpy(labels[rows[e]]))
            else:  # noise: a target of one run, and the mean of that same run plus noise
                assert noise
                j = int(np.nonzero((t == target).flatten(1).all(1))[0][0])
                assert torch.equal(label, torch.from_numpy(labels[j]))
                bright = float(recon.mean()) > 0.5
                run = int(round(float(target[1, 0, 0]) * 255))
                assert bright == (run in (11, 20)) and j in run_of[run]
    # noise examples: fresh noise every time (repeat and window), every target of a run drawn
    noise, picked = [], set()
    for i, batch in enumerate(s.batches(3)):
        for k in np.nonzero(batch.noise.numpy())[0]:
            noise.append(batch.recon[k])
            picked.add(int(round(float(batch.target[k, 0, 0, 0]) * 255)) * 100 + int(round(float(batch.target[k, 1, 0, 0]) * 255)))
        if i > 400:
            break
    flat = torch.stack(noise).flatten(1)
    assert len(torch.unique(flat, dim=0)) == len(flat)
    assert picked == {0 * 100 + 10, 1 * 100 + 10, 2 * 100 + 11, 3 * 100 + 11, 4 * 100 + 11, 2 * 100 + 20, 5 * 100 + 20, 6 * 100 + 20}
    # postprocessing: each noise image touches the edge of [0, 1] on the side nearer its mean
    for x in noise:
        assert float(x.max()) == 1.0 if float(x.mean()) > 0.5 else float(x.min()) == 0.0


def test_sampler_keeps_pairs_independently_within_a_repeat(tmp_path):
    from test_dataset import _skewed_shard

    _skewed_shard(tmp_path / "s.h5")
    s = _sampler([tmp_path / "s.h5"], K=11, repeats=20, noise_fraction=0.1, window=64)
    for r in range(20):  # pairs of image 0 kept with p = 0.1 each: Binomial(110, 0.1), never all or none
        kept0 = int((s.repeat_examples(r)[:, None] == np.arange(110)).any(0).sum())
        assert 0 < kept0 < 40


def test_sampler_refuses_no_shards_and_empty_shards_by_name(tmp_path):
    from recon_restore.dataset.sampler import BalancedSampler

    with pytest.raises(ValueError, match=r"^the sampler needs at least one shard$"):
        BalancedSampler([], K=11, repeats=1, noise_fraction=0.1, seed=0, window=8)
    _marked_shard(tmp_path / "empty.h5", 0, [0], {3: (1, 0.5)}, np.zeros(0, np.int64))
    with pytest.raises(ValueError, match=r"empty\.h5.*hold no pairs"):
        BalancedSampler([tmp_path / "empty.h5"], K=11, repeats=1, noise_fraction=0.1, seed=0, window=8)


def test_sigma_steps_defaults_are_edms_and_two_steps_span_the_range():
    t = sigma_steps()  # EDM's N = 18, s_min = 0.002, s_max = 80, rho = 7
    assert len(t) == 19 and t.dtype == torch.float64
    assert t[:3].tolist() == pytest.approx([80.0, 57.586, 40.786], abs=1e-3) and t[-2:].tolist() == pytest.approx([0.002, 0.0])
    assert sigma_steps(2, 0.5, 8.0).tolist() == pytest.approx([8.0, 0.5, 0.0], rel=1e-12)


# ---- the EDM loss against its definition ------------------------------------------------

class _Probe(torch.nn.Module):
    """A stand-in denoiser that returns one of its inputs, so the loss can be computed by hand."""

    sigma_data = 0.5

    def __init__(self, returns):
        super().__init__()
        self.returns, self.seen = returns, {}

    def forward(self, x, sigma, cond, aug_label=None):
        self.seen = dict(x=x, sigma=sigma, cond=cond, aug=aug_label)
        return {"x": x, "cond": cond}[self.returns]


def test_edm_loss_is_the_weighted_squared_error_at_lognormal_noise_levels():
    from recon_restore.restorers.edm import edm_loss

    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    cond = torch.rand(4, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    aug = torch.rand(4, 9, generator=g, dtype=torch.float64)
    P_mean, P_std, sd = -0.7, 1.3, 0.5
    # the same draws by hand: ln sigma ~ N(P_mean, P_std^2) per image, then the noise n ~ N(0, sigma^2)
    h = torch.Generator().manual_seed(5)
    sigma = (torch.randn(4, 1, 1, 1, generator=h, dtype=torch.float64) * P_std + P_mean).exp()
    noise = torch.randn(target.shape, generator=h, dtype=torch.float64) * sigma
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    probe = _Probe("x")  # D(x) = x: the error is the noise itself
    loss = edm_loss(probe, target, cond, aug, P_mean, P_std, torch.Generator().manual_seed(5))
    assert float(loss) == pytest.approx(float((weight * noise**2).sum() / 4), rel=1e-12)
    assert torch.equal(probe.seen["x"], target + noise) and torch.equal(probe.seen["sigma"], sigma.flatten())
    assert torch.equal(probe.seen["cond"], cond) and torch.equal(probe.seen["aug"], aug)
    probe = _Probe("cond")  # D = the condition: the error is cond - target, whatever the noise
    loss = edm_loss(probe, target, cond, aug, P_mean, P_std, torch.Generator().manual_seed(5))
    assert float(loss) == pytest.approx(float((weight * (cond - target) ** 2).sum() / 4), rel=1e-12)
    # EDM's defaults: P_mean = -1.2, P_std = 1.2
    h = torch.Generator().manual_seed(5)
    s_default = (torch.randn(4, 1, 1, 1, generator=h, dtype=torch.float64) * 1.2 - 1.2).exp()
    probe = _Probe("x")
    edm_loss(probe, target, cond, None, generator=torch.Generator().manual_seed(5))
    assert torch.equal(probe.seen["sigma"], s_default.flatten()) and probe.seen["aug"] is None


def test_preconditioning_uses_its_sigma_data_and_passes_the_augmentation_label():
    from recon_restore.restorers.edm import EDMPrecond
    from recon_restore.restorers.edm.precond import coefficients

    torch.manual_seed(0)
    small = dict(model_channels=8, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[16], dropout=0.0, augment_dim=9)
    m = EDMPrecond(small, sigma_data=0.25).double().eval()
    with torch.no_grad():  # non-zero last layer, so the network's output and its label matter
        m.net.out_conv.weight.normal_(0, 0.1)
    seen = {}
    m.net.register_forward_hook(lambda mod, args, out: seen.update(f=out.clone()))
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    cond = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    s = torch.tensor([0.7, 3.0], dtype=torch.float64)
    out = m(x, s, cond)
    c_skip, c_out, _, _ = coefficients(s.view(-1, 1, 1, 1), 0.25)
    assert torch.allclose(out, c_skip * x + c_out * seen["f"], rtol=1e-12, atol=1e-14)
    lab = torch.rand(2, 9, dtype=torch.float64)
    assert not torch.allclose(m(x, s, cond, lab), out)  # the label reaches the network
