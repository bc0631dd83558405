"""Classical denoisers as restorers, with blind parameters (the baselines of paper 003 in
``../shared/papers``; paper 000 itself compares against no classical denoiser).

* ``tv``: total variation (Rudin, Osher and Fatemi 1992; Chambolle's algorithm, scikit-image).
* ``heat``: the heat equation run for time t, i.e. Gaussian smoothing with sigma = sqrt(2 t).
* ``tikhonov``: Tikhonov regularisation (paper 003's variational start): the minimiser of
  ||u - y||^2 + lambda ||grad u||^2 with zero-flux borders, solved exactly per channel in the
  cosine basis (DCT-II): u_hat(k, l) = y_hat(k, l) / (1 + lambda (4 sin^2(pi k / 2H) + 4 sin^2(pi l / 2W))).
* ``perona_malik``: anisotropic diffusion (Perona and Malik 1990), conductance
  exp(-(|grad I| / kappa)^2) from the colour-summed squared differences (one conductance for
  the three channels), explicit 4-neighbour scheme, zero flux at the border.
* ``nlmeans``: non-local means (Buades et al. 2005; scikit-image's fast mode).
* ``wavelet``: wavelet shrinkage with BayesShrink thresholds (Chang et al. 2000; scikit-image).
* ``bm3d``: block matching and 3-D filtering (Dabov et al. 2007), the optional ``bm3d``
  package (non-commercial licence: an extra, never vendored), sigma = the noise estimate;
  about 1 s per 32x32 image.

Parameters are chosen blind: nothing here ever sees a clean image. BayesShrink estimates
the noise itself; kappa (Perona-Malik) and h (NL-means) are multiples of each image's noise
estimate (Donoho's wavelet MAD, ``skimage.restoration.estimate_sigma``); the multiple, TV's
weight and the heat equation's sigma are chosen from a grid by J-invariant calibration
(Batson and Royer 2019, Noise2Self): the self-supervised loss of the J-invariant version of
the denoiser, summed over a seeded subset of the reconstructions themselves. A single
number in params fixes the parameter instead of calibrating it.

J-invariance needs noise independent across the partition's sets. The reconstructions'
noise is spatially correlated, so single-pixel masks (``block: 1``, scikit-image's
``denoise_invariant`` with ``stride``) let the denoiser see a masked pixel's noise in its
neighbours and reward too little smoothing. ``block: b`` masks b x b blocks on a grid of
period ``stride`` (a multiple of b; (stride / b)^2 masks cover every pixel once), infilled
by a normalised Gaussian average of the unmasked pixels (sigma b), and scores the denoiser
on the masked pixels only (choice: block masks, as for correlated noise in Noise2Self's
section 5). The chosen value's place in its grid is recorded (``position``): a choice on an
edge means the grid should be extended, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .base import Restored, Restorer


def tv(img: np.ndarray, *, weight: float, noise: float, channel_axis: int = -1) -> np.ndarray:
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(img, weight=weight, channel_axis=channel_axis)


def heat(img: np.ndarray, *, sigma: float, noise: float, channel_axis: int = -1) -> np.ndarray:
    from skimage.filters import gaussian

    return gaussian(img, sigma=sigma, mode="reflect", channel_axis=channel_axis, preserve_range=True)


def tikhonov(img: np.ndarray, *, weight: float, noise: float, channel_axis: int = -1) -> np.ndarray:
    """Tikhonov regularisation with weight lambda = ``weight`` (Neumann borders, exact)."""
    from scipy.fft import dctn, idctn

    u = img[..., None] if channel_axis is None else np.moveaxis(img, channel_axis, -1)
    h, w = u.shape[:2]
    lap = (4 * np.sin(np.pi * np.arange(h) / (2 * h)) ** 2)[:, None] + (4 * np.sin(np.pi * np.arange(w) / (2 * w)) ** 2)[None, :]
    out = idctn(dctn(u, type=2, axes=(0, 1), norm="ortho") / (1 + weight * lap)[..., None], type=2, axes=(0, 1), norm="ortho")
    return out[..., 0] if channel_axis is None else np.moveaxis(out, -1, channel_axis)


def perona_malik(img: np.ndarray, *, kappa: float, noise: float, iterations: int = 10, dt: float = 0.2,
                 channel_axis: int = -1) -> np.ndarray:
    """kappa in units of the image's noise estimate; dt <= 0.25 keeps the scheme stable.
    ``channel_axis``: the colour axis (None: a single-channel image)."""
    k = kappa * max(noise, 1e-3)
    u = np.asarray(img, dtype=np.float64)
    u = u[..., None] if channel_axis is None else np.moveaxis(u, channel_axis, -1).copy()
    for _ in range(iterations):
        p = np.pad(u, ((1, 1), (1, 1), (0, 0)), mode="edge")  # zero flux across the border
        c = p[1:-1, 1:-1]
        flux = 0.0
        for d in (p[:-2, 1:-1] - c, p[2:, 1:-1] - c, p[1:-1, :-2] - c, p[1:-1, 2:] - c):
            # one conductance for all channels, from the colour-summed squared difference
            flux = flux + np.exp(-(d**2).sum(-1, keepdims=True) / k**2) * d
        u = u + dt * flux
    return u[..., 0] if channel_axis is None else np.moveaxis(u, -1, channel_axis)


def nlmeans(img: np.ndarray, *, h: float, noise: float, patch_size: int = 3, patch_distance: int = 4,
            channel_axis: int = -1) -> np.ndarray:
    """h in units of the image's noise estimate (scikit-image suggests about 0.8 in fast mode)."""
    from skimage.restoration import denoise_nl_means

    s = max(noise, 1e-3)
    return denoise_nl_means(img, h=h * s, sigma=s, patch_size=patch_size, patch_distance=patch_distance,
                            fast_mode=True, channel_axis=channel_axis)


