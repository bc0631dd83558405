"""The Noise2Noise baselines (papers 002, 004; Lehtinen et al. 2018): the U-Net of the
paper's table, the corruptions' statistics, the losses (mean, median, mode seeking), the
training streams (recon2recon never reads a clean image) and their place in the methods list."""

import numpy as np
import pytest
import torch

from recon_restore import methods
from recon_restore.restorers.n2n.corruption import corrupt
from recon_restore.restorers.n2n.data import PoolPairs, ReconPairs
from recon_restore.restorers.n2n.loss import l0_gamma, n2n_loss
from recon_restore.restorers.n2n.network import N2NUNet
from recon_restore.methods import parse


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---- the network ---------------------------------------------------------------------------


def test_unet_has_the_papers_size_and_shape():
    # Lehtinen et al.'s U-Net: 991,203 parameters for RGB in and out, 994,227 with 6 input channels
    assert sum(p.numel() for p in N2NUNet().parameters()) == 991_203
    assert sum(p.numel() for p in N2NUNet(in_channels=6).parameters()) == 994_227
    net = N2NUNet(width=8)
    x = torch.rand(2, 3, 64, 32)
    assert net(x).shape == x.shape
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.rand(1, 3, 48, 48))


def test_unet_reaches_every_level_and_ends_linear():
    torch.manual_seed(0)
    net = N2NUNet(width=8).double()
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64, requires_grad=True)
    y = net(x)
    # the 1x1 bottleneck (ENC_CONV6) sees the whole image: every output pixel depends on every input pixel
    g = torch.autograd.grad(y[0, 0, 0, 0], x)[0]
    assert (g[0].abs().sum(0) > 0).all()
    # the last convolution is linear: outputs are not clipped at zero, and scaling its weights scales them
    with torch.no_grad():
        net.dec1c.weight.mul_(50)
    assert (net(x) < 0).any()
    # He initialisation: weight std sqrt(2 / fan_in); the linear output layer: sqrt(1 / fan_in)
    big = N2NUNet(width=48)
    assert big.enc[0].weight.std().item() == pytest.approx((2 / (48 * 9)) ** 0.5, rel=0.05)
    assert big.dec1c.weight.std().item() == pytest.approx((1 / (32 * 9)) ** 0.5, rel=0.1)
    assert all(float(m.bias.detach().abs().max()) == 0 for m in big.modules() if isinstance(m, torch.nn.Conv2d))


# ---- corruptions -----------------------------------------------------------------------------


def flat(value=0.5, n=64):
    return torch.full((n, 3, 32, 32), value, dtype=torch.float64)


def test_gaussian_is_zero_mean_with_the_drawn_std():
    x = torch.rand(64, 3, 32, 32, generator=gen(1), dtype=torch.float64)
    y, valid = corrupt(x, "gaussian", {"sigma": 0.1}, gen())
    d = y - x
    assert valid is None and abs(d.mean().item()) < 2e-3 and d.std().item() == pytest.approx(0.1, rel=0.01)
    assert y.min() < 0  # unclipped, so the noise stays zero-mean at dark pixels
    # sigma ~ U[0.05, 0.25] per image: per-image stds spread over the range, E[sigma^2] = (b^3 - a^3) / (3 (b - a))
    d = corrupt(x, "gaussian", {"sigma": [0.05, 0.25]}, gen())[0] - x
    s = d.flatten(1).std(1)
    assert s.min() >= 0.045 and s.max() <= 0.255 and s.max() - s.min() > 0.15
    assert (s**2).mean().item() == pytest.approx((0.25**3 - 0.05**3) / (3 * 0.2), rel=0.15)


def test_poisson_has_mean_x_and_variance_x_over_lambda():
    for v in (0.2, 0.7):
        y, _ = corrupt(flat(v, 128), "poisson", {"lam": 20.0}, gen())
        assert y.mean().item() == pytest.approx(v, rel=0.01)
        assert y.var().item() == pytest.approx(v / 20, rel=0.03)
        assert torch.allclose(y * 20, (y * 20).round())  # photon counts over lambda


