"""Paper 001's two-stage adaptation: the losses by hand, the fidelity term that holds G at
G0 (zero loss, zero gradient), the adversarial term that moves it, and a killed stage 2
that resumes identically. The CLI test on the tiny pipeline (test_cli.py) checks that the
adaptation network shares no image with the evaluated network."""

import math

import numpy as np
import pytest
import torch

from conftest import save_then_die

from recon_restore.restorers import adapt as ad
from recon_restore.restorers.adapt import AdaptSpec, Discriminator, adapt, discriminator_loss, generator_loss
from recon_restore.restorers.bfdncnn import BFDnCNN


def test_losses_by_hand():
    zero = torch.zeros(4)
    assert discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))  # D undecided: -[log 1/2 + log 1/2]
    y = torch.rand(4, 3, 32, 32)
    assert generator_loss(y, y, zero, 1e-3).item() == pytest.approx(1e-3 * math.log(2))  # fidelity 0 + lambda (-log 1/2)
    big = torch.full((4,), 30.0)
    assert discriminator_loss(big, -big).item() == pytest.approx(0.0, abs=1e-9)  # a perfect discriminator
    assert generator_loss(y + 0.1, y, big, 1.0).item() == pytest.approx(3 * 0.01, rel=1e-5)  # eq. 2: 1/(WH), summed over C = 3
    assert Discriminator(8)(torch.rand(5, 3, 32, 32)).shape == (5,)


def _setup(n=40, seed=0):
    torch.manual_seed(seed)
    g0 = BFDnCNN(depth=3, channels=8).eval()
    rng = np.random.default_rng(seed)
    recon = torch.from_numpy(rng.random((n, 3, 32, 32)).astype(np.float32))
    clean = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)
    return g0, recon, clean


def test_fidelity_is_zero_at_g0_and_holds_g_there_without_the_adversarial_term(tmp_path):
    g0, recon, clean = _setup()
    spec = AdaptSpec(steps=5, batch=8, lr=1e-2, adversarial_weight=0.0, discriminator_channels=4, log_every=1)
    g, hist = adapt(g0, recon, clean, spec, 1, tmp_path / "s")
    assert all(h["fidelity"] == 0.0 for h in hist)  # G = G0 on its inputs: the surrogate loss is zero...
    assert all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), g0.state_dict().values()))  # ...and so is its gradient
    spec.adversarial_weight = 1.0
    g, hist = adapt(g0, recon, clean, spec, 1, tmp_path / "s2")
    assert hist[0]["fidelity"] == 0.0 and hist[-1]["fidelity"] > 0  # the adversarial term moves G away from G0
    assert not all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), g0.state_dict().values()))


def test_killed_adaptation_resumes_identically(tmp_path, monkeypatch):
    g0, recon, clean = _setup()
    spec = AdaptSpec(steps=6, batch=8, lr=1e-3, adversarial_weight=1e-2, discriminator_channels=4, checkpoint_every=3, log_every=2)
    ref, _ = adapt(g0, recon, clean, spec, 7, tmp_path / "ref-state", "fp")
    orig = ad._save_state
    monkeypatch.setattr(ad, "_save_state", save_then_die(orig))
    with pytest.raises(KeyboardInterrupt):
        adapt(g0, recon, clean, spec, 7, tmp_path / "state", "fp")
    monkeypatch.setattr(ad, "_save_state", orig)
    assert (tmp_path / "state").exists()
    with pytest.raises(Exception, match="other settings"):
        adapt(g0, recon, clean, spec, 7, tmp_path / "state", "another fingerprint")
    g, _ = adapt(g0, recon, clean, spec, 7, tmp_path / "state", "fp")
    assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(g.state_dict().values(), ref.state_dict().values()))
