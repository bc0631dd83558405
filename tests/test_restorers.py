import math

import numpy as np
import pytest
import torch

from recon_restore.errors import UserError
from recon_restore.restorers import checkpoint
from recon_restore.restorers.bfdncnn import BFDnCNN, bfdncnn_loss
from recon_restore.restorers.edm import DDPMpp, EDMPrecond, coefficients, edm_loss, heun_sample, sigma_steps
from recon_restore.restorers.restore import read_user_images, restore_direct, restore_edm
from recon_restore.restorers.train import TrainSpec, ema_beta, learning_rate

SMALL = dict(model_channels=8, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[16], dropout=0.0, augment_dim=9)


def test_full_size_ddpmpp_parameter_count():
    """DDPM++ for CIFAR-10 with 9-d augmentation conditioning (55,733,891) + 6-channel stem (3,456)."""
    n6 = sum(p.numel() for p in DDPMpp(in_channels=6).parameters())
    n3 = sum(p.numel() for p in DDPMpp(in_channels=3).parameters())
    assert n6 == 55_737_347 and n3 == 55_733_891


def test_preconditioning_formulas():
    s = torch.tensor([0.002, 0.5, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = coefficients(s, 0.5)
    assert torch.allclose(c_skip, 0.25 / (s**2 + 0.25))
    assert torch.allclose(c_out, s * 0.5 / torch.sqrt(s**2 + 0.25))
    assert torch.allclose(c_in, 1 / torch.sqrt(s**2 + 0.25))
    assert torch.allclose(c_noise, torch.log(s) / 4)
    # at sigma = sigma_data: c_skip = 1/2, c_out = c_in * sigma_data^2 ...
    assert float(c_skip[1]) == pytest.approx(0.5) and float(c_out[1]) == pytest.approx(0.5 / math.sqrt(2))


def test_sampler_sigma_schedule():
    t = sigma_steps(18)
    assert len(t) == 19 and float(t[-1]) == 0.0
    assert [round(float(v), 2) for v in t[:4]] == [80.0, 57.59, 40.79, 28.37]
    assert float(t[17]) == pytest.approx(0.002)


def test_conditioning_channels_are_not_scaled_and_skip_covers_target_only():
    torch.manual_seed(0)
    model = EDMPrecond(SMALL).double().eval()
    seen = {}
    def keep_input(module, args):
        seen["x"] = args[0].clone()

    model.net.register_forward_pre_hook(keep_input)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    cond = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    for sigma in (0.01, 50.0):
        out = model(x, torch.full((2,), sigma, dtype=torch.float64), cond)
        inp = seen["x"]
        assert inp.shape[1] == 6
        assert torch.equal(inp[:, 3:], cond)
        c_skip, c_out, c_in, _ = coefficients(torch.tensor(sigma, dtype=torch.float64))
        assert torch.allclose(inp[:, :3], c_in * x)
        f = model.net(inp, torch.log(torch.tensor([sigma, sigma], dtype=torch.float64)) / 4)
        assert torch.allclose(out, c_skip * x + c_out * f)
        assert out.shape == (2, 3, 32, 32)


def test_heun_sampler_uses_35_evaluations_and_is_deterministic():
    calls = []

    def den(x, s, c):
        calls.append(float(s[0]))
        return torch.zeros_like(x)

    cond = torch.zeros(2, 3, 32, 32)
    a = heun_sample(den, cond, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 35 and calls[0] == 80.0
    # with D = 0 the ODE shrinks x proportionally to sigma: ends at exactly 0
    assert torch.allclose(a, torch.zeros_like(a))
    b = heun_sample(lambda x, s, c: c.expand_as(x), torch.full((1, 3, 32, 32), 0.3), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(b, torch.full_like(b, 0.3), atol=1e-6)


def _toy_pairs(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, 32, 32).contiguous()
    noisy = (clean + 0.15 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1)
    return clean, noisy


def test_a_few_edm_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = EDMPrecond(SMALL)
    clean, noisy = _toy_pairs()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    evalg = lambda: edm_loss(model, clean * 2 - 1, noisy * 2 - 1, None, generator=torch.Generator().manual_seed(9)).item()  # noqa: E731
    before = evalg()
    for _ in range(40):
        opt.zero_grad()
        edm_loss(model, clean * 2 - 1, noisy * 2 - 1, torch.zeros(len(clean), 9), generator=g).backward()
        opt.step()
    assert evalg() < 0.7 * before


def test_bfdncnn_is_positively_homogeneous_and_learns():
    torch.manual_seed(0)
    net = BFDnCNN(depth=6, channels=16)
    clean, noisy = _toy_pairs()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    before = bfdncnn_loss(net, clean, noisy).item()
    for _ in range(60):
        opt.zero_grad()
        bfdncnn_loss(net, clean, noisy).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        assert bfdncnn_loss(net, clean, noisy).item() < before
        y = noisy[:4]
        for a in (0.3, 2.5):
            assert torch.allclose(net(a * y), a * net(y), rtol=1e-4, atol=1e-5)
        assert not any(n.endswith("bias") for n, _ in net.named_parameters())


def test_schedules():
    edm = TrainSpec(steps=100, batch=512, lr=1e-3, lr_rampup_images=10e6, ema_halflife_images=5e5, ema_rampup_ratio=0.05)
    assert learning_rate(edm, 0) == 0 and learning_rate(edm, 10_000) == pytest.approx(1e-3 * 10_000 * 512 / 10e6)
    assert learning_rate(edm, 100_000) == 1e-3
    assert ema_beta(edm, 10**6) == pytest.approx(0.5 ** (512 / 5e5))
    bf = TrainSpec(steps=40000, batch=128, lr=1e-3, halve_after=25000, halve_every=5000)
    assert [learning_rate(bf, s) for s in (24999, 25000, 29999, 30000, 35000)] == [1e-3, 5e-4, 5e-4, 2.5e-4, 1.25e-4]


def test_checkpoint_round_trip_and_restore_ranges(tmp_path):
    torch.manual_seed(0)
    model = EDMPrecond(SMALL)
    checkpoint.save(tmp_path / "e.pt", "edm", {"network": SMALL, "sigma_data": 0.5}, model.state_dict(), {"seed": 1, "method": "edm"})
    cls, loaded, ck = checkpoint.load(tmp_path / "e.pt")
    assert cls.network_kind == "edm-ddpmpp" and ck["kind"] == "edm" and ck["provenance"]["seed"] == 1
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    recon = torch.rand(5, 3, 32, 32)
    r = restore_edm(loaded, recon, samples=3, sampler_cfg={"num_steps": 3}, batch=4, device=torch.device("cpu"), seed=0)
    for t in (r.single, r.averaged):
        assert t.shape == recon.shape and t.min() >= 0 and t.max() <= 1
    assert r.std.shape == (5,) and (r.std >= 0).all()
    bf = BFDnCNN(depth=3, channels=8)
    out = restore_direct(bf, recon, 2, torch.device("cpu"))
    assert out.shape == recon.shape and out.min() >= 0 and out.max() <= 1
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        checkpoint.load(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="does not exist"):
        checkpoint.load(tmp_path / "none.pt")


def test_user_inputs_are_validated(tmp_path):
    np.save(tmp_path / "ok.npy", np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))
    imgs, _ = read_user_images(tmp_path / "ok.npy")
    assert imgs.shape == (3, 3, 32, 32) and imgs.max() <= 1
    np.save(tmp_path / "range.npy", np.full((2, 3, 32, 32), 1.7, dtype=np.float32))
    with pytest.raises(UserError, match=r"range\.npy: float pixels must be finite and in \[0, 1\]"):
        read_user_images(tmp_path / "range.npy")
    np.save(tmp_path / "shape.npy", np.zeros((2, 3, 64, 64), dtype=np.float32))
    with pytest.raises(UserError, match=r"shape\.npy: expected images of shape"):
        read_user_images(tmp_path / "shape.npy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no .png files"):
        read_user_images(tmp_path / "empty")
    with pytest.raises(UserError, match="unsupported input"):
        read_user_images(tmp_path / "x.txt")


def test_plug_and_play_splits_between_the_reconstruction_and_the_prior():
    """Half-quadratic splitting (paper 003): with mu -> 0 it is one pass of the denoiser on y,
    with a large mu the denoiser applied ``iterations`` times; in between, the data step's
    exact average; and it runs the trained BF-DnCNN's checkpoint (Method.prior)."""
    from recon_restore import methods
    from recon_restore.restorers.pnp import pnp_hqs

    y = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    d = lambda v: 0.5 * v + 0.1  # noqa: E731  a contraction with a fixed point 0.2
    assert torch.allclose(pnp_hqs(d, y, 1e-12, 5), d(y))
    assert torch.allclose(pnp_hqs(d, y, 1e12, 3), d(d(d(y))))
    z1 = d(y)
    assert torch.allclose(pnp_hqs(d, y, 2.0, 2), d((y + 2.0 * z1) / 3.0))
    assert methods.checkpoint_of("pnp") == "bfdncnn" and methods.checkpoint_of("bfdncnn") == "bfdncnn"
    assert methods.checkpoint_of("tv") is None and "pnp" not in methods.TRAINED


def test_the_conditioning_scaling_is_c_in_or_nothing():
    """cond_scaling c_in multiplies the conditioning image by c_in = 1 / sqrt(sigma^2 + s_d^2):
    the same network agrees with the unscaled one exactly where c_in = 1, and not elsewhere."""
    from recon_restore.restorers.edm import EDMPrecond

    net = dict(in_channels=6, out_channels=3, resolution=8, model_channels=8, channel_mult=[1], num_blocks=1,
               attn_resolutions=[], dropout=0.0, augment_dim=0, channel_mult_emb=2, channel_mult_noise=1)
    torch.manual_seed(0)
    a = EDMPrecond(net).double().eval()
    b = EDMPrecond(net, cond_scaling="c_in").double().eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.05 * torch.randn_like(p))
        b.load_state_dict(a.state_dict())
        x, c = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.rand(2, 3, 8, 8, dtype=torch.float64) * 2 - 1
        one = torch.tensor(0.75, dtype=torch.float64).sqrt()  # c_in = 1 here
        assert torch.allclose(a(x, one, c), b(x, one, c), atol=1e-12)
        assert not torch.allclose(a(x, torch.tensor(5.0, dtype=torch.float64), c), b(x, torch.tensor(5.0, dtype=torch.float64), c))
    with pytest.raises(ValueError, match="cond_scaling"):
        EDMPrecond(net, cond_scaling="half")


def test_user_images_follow_the_checkpoints_image_spec(tmp_path):
    """A restorer trained on 1x8x8 images takes 1x8x8 (or channels-last) inputs and refuses 3x32x32."""
    from recon_restore.data.spec import ImageSpec
    from recon_restore.restorers import checkpoint

    spec = checkpoint.spec_of({"provenance": {"image_shape": [1, 8, 8]}})
    assert spec == ImageSpec(1, 8, 8)
    assert checkpoint.spec_of({"provenance": {}}, 1) == ImageSpec(1, 32, 32)  # older checkpoints: the paper's size
    np.save(tmp_path / "grey.npy", np.zeros((4, 8, 8, 1), np.uint8))
    imgs, _ = read_user_images(tmp_path / "grey.npy", spec)
    assert imgs.shape == (4, 1, 8, 8)
    np.save(tmp_path / "rgb.npy", np.zeros((4, 3, 32, 32), np.uint8))
    with pytest.raises(UserError, match=r"rgb\.npy: expected images of shape \(N, 1, 8, 8\) or \(N, 8, 8, 1\)"):
        read_user_images(tmp_path / "rgb.npy", spec)
