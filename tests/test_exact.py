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


def test_match_threshold_is_strict_and_margin_inclusive(monkeypatch):
    # dyadic values: 0.5 - 0.375 = 0.125 exactly
    monkeypatch.setattr(dmatch, "best_matches", _fake_best([([0.375, 0.5, 0.5, 0.625], [0, 1, 2, 3], [0.0, 0.375, 0.4375, 0.5])]))
    snaps = {10: torch.zeros(4, 3, 32, 32)}
    m = dmatch.match_candidates(snaps, torch.zeros(4, 3, 32, 32), threshold=0.375, margin=0.125)
    # cand 0: at the threshold (not above); cand 1: margin exactly 0.125 (accepted);
    # cand 2: margin 0.0625 (refused); cand 3: margin exactly 0.125 (accepted)
    assert m.candidate.tolist() == [1, 3] and m.target.tolist() == [1, 3]


def test_match_across_snapshots_highest_wins_not_last(monkeypatch):
    # candidate 0 matches image 1 at epoch 10 (0.75), then image 2 at epoch 20 (0.625): highest wins
    # candidate 1 matches image 0 at epoch 10 (0.5), then image 3 at epoch 20 (0.875): highest (the later) wins
    monkeypatch.setattr(dmatch, "best_matches", _fake_best([
        ([0.75, 0.5], [1, 0], [0.25, 0.25]),
        ([0.625, 0.875], [2, 3], [0.25, 0.25]),
    ]))
    snaps = {10: torch.zeros(2, 3, 32, 32), 20: torch.zeros(2, 3, 32, 32)}
    m = dmatch.match_candidates(snaps, torch.zeros(4, 3, 32, 32), threshold=0.375, margin=0.125)
    assert m.target.tolist() == [1, 3] and m.accept_epoch.tolist() == [10, 20] and m.best.tolist() == [0.75, 0.875]


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
        calls.append(generator.initial_seed())
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
    assert len(set(calls)) == 3  # each sample its own noise


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
