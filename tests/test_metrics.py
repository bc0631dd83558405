import numpy as np
import piq
import pytest
import torch

from recon_restore.metrics import best_matches, haarpsi, postprocess, ssim, ssim_matrix


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(13, 3, 32, 32, generator=g, dtype=torch.float64)
    b = (0.6 * a[:5] + 0.4 * torch.rand(5, 3, 32, 32, generator=g, dtype=torch.float64)).clamp(0, 1)
    return a, b


def test_wang_variant_equals_piq(images):
    a, b = images
    ours = ssim(a[:5], b, "wang")
    ref = piq.ssim(a[:5], b, data_range=1.0, reduction="none")
    assert torch.allclose(ours, ref, atol=1e-10)


def test_haim_variant_definition(images):
    """3x3 gaussian (sigma 1.5), reflect padding, C1 = 1e-4, C2 = 9e-4, mean over C, H, W."""
    a, b = images
    x, y = a[0].numpy(), b[0].numpy()
    g1 = np.exp(-(np.arange(3) - 1.0) ** 2 / (2 * 1.5**2))
    g1 /= g1.sum()
    w = np.outer(g1, g1)

    def filt(img):
        p = np.pad(img, ((0, 0), (1, 1), (1, 1)), mode="reflect")
        return sum(w[i, j] * p[:, i : i + 32, j : j + 32] for i in range(3) for j in range(3))

    mx, my = filt(x), filt(y)
    vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
    ref = ((2 * mx * my + 1e-4) * (2 * cxy + 9e-4) / ((mx**2 + my**2 + 1e-4) * (vx + vy + 9e-4) + 1e-12)).mean()
    assert float(ssim(a[:1], b[:1], "haim")) == pytest.approx(ref, abs=1e-12)
    assert float(ssim(a[:1], a[:1], "haim")) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("variant", ["haim", "wang"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ssim_matrix_equals_per_pair(images, variant, dtype):
    a, b = (t.to(dtype) for t in images)
    m = ssim_matrix(a, b, variant, chunk=4)
    direct = torch.stack([ssim(a, b[j : j + 1].expand_as(a), variant) for j in range(b.shape[0])], 1)
    assert m.shape == (13, 5)
    assert (m - direct).abs().max() < 1e-5


def test_best_matches_reductions(images):
    a, b = images
    m = ssim_matrix(a, b)
    bm = best_matches(a, b, chunk=3)
    assert torch.equal(bm.target_arg, m.argmax(0))
    assert torch.allclose(bm.target_best, m.max(0).values)
    top = m.topk(2, dim=1)
    assert torch.allclose(bm.cand_best, top.values[:, 0]) and torch.allclose(bm.cand_second, top.values[:, 1])
    assert torch.equal(bm.cand_arg, top.indices[:, 0])


def test_ssim_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="unknown SSIM variant"):
        ssim(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), "kornia")


def test_haarpsi_identity_and_order(images):
    a, b = images
    assert torch.allclose(haarpsi(a[:3], a[:3]), torch.ones(3, dtype=a.dtype), atol=1e-6)
    noisy = (a[:3] + 0.2 * torch.randn_like(a[:3])).clamp(0, 1)
    assert (haarpsi(a[:3], noisy) < 0.99).all()


def test_postprocess_uses_the_largest_scale_within_range():
    g = torch.Generator().manual_seed(1)
    mean = torch.rand(3, 32, 32, generator=g, dtype=torch.float64) * 0.6 + 0.2
    x = torch.randn(4, 3, 32, 32, generator=g, dtype=torch.float64) * 1e-3
    out = postprocess(x, mean)
    assert out.min() >= 0 and out.max() <= 1
    # maximal: in every image some pixel sits exactly on the boundary 0 or 1
    touches = ((out <= 1e-12) | (out >= 1 - 1e-12)).flatten(1).any(1)
    assert touches.all()
    # direction preserved: out - mean is a positive multiple of x
    r = ((out - mean) * x).flatten(1).sum(1) / (x * x).flatten(1).sum(1)
    assert (r > 0).all()
    assert torch.allclose(out - mean, r.view(-1, 1, 1, 1) * x, atol=1e-9)
    # scale invariance (the paper's normalisation removes the arbitrary scale)
    assert torch.allclose(postprocess(x * 1e4, mean), out, atol=1e-9)
    # zero candidate -> mean
    assert torch.allclose(postprocess(torch.zeros(1, 3, 32, 32, dtype=torch.float64), mean)[0], mean)


def test_ssim_names_the_argument_with_the_wrong_shape():
    good = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"^x: expected a \(N, C, H, W\)"):
        ssim(torch.zeros(3, 32, 32), good)
    with pytest.raises(ValueError, match=r"^y: expected a \(N, C, H, W\)"):
        ssim(good, torch.zeros(3, 32, 32))


def test_auroc_is_the_pairwise_win_rate_with_ties_counted_half():
    from recon_restore.metrics.roc import auroc

    rng = np.random.default_rng(0)
    score = rng.integers(0, 6, 40).astype(float)  # many ties
    positive = rng.random(40) < 0.3
    p, n = score[positive], score[~positive]
    brute = ((p[:, None] > n[None]).sum() + 0.5 * (p[:, None] == n[None]).sum()) / (len(p) * len(n))
    assert auroc(score, positive) == pytest.approx(brute, abs=1e-12)
    assert auroc(np.array([3.0, 1.0, 2.0]), np.array([True, False, False])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([True, False])) == 0.0
    assert np.isnan(auroc(score, np.ones(40, bool))) and np.isnan(auroc(score, np.zeros(40, bool)))
    assert not np.isnan(auroc(np.array([1.0, 2.0, 0.5]), np.array([True, False, False])))


def test_ssim_matrix_is_the_pairwise_ssim_exactly_even_on_flat_images_and_names_bad_input():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 3, 32, 32, generator=g, dtype=torch.float64)
    b = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    a[0], b[1] = 0.25, 0.75  # flat images: the denominator is only the constants (Haim's eps matters)
    for variant in ("haim", "wang"):
        m = ssim_matrix(a, b, variant)
        ref = torch.stack([ssim(a[i : i + 1].expand(2, -1, -1, -1), b, variant) for i in range(3)])
        assert torch.allclose(m, ref, rtol=1e-12, atol=1e-14), variant
    with pytest.raises(ValueError, match=r"^a: expected a \(N, C, H, W\) tensor, got shape \(3, 32, 32\)"):
        ssim_matrix(a[0], b)
    with pytest.raises(ValueError, match=r"^b: expected a \(N, C, H, W\) tensor, got shape \(3, 32, 32\)"):
        ssim_matrix(a, b[0])
    with pytest.raises(ValueError, match=r"image shapes differ: \(3, 32, 32\) vs \(3, 16, 16\)"):
        ssim_matrix(a, b[:, :, :16, :16])