def test_photon_counts_are_negative_binomial_and_the_noise_is_poisson_around_x():
    """Paper 004's Poisson setting: photons per image ~ NB(mean 500, dispersion 75), i.e.
    variance 500 + 500^2 / 75; pixels Poisson(n x) / n, so mean x and, given n, variance x / n."""
    from recon_restore.restorers.n2n.corruption import photon_counts

    n = photon_counts(torch.full((20000,), 500.0, dtype=torch.float64), 75.0, gen(2)).double()
    assert n.mean().item() == pytest.approx(500, rel=0.02)
    assert n.var().item() == pytest.approx(500 + 500**2 / 75, rel=0.06)
    v = 0.4
    y, valid = corrupt(flat(v, 256), "photon", {"mean": 500, "dispersion": 75.0}, gen(3))
    assert valid is None and y.mean().item() == pytest.approx(v, rel=0.01)
    per_image = y.flatten(1).var(1)  # v / n_i for each image's own photon count
    assert per_image.mean().item() == pytest.approx(v * (1 / n[n > 0]).mean().item(), rel=0.1)
    assert per_image.std().item() > 0.08 * per_image.mean().item()  # CV ~0.13 from the counts; ~0.03 with one fixed count
    assert parse("n2n_photon_l1").corruption == "photon" and methods.BY_NAME["n2n_photon_l1"].trained


def test_bernoulli_zeroes_whole_pixels_with_probability_p_and_marks_them():
    x = torch.rand(64, 3, 32, 32, generator=gen(1), dtype=torch.float64) * 0.9 + 0.1
    y, valid = corrupt(x, "bernoulli", {"p": 0.3}, gen())
    zero = (y == 0).all(1, keepdim=True)
    assert (zero == (valid == 0)).all() and (y == 0).any(1, keepdim=True).eq(zero).all()  # all channels at once
    assert zero.double().mean().item() == pytest.approx(0.3, abs=0.01)
    assert torch.equal(y * valid, x * valid)  # kept pixels untouched


def test_impulse_replaces_pixels_with_probability_p_by_random_colours():
    x = flat(0.5, 128)
    y, valid = corrupt(x, "impulse", {"p": 0.4, "values": "uniform"}, gen())
    hit = (y != x).any(1)
    assert valid is None and hit.double().mean().item() == pytest.approx(0.4, abs=0.01)
    v = y.permute(0, 2, 3, 1)[hit]
    assert v.mean().item() == pytest.approx(0.5, abs=0.01) and v.var().item() == pytest.approx(1 / 12, rel=0.03)
    # paper 004's variant: Gaussian noise of std sigma on the hit pixels only
    y, _ = corrupt(x, "impulse", {"p": 0.4, "values": "gaussian", "sigma": 0.2}, gen())
    hit = (y != x).any(1)
    assert hit.double().mean().item() == pytest.approx(0.4, abs=0.01)
    assert (y - x).permute(0, 2, 3, 1)[hit].std().item() == pytest.approx(0.2, rel=0.03)


def test_text_covers_at_least_the_drawn_fraction():
    x = flat(0.5, 24)
    for p in (0.1, 0.4):
        y, _ = corrupt(x, "text", {"p": p}, gen())
        cover = (y != x).any(1).double().flatten(1).mean(1)
        assert (cover >= p - 0.01).all() and cover.mean().item() < p + 0.2
    y, _ = corrupt(x, "text", {"p": [0.0, 0.5]}, gen())
    cover = (y != x).any(1).double().flatten(1).mean(1)
    assert cover.min() < 0.15 and cover.max() > 0.3  # per-image coverage drawn from the range


@pytest.mark.parametrize("kind,cfg", [("gaussian", {"sigma": 0.1}), ("poisson", {"lam": 10.0}), ("bernoulli", {"p": 0.5}),
                                      ("impulse", {"p": 0.5, "values": "uniform"}), ("text", {"p": 0.3})])
def test_corruptions_are_seeded_and_two_draws_are_independent(kind, cfg):
    x = torch.rand(16, 3, 32, 32, generator=gen(1), dtype=torch.float64)
    assert torch.equal(corrupt(x, kind, cfg, gen(5))[0], corrupt(x, kind, cfg, gen(5))[0])
    g = gen(5)
    a, b = (corrupt(x, kind, cfg, g)[0] - x).flatten(), (corrupt(x, kind, cfg, g)[0] - x).flatten()
    assert not torch.equal(a, b)
    if kind in ("bernoulli", "impulse", "text"):  # the residual is a function of x; which pixels are hit is the noise
        a, b = (a != 0).double(), (b != 0).double()
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 0.1  # N2N needs independent input and target noise
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(x, "blur", cfg, g)


