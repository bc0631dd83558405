"""Synthetic corruptions for Noise2Noise training (Lehtinen et al. 2018, section 3; papers
002 and 004).

Images are float tensors in [0, 1] of shape (B, 3, H, W). Each image draws its own
corruption strength uniformly from the params range ``[low, high]`` (a number: fixed), so
the network must estimate the noise level; the input and a noisy target are two independent
corruptions. Every corruption returns ``(noisy, valid)``: ``valid`` (B, 1, H, W) is 1 where
the pixel still carries the clean value's information, for the masked loss of Bernoulli
noise, and None when every pixel does.

* ``gaussian``: x + sigma n, n ~ N(0, 1), sigma ~ U[range] (N2N: [0, 50/255]); unclipped, so
  zero-mean.
* ``poisson``: Poisson(lambda x) / lambda, lambda ~ U[range] photons at full intensity
  (N2N: [0.001, 50]); mean x, variance x / lambda.
* ``bernoulli``: multiplicative: every pixel (all channels) is zeroed with probability p,
  p ~ U[range] (N2N: [0, 0.95]); ``valid`` marks the kept pixels.
* ``impulse``: random-valued impulse noise: every pixel is replaced with probability p
  (p ~ U[range]; N2N: [0, 0.95]) by a random colour, uniform in [0, 1]^3 (``values:
  uniform``, Lehtinen et al.) or the pixel plus Gaussian noise of std ``sigma`` (``values:
  gaussian``, paper 004).
* ``photon``: paper 004's Poisson shot noise: each image draws a photon count n from a
  negative binomial of mean ``mean`` (a number or a range, as above) and dispersion
  ``dispersion`` (variance mean + mean^2 / dispersion; paper 004: 500 and 75), then
  Poisson(n x) / n per pixel and channel. Paper 004 trains it with L1 (the median).
* ``text``: random strings in random sizes, colours and positions drawn over the image
  until a fraction p of its pixels is covered (p ~ U[range]; N2N: [0, 0.5]).
"""

from __future__ import annotations

import numpy as np
import torch

from ...methods import CORRUPTIONS

STRENGTH = {"gaussian": "sigma", "poisson": "lam", "bernoulli": "p", "impulse": "p", "photon": "mean", "text": "p"}
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def strength(spec, n: int, gen: torch.Generator) -> torch.Tensor:
    """Per-image strengths (n,) from a number or a ``[low, high]`` range."""
    lo, hi = (spec, spec) if isinstance(spec, (int, float)) else spec
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=gen.device, dtype=torch.float64)


def corrupt(x: torch.Tensor, kind: str, cfg: dict, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One independent corruption of every image of ``x`` (``cfg``: the kind's params section)."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {', '.join(CORRUPTIONS)}")
    s = strength(cfg[STRENGTH[kind]], x.shape[0], gen).to(x.dtype).view(-1, 1, 1, 1)
    pixel = lambda: torch.rand((x.shape[0], 1, *x.shape[2:]), generator=gen, device=x.device, dtype=x.dtype)  # noqa: E731
    if kind == "gaussian":
        return x + s * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype), None
    if kind == "poisson":
        lam = s.clamp_min(1e-6)
        return torch.poisson(x.clamp_min(0) * lam, generator=gen) / lam, None
    if kind == "photon":
        n = photon_counts(s.flatten(), cfg["dispersion"], gen).to(x.dtype).clamp_min(1).view(-1, 1, 1, 1)
        return torch.poisson(x.clamp_min(0) * n, generator=gen) / n, None
    if kind == "bernoulli":
        keep = (pixel() >= s).to(x.dtype)
        return x * keep, keep
    if kind == "impulse":
        hit = pixel() < s
        if cfg.get("values", "uniform") == "uniform":
            value = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        else:
            value = x + cfg["sigma"] * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return torch.where(hit, value, x), None
    return _text(x, s.flatten(), gen), None


def photon_counts(mean: torch.Tensor, dispersion: float, gen: torch.Generator) -> torch.Tensor:
    """Negative-binomial photon counts (n,) of the given means, as a gamma-Poisson mixture:
    rate ~ Gamma(dispersion, mean / dispersion), count ~ Poisson(rate)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device))
    rng = np.random.default_rng(seed)
    m = mean.detach().cpu().numpy().astype(np.float64)
    return torch.from_numpy(rng.poisson(rng.gamma(dispersion, m / dispersion))).to(mean.device)


def _text(x: torch.Tensor, coverage: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Draw random strings over each image until ``coverage`` of its pixels is covered."""
    from PIL import Image, ImageDraw, ImageFont

    seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device))
    rng = np.random.default_rng(seed)
    h, w = x.shape[-2:]
    out = x.detach().cpu().numpy().copy()
    fonts = {}
    for i, p in enumerate(coverage.tolist()):
        covered = np.zeros((h, w), dtype=bool)
        while covered.mean() < p:
            size = int(rng.integers(6, 15))
            font = fonts.setdefault(size, ImageFont.load_default(size=size))
            mask = Image.new("L", (w, h), 0)
            text = "".join(rng.choice(list(ALPHABET), size=int(rng.integers(1, 8))))
            ImageDraw.Draw(mask).text((int(rng.integers(-w // 2, w)), int(rng.integers(-size // 2, h))), text, fill=255, font=font)
            m = np.asarray(mask) >= 128
            out[i][:, m] = rng.random(3)[:, None]
            covered |= m
    return torch.from_numpy(out).to(x.device, x.dtype)
