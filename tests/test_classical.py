"""The classical denoisers (paper 003's baselines) and their blind parameter choice."""

import json

import numpy as np
import pytest
import torch

from recon_restore import methods
from recon_restore.config import load_params
from recon_restore.restorers import classical
from recon_restore.restorers.classical import DENOISERS, restore_classical


def _smooth_images(n=6, seed=0):
    """Smooth colour images (a few Gaussian blobs), clean, in [0, 1], (n, 3, 32, 32)."""
    rng = np.random.default_rng(seed)
    c = np.arange(32) + 0.5
    yy, xx = np.meshgrid(c, c, indexing="ij")
    out = np.zeros((n, 3, 32, 32))
    for i in range(n):
        for _ in range(4):
            cx, cy, s = rng.uniform(4, 28), rng.uniform(4, 28), rng.uniform(3, 8)
            out[i] += rng.uniform(0.2, 0.5, (3, 1, 1)) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    return torch.from_numpy(0.15 + 0.7 * out / out.max())


@pytest.fixture(scope="module")
def noisy():
    clean = _smooth_images()
    g = torch.Generator().manual_seed(1)
    return clean, (clean + 0.08 * torch.randn(clean.shape, generator=g, dtype=clean.dtype)).clamp(0, 1)


@pytest.mark.parametrize("name", list(DENOISERS))
def test_each_denoiser_lowers_the_error_of_a_noisy_image_blind(noisy, name):
    why = methods.missing(name)
    if why:
        pytest.skip(f"{name}: {why}")
    clean, x = noisy
    cfg = load_params().section("restorers", name)
    out, chosen = restore_classical(x, name, cfg, seed=0)  # only the noisy images go in
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert float(((out - clean) ** 2).mean()) < 0.6 * float(((x - clean) ** 2).mean())
    p = DENOISERS[name].param
    if p is not None:  # a grid in every preset: calibrated, the losses recorded, the choice from the grid
        assert chosen["kwargs"][p] in cfg[p] and len(chosen["losses"]) == len(cfg[p])
    assert chosen["noise_median"] == pytest.approx(0.08, rel=0.3)  # the wavelet noise estimate
    json.dumps(chosen)  # goes into the restored file's metadata


def test_j_invariant_choice_is_close_to_the_oracle(noisy):
    """The calibration sees only the noisy images; its choice must be near the best choice that
    the clean images would have made."""
    clean, x = noisy
    grid = [0.3, 0.6, 1.0, 1.6, 2.5, 4.0]
    _, chosen = restore_classical(x, "heat", {"sigma": grid, "calibrate_images": 6, "stride": 4}, seed=0)
    err = {s: float(((restore_classical(x, "heat", {"sigma": s}, 0)[0] - clean) ** 2).mean()) for s in grid}
    oracle = min(err, key=err.get)
    assert err[chosen["kwargs"]["sigma"]] <= 1.15 * err[oracle]
    assert min(err.values()) < err[0.3] and min(err.values()) < err[4.0]  # the grid brackets the optimum


def test_fixed_parameter_skips_calibration(noisy):
    _, x = noisy
    out, chosen = restore_classical(x, "tv", {"weight": 0.05, "calibrate_images": 4, "stride": 4}, seed=0)
    assert chosen["kwargs"] == {"weight": 0.05} and chosen["losses"] == {}


def test_perona_malik_is_the_heat_step_for_large_kappa_and_keeps_edges_for_small():
    rng = np.random.default_rng(0)
    u = rng.random((8, 8, 3))
    # kappa -> infinity: conductance 1, one explicit step of the heat equation with zero-flux borders
    p = np.pad(u, ((1, 1), (1, 1), (0, 0)), mode="edge")
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * u
    out = classical.perona_malik(u, kappa=1e9, noise=1.0, iterations=1, dt=0.2)
    assert np.allclose(out, u + 0.2 * lap, atol=1e-12)
    # a constant image stays constant; a step edge much higher than kappa is kept
    flat = np.full((8, 8, 3), 0.3)
    assert np.allclose(classical.perona_malik(flat, kappa=1.0, noise=0.1, iterations=5), flat, atol=1e-15)
    step = np.zeros((8, 8, 3))
    step[:, 4:] = 1.0
    kept = classical.perona_malik(step, kappa=1.0, noise=0.01, iterations=10)  # kappa = 0.01 << 1
    assert np.abs(kept - step).max() < 1e-6


def test_unknown_classical_restorer_is_named():
    with pytest.raises(ValueError, match="unknown classical restorer 'bm4d'"):
        restore_classical(torch.zeros(1, 3, 32, 32), "bm4d", {}, 0)


def test_perona_malik_honours_channel_axis():
    from recon_restore.restorers.classical import perona_malik

    x = np.random.default_rng(0).random((16, 16, 3))
    last = perona_malik(x, kappa=1.0, noise=0.05)
    first = perona_malik(x.transpose(2, 0, 1), kappa=1.0, noise=0.05, channel_axis=0)
    assert first.shape == (3, 16, 16) and np.allclose(first.transpose(1, 2, 0), last)
    assert not np.allclose(last, x)  # it smooths
    gray = perona_malik(x[..., 0], kappa=1.0, noise=0.05, channel_axis=None)
    assert gray.shape == (16, 16)


