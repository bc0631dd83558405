"""Non-leaky geometric augmentation at dataset creation (paper section 2 "image augmentation").

The EDM/ADA pipeline as configured for CIFAR-10 (Karras et al. 2022, appendix F.2; Karras et al. 2020, ADA):
overall probability p = 0.12 with per-transform multipliers xflip 1e8, yflip 1, scale 1,
rotate_frac 1, aniso 1, translate_frac 1; strengths scale_std 0.2, aniso_std 0.2 (log2
units), aniso_rotate_prob 0.5, translate_frac_std 0.125. Each clean image is augmented
before the target network is trained on it; the augmented image is the pair's target
and the 9-dimensional label below is stored with it and conditions the restorer:

    [xflip bit, yflip bit, scale w, cos(theta) - 1, sin(theta), w_a cos r, w_a sin r, t_x, t_y]

An all-zero label (with the x-flip bit 0) is the identity. Flips are applied exactly; the
continuous part (scale, rotation, anisotropy, translation) is one affine map about the
image centre, resampled with reflect padding at 2x supersampling (an anti-aliased
resampler of our own; the exact filter is not essential).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

LABEL_DIM = 9


@dataclass(frozen=True)
class AugmentConfig:
    p: float = 0.12
    xflip: float = 1e8
    yflip: float = 1.0
    scale: float = 1.0
    rotate_frac: float = 1.0
    aniso: float = 1.0
    translate_frac: float = 1.0
    scale_std: float = 0.2
    aniso_std: float = 0.2
    aniso_rotate_prob: float = 0.5
    translate_frac_std: float = 0.125

    @classmethod
    def from_params(cls, d: dict) -> "AugmentConfig":
        return cls(**d)


def sample_labels(n: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Draw n augmentation labels (n, 9), float32."""
    lab = np.zeros((n, LABEL_DIM), dtype=np.float64)
    on = lambda mult: rng.random(n) < min(1.0, mult * cfg.p)  # noqa: E731
    lab[:, 0] = on(cfg.xflip) & (rng.random(n) < 0.5)
    lab[:, 1] = on(cfg.yflip) & (rng.random(n) < 0.5)
    lab[:, 2] = np.where(on(cfg.scale), rng.standard_normal(n), 0.0)
    theta = np.where(on(cfg.rotate_frac), rng.uniform(-math.pi, math.pi, n), 0.0)
    lab[:, 3], lab[:, 4] = np.cos(theta) - 1, np.sin(theta)
    wa = np.where(on(cfg.aniso), rng.standard_normal(n), 0.0)
    r = np.where(rng.random(n) < cfg.aniso_rotate_prob, rng.uniform(-math.pi, math.pi, n), 0.0)
    lab[:, 5], lab[:, 6] = wa * np.cos(r), wa * np.sin(r)
    t = on(cfg.translate_frac)
    txy = rng.standard_normal((n, 2))
    lab[:, 7], lab[:, 8] = np.where(t, txy[:, 0], 0.0), np.where(t, txy[:, 1], 0.0)
    return lab.astype(np.float32)


def _inverse_matrix(lab: np.ndarray, cfg: AugmentConfig, size: int) -> np.ndarray:
    """3x3 inverse affine map (output pixel -> input pixel, centred coordinates) of the
    continuous part: scale, then rotate, then anisotropic scale, then translate."""
    w = float(lab[2])
    s = 2.0 ** (cfg.scale_std * w)
    theta = math.atan2(float(lab[4]), float(lab[3]) + 1.0)
    # the label stores w_a cos r, w_a sin r: w_a >= 0 and r in (-pi, pi] (atan2(0, 0) = 0)
    wa = math.hypot(float(lab[5]), float(lab[6]))
    r = math.atan2(float(lab[6]), float(lab[5]))
    tx, ty = float(lab[7]) * cfg.translate_frac_std * size, float(lab[8]) * cfg.translate_frac_std * size

    def rot(a):
        c, sn = math.cos(a), math.sin(a)
        return np.array([[c, -sn, 0], [sn, c, 0], [0, 0, 1.0]])

    def scl(sx, sy):
        return np.diag([sx, sy, 1.0])

    S = scl(s, s)
    Rm = rot(theta)
    ka = 2.0 ** (cfg.aniso_std * wa)
    A = rot(r) @ scl(ka, 1.0 / ka) @ rot(-r)
    T = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1.0]])
    forward = T @ A @ Rm @ S
    return np.linalg.inv(forward)


def apply(images: torch.Tensor, labels: np.ndarray, cfg: AugmentConfig) -> torch.Tensor:
    """Apply the transforms described by ``labels`` (n, 9) to images (n, C, H, W) in [0, 1]."""
    n, c, h, wd = images.shape
    if h != wd:
        raise ValueError(f"augmentation expects square images, got {h}x{wd}")
    out = images.clone()
    xf = torch.as_tensor(labels[:, 0] > 0.5)
    yf = torch.as_tensor(labels[:, 1] > 0.5)
    out[xf] = out[xf].flip(-1)
    out[yf] = out[yf].flip(-2)
    cont = np.abs(labels[:, 2:]).max(1) > 0
    idx = np.nonzero(cont)[0]
    if len(idx):
        mats = np.stack([_inverse_matrix(labels[i], cfg, h) for i in idx])  # (k, 3, 3)
        out[idx] = _warp(out[idx], torch.as_tensor(mats, dtype=images.dtype))
    return out.clamp(0, 1)


def _warp(x: torch.Tensor, inv: torch.Tensor, ss: int = 2) -> torch.Tensor:
    """Resample x (k, C, H, W) through inverse maps (k, 3, 3) with ss x ss supersampling."""
    k, c, h, w = x.shape
    # output sample positions (ss x ss per pixel), centred pixel coordinates
    off = (torch.arange(ss, dtype=x.dtype) + 0.5) / ss
    ys = (torch.arange(h, dtype=x.dtype).repeat_interleave(ss) + off.repeat(h)) - h / 2
    xs = (torch.arange(w, dtype=x.dtype).repeat_interleave(ss) + off.repeat(w)) - w / 2
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx, gy, torch.ones_like(gx)], -1).view(1, -1, 3)  # (1, P, 3)
    src = torch.einsum("kij,kpj->kpi", inv, pts.expand(k, -1, -1))[..., :2]
    grid = torch.stack([src[..., 0] / (w / 2), src[..., 1] / (h / 2)], -1).view(k, h * ss, w * ss, 2)
    big = F.grid_sample(x, grid, mode="bicubic", padding_mode="reflection", align_corners=False)
    return F.avg_pool2d(big, ss)