def wavelet(img: np.ndarray, *, noise: float, wavelet: str = "db1", mode: str = "soft", channel_axis: int = -1) -> np.ndarray:
    from skimage.restoration import denoise_wavelet

    return denoise_wavelet(img, wavelet=wavelet, mode=mode, method="BayesShrink", rescale_sigma=True,
                           channel_axis=channel_axis)


def bm3d(img: np.ndarray, *, noise: float, profile: str = "np", channel_axis: int = -1) -> np.ndarray:
    import bm3d as _bm3d

    return _bm3d.bm3d_rgb(img, sigma_psd=max(noise, 1e-3), profile=profile)


@dataclass(frozen=True)
class Denoiser:
    fn: Callable[..., np.ndarray]
    param: str | None  # the parameter chosen blind (None: the method estimates its own)


DENOISERS: dict[str, Denoiser] = {
    "tv": Denoiser(tv, "weight"),
    "heat": Denoiser(heat, "sigma"),
    "tikhonov": Denoiser(tikhonov, "weight"),
    "perona_malik": Denoiser(perona_malik, "kappa"),
    "nlmeans": Denoiser(nlmeans, "h"),
    "wavelet": Denoiser(wavelet, None),
    "bm3d": Denoiser(bm3d, None),
}
SETTINGS = ("calibrate_images", "stride", "block")  # params keys of the calibration, not of the denoiser


def _keeping_channels(fn):
    """``fn`` on (H, W, C) images, its output (H, W, C) too: some of scikit-image's denoisers drop
    a channel axis of length 1 (grey images)."""
    def apply(x, **kw):
        y = fn(x, **kw)
        return y[..., None] if y.ndim == x.ndim - 1 else y

    return apply


def noise_estimate(img: np.ndarray) -> float:
    """Gaussian noise sigma of one (H, W, C) image, averaged over channels (wavelet MAD)."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(img, average_sigmas=True, channel_axis=-1))


def invariant_loss(images: np.ndarray, noise: np.ndarray, name: str, kwargs: dict, stride: int) -> float:
    """Mean self-supervised loss ||J-invariant denoise(x) - x||^2 over (n, H, W, C) images."""
    from skimage.restoration import denoise_invariant

    fn = _keeping_channels(DENOISERS[name].fn)
    return float(np.mean([
        np.mean((denoise_invariant(x, fn, stride=stride, denoiser_kwargs=dict(kwargs, noise=float(s), channel_axis=-1)) - x) ** 2)
        for x, s in zip(images, noise)
    ]))


def block_masks(h: int, w: int, block: int, stride: int) -> list[np.ndarray]:
    """(stride / block)^2 boolean (h, w) masks of block x block squares repeating every
    ``stride`` pixels; together they cover every pixel exactly once."""
    if stride % block:
        raise ValueError(f"stride {stride} is not a multiple of block {block}")
    y, x = np.arange(h)[:, None], np.arange(w)[None, :]
    return [((y - i) % stride < block) & ((x - j) % stride < block) for i in range(0, stride, block) for j in range(0, stride, block)]


def infill(img: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W, C) image with the masked pixels replaced by a Gaussian-weighted average of the
    unmasked ones (normalised convolution); unmasked pixels unchanged."""
    from scipy.ndimage import gaussian_filter

    keep = (~mask).astype(img.dtype)
    num = gaussian_filter(img * keep[..., None], sigma=(sigma, sigma, 0), mode="reflect")
    den = gaussian_filter(keep, sigma=sigma, mode="reflect")[..., None]
    return np.where(mask[..., None], num / np.maximum(den, 1e-12), img)