# ---- losses -----------------------------------------------------------------------------------


def test_losses_by_hand_and_the_mask():
    p = torch.tensor([0.0, 1.0, 3.0]).view(1, 1, 1, 3)
    t = torch.zeros(1, 1, 1, 3)
    assert n2n_loss(p, t, "l2").item() == pytest.approx(10 / 3)
    assert n2n_loss(p, t, "l1").item() == pytest.approx(4 / 3)
    assert n2n_loss(p, t, "l0", gamma=0.5).item() == pytest.approx((1e-8**0.5 + 1 + 3**0.5) / 3, rel=1e-6)
    valid = torch.tensor([1.0, 0.0, 1.0]).view(1, 1, 1, 3)
    assert n2n_loss(p, t, "l2", valid).item() == pytest.approx(9 / 2)  # the masked pixel is out of the sum and the count
    assert l0_gamma(0, 100) == 2.0 and l0_gamma(50, 100) == 1.0 and l0_gamma(100, 100) == 0.0
    with pytest.raises(ValueError, match="unknown loss"):
        n2n_loss(p, t, "huber")


def test_l2_seeks_the_mean_l1_the_median_annealed_l0_the_mode():
    # targets: 55% at 0.3 (the mode), the rest spread over [0.5, 1]: mean > median > mode
    g = gen(2)
    y = torch.cat([torch.full((550,), 0.3), 0.5 + 0.5 * torch.rand(450, generator=g)])
    c = torch.linspace(0, 1, 1001)
    best = lambda loss, gamma=2.0: c[torch.stack([n2n_loss(ci.expand_as(y), y, loss, gamma=gamma) for ci in c]).argmin()].item()  # noqa: E731
    assert best("l2") == pytest.approx(y.mean().item(), abs=1e-3)
    assert best("l1") == pytest.approx(y.median().item(), abs=2e-3)
    assert best("l0", gamma=0.1) == pytest.approx(0.3, abs=1e-3)


# ---- training streams ------------------------------------------------------------------------


def pool_images(n=10):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)


def test_pool_pairs_n2c_targets_are_clean_n2n_targets_a_second_corruption():
    imgs = pool_images()
    clean = torch.from_numpy(imgs).float() / 255
    n2c = next(PoolPairs(imgs, parse("n2c_gaussian_l2"), {"sigma": 0.1}, 3).batches(10))
    order = [int(np.argmin(((clean - t) ** 2).flatten(1).sum(1))) for t in n2c.target]
    assert sorted(order) == list(range(10)) and torch.equal(n2c.target, clean[order])  # one epoch: every image once
    assert (n2c.recon - n2c.target).std().item() == pytest.approx(0.1, rel=0.05)
    n2n = next(PoolPairs(imgs, parse("n2n_gaussian_l2"), {"sigma": 0.1}, 3).batches(10))
    d_in, d_t = n2n.recon - clean[order], n2n.target - clean[order]  # same order: same seed and epoch
    assert d_in.std().item() == pytest.approx(0.1, rel=0.05) and d_t.std().item() == pytest.approx(0.1, rel=0.05)
    assert abs(torch.corrcoef(torch.stack([d_in.flatten(), d_t.flatten()]))[0, 1].item()) < 0.05
    b = next(PoolPairs(imgs, parse("n2n_bernoulli_l2"), {"p": 0.5}, 3).batches(10))
    assert b.valid is not None and torch.equal((b.target == 0).all(1, keepdim=True), b.valid == 0)


def test_pool_pairs_stream_resumes_exactly():
    s = PoolPairs(pool_images(7), parse("n2n_poisson_l2"), {"lam": [1.0, 50.0]}, 11)
    it = s.batches(3)
    seq = [next(it) for _ in range(5)]  # crosses two epoch boundaries (7 images)
    again = next(s.batches(3, start=9))
    assert torch.equal(again.recon, seq[3].recon) and torch.equal(again.target, seq[3].target)