def test_tikhonov_is_the_exact_minimiser_of_its_energy():
    """Paper 003's Tikhonov regularisation: the DCT solution equals a direct solve of the
    normal equations (I - lambda Laplacian) u = y with zero-flux borders, on a small image;
    lambda = 0 returns the input."""
    rng = np.random.default_rng(0)
    y = rng.random((6, 5, 3))
    lam = 0.7
    h, w = y.shape[:2]
    d = lambda n: np.diff(np.eye(n), axis=0)  # noqa: E731  forward differences (n - 1, n): zero flux past the border
    lap = np.kron(d(h).T @ d(h), np.eye(w)) + np.kron(np.eye(h), d(w).T @ d(w))  # -Laplacian on the (h, w) grid, row-major
    direct = np.stack([np.linalg.solve(np.eye(h * w) + lam * lap, y[..., c].ravel()).reshape(h, w) for c in range(3)], -1)
    assert np.allclose(classical.tikhonov(y, weight=lam, noise=0.0), direct, atol=1e-12)
    assert np.allclose(classical.tikhonov(y, weight=0.0, noise=0.0), y, atol=1e-12)
    chw = np.moveaxis(y, -1, 0)
    assert np.allclose(classical.tikhonov(chw, weight=lam, noise=0.0, channel_axis=0), np.moveaxis(direct, -1, 0), atol=1e-12)
    assert "tikhonov" in methods.NAMES and methods.entry("tikhonov").kind == "classical"


def test_block_masks_cover_every_pixel_once_and_the_prediction_never_reads_its_own_block():
    masks = classical.block_masks(12, 10, block=2, stride=4)
    assert len(masks) == 4 and np.array_equal(np.sum(masks, 0), np.ones((12, 10)))
    with pytest.raises(ValueError, match="multiple"):
        classical.block_masks(8, 8, block=3, stride=4)
    rng = np.random.default_rng(1)
    x = rng.random((12, 10, 3))
    m = masks[1]
    y = x.copy()
    y[m] = rng.random((int(m.sum()), 3))  # other values inside the masked blocks
    assert np.allclose(classical.infill(x, m, 2.0), classical.infill(y, m, 2.0))  # J-invariant: the block is never read
    assert np.array_equal(classical.infill(x, m, 2.0)[~m], x[~m])


def test_calibration_reports_where_the_choice_sits_in_its_grid(noisy):
    assert classical.grid_position([0.1, 0.3, 1.0], 0.3) == "inside"
    assert classical.grid_position([0.1, 0.3, 1.0], 0.1) == "low edge" and classical.grid_position([1.0, 0.1, 0.3], 1.0) == "high edge"
    _, chosen = restore_classical(noisy[1], "heat", {"sigma": [0.05, 0.1], "calibrate_images": 4, "stride": 4, "block": 2}, seed=0)
    assert chosen["masks"] == "block 2, stride 4" and chosen["position"] in ("low edge", "high edge")  # two values: always an edge
    _, chosen = restore_classical(noisy[1], "heat", {"sigma": [0.3, 1.0, 3.0, 10.0], "calibrate_images": 4, "stride": 4, "block": 2}, seed=0)
    assert chosen["position"] == classical.grid_position([0.3, 1.0, 3.0, 10.0], chosen["kwargs"]["sigma"])


def test_block_masks_calibrate_correlated_noise_closer_to_the_oracle_than_pixel_masks():
    """Noise blurred over ~2 pixels (as reconstruction errors are): single-pixel J-invariance
    sees a masked pixel's noise in its neighbours and under-smooths; 4x4 blocks do not."""
    from scipy.ndimage import gaussian_filter

    clean = _smooth_images(n=8, seed=3).numpy().transpose(0, 2, 3, 1)
    rng = np.random.default_rng(4)
    noise = np.stack([gaussian_filter(rng.standard_normal(clean.shape[1:]), sigma=(1.2, 1.2, 0)) for _ in clean])
    noisy = clean + 0.1 * noise / noise.std()
    est = np.array([classical.noise_estimate(x) for x in noisy])
    grid = [0.4, 0.8, 1.2, 1.6, 2.4, 3.2]
    err = {v: np.mean([np.mean((classical.heat(x, sigma=v, noise=0) - c) ** 2) for x, c in zip(noisy, clean)]) for v in grid}
    pixel = {v: classical.invariant_loss(noisy, est, "heat", {"sigma": v}, 4) for v in grid}
    block = {v: classical.block_invariant_loss(noisy, est, "heat", {"sigma": v}, 4, 8) for v in grid}
    best = {k: min(d, key=d.get) for k, d in (("oracle", err), ("pixel", pixel), ("block", block))}
    assert best["pixel"] < best["block"] and abs(np.log(best["block"] / best["oracle"])) < abs(np.log(best["pixel"] / best["oracle"])), best


def test_the_summary_lists_each_calibrated_choice_and_warns_when_it_sits_on_an_edge():
    import pandas as pd

    from recon_restore.report.tables import to_markdown

    row = dict(name="Plain", good=3, images=10, good_lo=2, good_hi=4, null_mean=0.2, null_min=0, null_max=1, excess=2.8,
               good_none=3, matched=5, mean_ssim=0.4, mean_haarpsi=0.4, mean_psnr=17.0)
    cal = {"tv": {"param": "weight", "kwargs": {"weight": 0.1}, "losses": {"0.4": 2, "0.05": 1, "0.1": 0.5}, "position": "inside"},
           "heat": {"param": "sigma", "kwargs": {"sigma": 2.4}, "losses": {"0.4": 2, "2.4": 1}, "position": "high edge"}}
    md = to_markdown(pd.DataFrame([row]), 0.4, "haim", "ssim", 5, {}, cal)
    assert "TV denoising weight 0.1 of 0.05, 0.1, 0.4" in md
    assert "Heat equation's calibrated sigma is on the high edge" in md and "TV denoising's calibrated" not in md