def block_invariant_loss(images: np.ndarray, noise: np.ndarray, name: str, kwargs: dict, block: int, stride: int) -> float:
    """Mean ||f_J(x) - x||^2 over (n, H, W, C) images, J the block masks: each masked pixel
    is predicted from the image with its block infilled, never from its own block's noise."""
    fn = _keeping_channels(DENOISERS[name].fn)
    total = 0.0
    for x, s in zip(images, noise):
        out = np.empty_like(x)
        for m in block_masks(x.shape[0], x.shape[1], block, stride):
            out[m] = fn(infill(x, m, float(block)), noise=float(s), channel_axis=-1, **kwargs)[m]
        total += float(np.mean((out - x) ** 2))
    return total / max(len(images), 1)


def grid_position(grid: list[float], value: float) -> str:
    """Where a calibrated value sits in its grid: ``inside``, ``low edge`` or ``high edge``."""
    g = sorted(float(v) for v in grid)
    if len(g) > 2 and g[0] < value < g[-1]:
        return "inside"
    return "low edge" if value <= g[0] else "high edge"


def choose(images: np.ndarray, noise: np.ndarray, name: str, cfg: dict, seed: int) -> dict:
    """The denoiser's keyword arguments, chosen from the noisy images alone, and how.

    cfg: the params section (the blind parameter as a number or a grid; fixed settings;
    ``calibrate_images``, ``stride``). Returns {"kwargs": ..., "losses": {value: loss}}.
    """
    d = DENOISERS[name]
    fixed = {k: v for k, v in cfg.items() if k not in SETTINGS and k != d.param}
    if d.param is None or not isinstance(cfg[d.param], list):
        return {"kwargs": dict(fixed, **({d.param: cfg[d.param]} if d.param else {})), "losses": {}}
    rng = np.random.default_rng(seed)
    sub = rng.choice(len(images), size=min(cfg["calibrate_images"], len(images)), replace=False)
    block = cfg.get("block", 1)
    if block > 1:
        losses = {float(v): block_invariant_loss(images[sub], noise[sub], name, dict(fixed, **{d.param: v}), block, cfg["stride"])
                  for v in cfg[d.param]}
    else:
        losses = {float(v): invariant_loss(images[sub], noise[sub], name, dict(fixed, **{d.param: v}), cfg["stride"])
                  for v in cfg[d.param]}
    best = min(losses, key=losses.get)
    return {"kwargs": dict(fixed, **{d.param: best}), "losses": losses, "param": d.param, "masks": f"block {block}, stride {cfg['stride']}",
            "position": grid_position(cfg[d.param], best)}


def restore_classical(images: torch.Tensor, name: str, cfg: dict, seed: int) -> tuple[torch.Tensor, dict]:
    """images: (N, C, H, W) in [0, 1], the plain reconstructions (no clean image anywhere).
    Returns the denoised images and the record of the blind choice (for the file's metadata)."""
    if name not in DENOISERS:
        raise ValueError(f"unknown classical restorer {name!r}; expected one of {sorted(DENOISERS)}")
    arr = images.detach().cpu().double().numpy().transpose(0, 2, 3, 1)
    noise = np.array([noise_estimate(x) for x in arr])
    chosen = choose(arr, noise, name, cfg, seed)
    fn = _keeping_channels(DENOISERS[name].fn)
    out = np.stack([fn(x, noise=float(s), channel_axis=-1, **chosen["kwargs"]) for x, s in zip(arr, noise)])
    chosen["noise_median"] = float(np.median(noise))
    if chosen.get("position", "inside") != "inside":
        import logging

        logging.getLogger(__name__).warning("%s: the calibrated %s %s is on the %s of its grid %s; extend the grid",
                                            name, chosen["param"], chosen["kwargs"][chosen["param"]], chosen["position"],
                                            sorted(cfg[chosen["param"]]))
    return torch.from_numpy(out.transpose(0, 3, 1, 2)).to(images.dtype).clamp(0, 1), chosen



class Classical(Restorer):
    """A classical denoiser of the methods list (``Method.variant``: the denoiser) as a
    restorer: CPU work, blind parameters; not sharded (the calibration reads every
    reconstruction)."""

    shardable = False

    @property
    def on_gpu(self) -> bool:
        return False

    def restore(self, images, rows, seed, batch, progress=False) -> Restored:
        import json

        from .. import methods
        from ..seeding import derive_seed

        out, chosen = restore_classical(images, methods.entry(self.name).variant, self.section,
                                        derive_seed(seed, "calibrate", self.name))
        return Restored({self.name: out}, info={"chosen": json.dumps(chosen)})


RESTORER = Classical
