import math

import numpy as np
import pytest
import torch

from recon_restore.evaluate.hparams import draw_run
from recon_restore.evaluate.match import best_match, split_halves
from recon_restore.metrics import haarpsi, ssim_matrix

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


def test_best_match_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    targets = torch.rand(6, 3, 32, 32, generator=g)
    cands = torch.cat([(targets + 0.1 * torch.randn(6, 3, 32, 32, generator=g)).clamp(0, 1), torch.rand(20, 3, 32, 32, generator=g)])
    half = np.array([i % 2 for i in range(26)])
    r = best_match(cands, targets, half, "haim", topk=None, chunk=5)
    m = ssim_matrix(cands.double(), targets.double())
    assert np.allclose(r.ssim, m.max(0).values.numpy(), atol=1e-5)
    assert np.array_equal(r.ssim_arg, m.argmax(0).numpy())
    for h in (0, 1):
        assert np.allclose(r.half_ssim[h], m[torch.from_numpy(half == h)].max(0).values.numpy(), atol=1e-5)
    hp = torch.stack([haarpsi(cands, targets[j].expand_as(cands)) for j in range(6)], 1)
    assert np.allclose(r.haarpsi, hp.max(0).values.numpy(), atol=1e-5)
    # top-k by SSIM finds the same HaarPSI best match when the true copy is among the top k
    rk = best_match(cands, targets, half, "haim", topk=3)
    assert np.array_equal(rk.haarpsi_arg, np.arange(6))


def test_split_halves_is_a_balanced_random_partition():
    runs = np.repeat(np.arange(11), 4)
    h = split_halves(runs, seed=1)
    assert sorted(h) == list(range(11)) and sum(h.values()) == 5
    assert h == split_halves(runs, seed=1) and h != split_halves(runs, seed=2)
