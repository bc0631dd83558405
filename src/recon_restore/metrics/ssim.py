"""SSIM, per pair and all pairs (paper section 2 "identifying image pairs", section 5.1.1).

Definitions (docs/metrics.md):

* ``haim``: Haim et al.'s kornia 0.6.8 SSIM: 3x3 gaussian window with sigma 1.5, reflect
  "same" padding, C1 = 0.01^2, C2 = 0.03^2, eps 1e-12 in the denominator, per channel,
  averaged over C, H, W. The paper's "good reconstruction" threshold 0.4 refers to it.
* ``wang``: Wang et al. 2004 as in piq.ssim: 11x11 gaussian (sigma 1.5), valid window,
  population covariance, same constants, averaged over C and the 22x22 valid positions.

All-pairs SSIM: only the cross term sigma_xy needs per-pair work. With patches centred on
their own local mean and weighted by sqrt(g), sigma_xy is an inner product, so the N x M
matrix for every (channel, position) is one batched GEMM; the epilogue combines it with
the per-image means and variances (one GEMM per channel and window position over centred patches).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

C1 = 0.01**2
C2 = 0.03**2
EPS = 1e-12


@dataclass(frozen=True)
class Variant:
    size: int
    sigma: float
    same_padding: bool  # True: reflect "same" padding; False: valid window


SSIM_VARIANTS = {"haim": Variant(3, 1.5, True), "wang": Variant(11, 1.5, False)}


def _variant(name: str) -> Variant:
    try:
        return SSIM_VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown SSIM variant {name!r}; expected one of {sorted(SSIM_VARIANTS)}") from None


def gaussian_1d(size: int, sigma: float, dtype=torch.float64) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _check(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a (N, C, H, W) tensor, got shape {tuple(x.shape)}")


def _filter(x: torch.Tensor, v: Variant) -> torch.Tensor:
    """Depthwise separable gaussian filter, reflect-padded ('same') or valid."""
    c = x.shape[1]
    g = gaussian_1d(v.size, v.sigma, x.dtype).to(x.device)
    if v.same_padding:
        r = v.size // 2
        x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, g.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.conv2d(x, g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x


def ssim(x: torch.Tensor, y: torch.Tensor, variant: str = "haim") -> torch.Tensor:
    """SSIM of each pair (x[i], y[i]); inputs (N, C, H, W) in [0, 1]. Returns (N,)."""
    _check(x, "x")
    _check(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"ssim: shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    v = _variant(variant)
    mx, my = _filter(x, v), _filter(y, v)
    sxx = _filter(x * x, v) - mx * mx
    syy = _filter(y * y, v) - my * my
    sxy = _filter(x * y, v) - mx * my
    num = (2 * mx * my + C1) * (2 * sxy + C2)
    den = (mx * mx + my * my + C1) * (sxx + syy + C2)
    if variant == "haim":
        den = den + EPS
    return (num / den).flatten(1).mean(1)


def _patches(x: torch.Tensor, v: Variant):
    """Centred, sqrt(g)-weighted patches (C*P, N, K) plus local means and variances (N, C*P)."""
    n, c, h, w = x.shape
    if v.same_padding:
        r = v.size // 2
        x = F.pad(x, (r, r, r, r), mode="reflect")
    g1 = gaussian_1d(v.size, v.sigma, x.dtype).to(x.device)
    g2 = torch.outer(g1, g1).flatten()  # (K,)
    cols = F.unfold(x, v.size)  # (N, C*K, P)
    k = v.size * v.size
    cols = cols.view(n, c, k, -1)  # (N, C, K, P)
    mu = torch.einsum("nckp,k->ncp", cols, g2)
    cen = cols - mu.unsqueeze(2)
    var = torch.einsum("nckp,k->ncp", cen * cen, g2)
    a = cen * g2.sqrt().view(1, 1, k, 1)
    a = a.permute(1, 3, 0, 2).reshape(c * a.shape[-1], n, k)  # (C*P, N, K)
    return a, mu.reshape(n, -1), var.reshape(n, -1)


class _Side:
    """Precomputed patches and statistics of one image set."""

    def __init__(self, x: torch.Tensor, v: Variant):
        self.a, self.mu, self.var = _patches(x, v)


def _pair_block(xs: _Side, ys: _Side, haim: bool) -> torch.Tensor:
    """SSIM matrix (n, M) of a block of left images against all right images.

    The epilogue works in place on the (C*P, n, M) covariance block to keep memory
    traffic to a few passes: num = (2 mx my + C1)(2 cov + C2), den = (mx^2 + my^2 + C1)(vx + vy + C2).
    """
    mx = xs.mu.t().unsqueeze(2)  # (CP, n, 1)
    my = ys.mu.t().unsqueeze(1)  # (CP, 1, M)
    num = torch.bmm(xs.a, ys.a.transpose(1, 2))  # cov, (CP, n, M)
    num.mul_(2).add_(C2)
    num.mul_(torch.bmm(mx, my).mul_(2).add_(C1))
    den = (mx * mx + C1) + (my * my)
    den.mul_((xs.var.t().unsqueeze(2) + C2) + ys.var.t().unsqueeze(1))
    if haim:
        den.add_(EPS)
    return num.div_(den).mean(0)


def ssim_blocks(a: torch.Tensor, b: torch.Tensor, variant: str, chunk: int | None):
    _check(a, "a")
    _check(b, "b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"ssim_matrix: image shapes differ: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}")
    v = _variant(variant)
    ys = _Side(b, v)
    if chunk is None:
        # the (C*P, chunk, M) block: near 64 M elements on a GPU; on a CPU near 4 M (16 MB in
        # float32), so that the epilogue's passes stay in cache (2.5x faster than 64 M on the
        # demo's 480 x 80 matrices, same values bit for bit)
        target = 64e6 if a.device.type == "cuda" else 4e6
        chunk = max(1, int(target // max(1, ys.a.shape[0] * b.shape[0])))
    for start in range(0, a.shape[0], chunk):
        xs = _Side(a[start : start + chunk], v)
        yield start, _pair_block(xs, ys, variant == "haim")


@torch.no_grad()
def ssim_matrix(a: torch.Tensor, b: torch.Tensor, variant: str = "haim", chunk: int | None = None) -> torch.Tensor:
    """Exact SSIM of every pair (a[i], b[j]): an (N, M) matrix. Inputs in [0, 1]."""
    out = torch.empty(a.shape[0], b.shape[0], dtype=a.dtype, device=a.device)
    for start, block in ssim_blocks(a, b, variant, chunk):
        out[start : start + block.shape[0]] = block
    return out


@dataclass
class BestMatches:
    """Streaming reductions of an all-pairs SSIM matrix (never held in memory whole)."""

    target_best: torch.Tensor  # (M,) max over candidates for each target
    target_arg: torch.Tensor  # (M,) argmax candidate for each target
    cand_best: torch.Tensor  # (N,) best target score for each candidate
    cand_arg: torch.Tensor  # (N,) best target index for each candidate
    cand_second: torch.Tensor  # (N,) runner-up target score for each candidate


@torch.no_grad()
def best_matches(cands: torch.Tensor, targets: torch.Tensor, variant: str = "haim", chunk: int | None = None) -> BestMatches:
    """Best match per target (paper 5.1.1) and best/runner-up per candidate (paper 2)."""
    n, m = cands.shape[0], targets.shape[0]
    dev, dt = cands.device, cands.dtype
    t_best = torch.full((m,), -float("inf"), dtype=dt, device=dev)
    t_arg = torch.full((m,), -1, dtype=torch.long, device=dev)
    c_best = torch.empty(n, dtype=dt, device=dev)
    c_arg = torch.empty(n, dtype=torch.long, device=dev)
    c_second = torch.full((n,), -float("inf"), dtype=dt, device=dev)
    for start, block in ssim_blocks(cands, targets, variant, chunk):
        rows = slice(start, start + block.shape[0])
        k = min(2, m)
        top = block.topk(k, dim=1)
        c_best[rows], c_arg[rows] = top.values[:, 0], top.indices[:, 0]
        if k == 2:
            c_second[rows] = top.values[:, 1]
        bmax, barg = block.max(dim=0)
        better = bmax > t_best
        t_best = torch.where(better, bmax, t_best)
        t_arg = torch.where(better, barg + start, t_arg)
    return BestMatches(t_best, t_arg, c_best, c_arg, c_second)