def _shard(path, groups):
    """A shard whose reconstructions carry their pair id (pixel [0, 0, 0]) and a recon mark
    ([1, 0, 0] = 7); the clean targets carry the mark 250. ``groups``: per target row, the
    (candidate, epoch) of its pairs."""
    from recon_restore.dataset.shards import ShardData, write_shard

    rows = [r for r, g in enumerate(groups) for _ in g]
    cand = [c for g in groups for c, _ in g]
    epoch = [e for g in groups for _, e in g]
    n, t = len(rows), len(groups)
    recon = np.zeros((n, 3, 32, 32), np.uint8)
    recon[:, 0, 0, 0] = np.arange(n)
    recon[:, 1, 0, 0] = 7
    image = np.full((t, 3, 32, 32), 250, np.uint8)
    z = lambda k: np.zeros(k)  # noqa: E731
    d = ShardData(
        {"recon": recon, "target_row": np.asarray(rows), "run": z(n), "epoch": np.asarray(epoch), "candidate": np.asarray(cand),
         "ssim": np.ones(n), "margin": np.ones(n)},
        {"image": image, "aug_label": np.zeros((t, 9), np.float32), "source_index": np.arange(t), "run": z(t)},
        {"run": np.array([0]), "seed": z(1), "status": z(1), "mean": np.full((1, 3, 32, 32), 0.5), "train_loss": z(1),
         "min_margin": z(1), "stationarity": z(1), "box": z(1), "lam_penalty": z(1), "pairs": np.array([n])},
    )
    write_shard(path, d, {})
    return rows, cand, epoch


@pytest.mark.parametrize("pairs", ["candidates", "any"])
def test_recon2recon_pairs_two_reconstructions_of_one_image_never_the_clean_one(tmp_path, pairs):
    # shard a: row 0 has candidates 0, 0, 1; row 1 one candidate at two snapshots; row 2 a single pair
    # shard b: row 0 a single pair (the same row index as shard a's row 0, another image)
    a = _shard(tmp_path / "a.h5", [[(0, 10), (0, 20), (1, 10)], [(3, 10), (3, 20)], [(5, 10)]])
    b = _shard(tmp_path / "b.h5", [[(0, 10)]])
    info = {(0, k): (a[0][k], a[1][k], a[2][k]) for k in range(6)} | {(1, 0): (b[0][0], b[1][0], b[2][0])}
    s = ReconPairs([tmp_path / "a.h5", tmp_path / "b.h5"], 4, pairs)
    seen = set()
    for batch in [next(s.batches(64, start=64 * k)) for k in range(4)]:
        assert (batch.recon[:, 1, 0, 0] * 255).round().eq(7).all() and (batch.target[:, 1, 0, 0] * 255).round().eq(7).all()
        for x, y in zip(batch.recon, batch.target):
            i, j = int(round(x[0, 0, 0].item() * 255)), int(round(y[0, 0, 0].item() * 255))
            seen.add((i, j))
    # pair ids are per shard; shard b's only pair (id 0) never has a partner, so ids are shard a's
    expect = {(0, 2), (1, 2), (2, 0), (2, 1)}
    if pairs == "any":
        expect |= {(0, 1), (1, 0), (3, 4), (4, 3)}
    assert seen == expect  # one image, another candidate (or snapshot), every allowed partner drawn
    for i, j in seen:
        (ri, ci, ei), (rj, cj, ej) = info[(0, i)], info[(0, j)]
        assert ri == rj and (ci != cj if pairs == "candidates" else (ci, ei) != (cj, ej))
    assert s.n_inputs == (3 if pairs == "candidates" else 5)
    again = next(s.batches(64, start=64))
    assert torch.equal(again.target, next(ReconPairs([tmp_path / "a.h5", tmp_path / "b.h5"], 4, pairs).batches(64, start=64)).target)


def test_recon2recon_without_partners_says_so(tmp_path):
    _shard(tmp_path / "a.h5", [[(0, 10), (0, 20)], [(1, 10)]])
    with pytest.raises(ValueError, match="two reconstructions from different candidates"):
        ReconPairs([tmp_path / "a.h5"], 0, "candidates")
    assert ReconPairs([tmp_path / "a.h5"], 0, "any").n_inputs == 2


# ---- the methods list and params -------------------------------------------------------------


def test_variants_enter_the_methods_list_from_params(params_doc):
    for preset in params_doc["presets"].values():
        names = methods.names(preset["restorers"])
        assert {"n2n_gaussian_l2", "n2c_gaussian_l2", "recon2recon_l2"} <= set(names)  # the minimum, everywhere
        assert names.index("bfdncnn") < names.index("n2n_gaussian_l2") < names.index("edm_single")
        assert set(methods.trained(preset["restorers"])) >= {"edm", "bfdncnn", "n2n_gaussian_l2"}
    r = {"n2n": {"evaluate": ["n2n_text_l1"]}}
    assert [m for m in methods.names(r) if m.startswith(("n2", "recon2"))] == ["n2n_text_l1"]
    assert methods.label("n2n_impulse_l0") == "N2N impulse (annealed L0)" and methods.section_of("n2c_text_l1") == "n2n"
    assert parse("n2x_gaussian_l2") is None and parse("recon2recon_l3") is None
    assert parse("n2c_poisson_l1").target == "clean"
    # params.schema.yaml spells the same names
    import re

    from recon_restore.config import schema

    pat = schema()["$defs"]["preset"]["properties"]["restorers"]["properties"]["n2n"]["properties"]["evaluate"]["items"]["pattern"]
    assert all(re.match(pat, m.name) for m in methods.VARIANTS) and len(methods.VARIANTS) == 2 * 6 * 3 + 3
    assert not any(re.match(pat, n) for n in ("edm", "n2n_gaussian", "recon2recon_l2_x", "n2c_blur_l1"))


def test_params_refuse_unknown_variants_and_reversed_ranges(tmp_path, params_doc):
    import copy

    from recon_restore.config import validate_params
    from recon_restore.errors import UserError

    doc = copy.deepcopy(params_doc)
    doc["presets"]["demo"]["restorers"]["n2n"]["evaluate"] = ["n2n_blur_l2"]
    with pytest.raises(UserError, match="evaluate"):
        validate_params(doc, "p.yaml")
    doc = copy.deepcopy(params_doc)
    doc["presets"]["demo"]["restorers"]["n2n"]["corruptions"]["gaussian"]["sigma"] = [0.3, 0.1]
    with pytest.raises(UserError, match=r"restorers\.n2n\.corruptions\.gaussian\.sigma.*low <= high"):
        validate_params(doc, "p.yaml")


def test_a_variants_rerun_trigger_ignores_the_other_variants():
    from recon_restore import methods

    def reads_params(name, cfg):
        return methods.restorer(name, cfg).reads_params()

    def needs(name):
        return methods.restorer(name, r).train_input()

    r = {"n2n": {"network": {"width": 8}, "train": {"steps": 1}, "corruptions": {"gaussian": {"sigma": 0.1}, "text": {"p": 0.2}},
                 "recon2recon": {"pairs": "any"}, "evaluate": ["n2n_gaussian_l2"]}}
    a = reads_params("n2n_gaussian_l2", r)
    r["n2n"]["evaluate"].append("n2n_text_l1")
    r["n2n"]["corruptions"]["text"]["p"] = 0.4
    assert reads_params("n2n_gaussian_l2", r) == a and a["corruption"] == {"sigma": 0.1}
    assert reads_params("recon2recon_l2", r)["recon2recon"] == {"pairs": "any"}
    r["edm"] = {}
    assert needs("n2c_text_l1") == "pool" and needs("recon2recon_l1") == "manifest" and needs("edm") == "manifest"


def test_n2c_training_learns_to_denoise(tmp_path):
    """300 steps of a small U-Net on smooth images with Gaussian noise beat the noisy input."""
    from recon_restore.restorers.recipes import train_spec
    from recon_restore.restorers.train import train

    yy, xx = np.mgrid[0:32, 0:32] / 31
    rng = np.random.default_rng(0)
    imgs = np.stack([np.stack([(a * xx + (1 - a) * yy) for a in rng.random(3)]) for _ in range(64)])
    imgs = (imgs * 255).round().astype(np.uint8)
    v = parse("n2n_gaussian_l2")
    stream = PoolPairs(imgs, v, {"sigma": 0.1}, 0)
    spec = train_spec({"steps": 300, "batch": 16, "lr": 2e-3, "precision": "fp32", "betas": [0.9, 0.99], "rampdown_fraction": 0.3,
                       "checkpoint_every": 0, "log_every": 50})
    torch.manual_seed(0)

    def loss_fn(m, b, g, step):
        return n2n_loss(m(b.recon), b.target, "l2", b.valid)

    model, hist = train(N2NUNet(width=16), loss_fn, stream, spec, torch.device("cpu"), tmp_path / "s", 0)
    clean = torch.from_numpy(imgs[:16]).float() / 255
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=gen(9))
    with torch.no_grad():
        out = model(noisy)
    assert ((out - clean) ** 2).mean() < 0.3 * ((noisy - clean) ** 2).mean()  # noisy targets only, yet it denoises (0.08 seen)
