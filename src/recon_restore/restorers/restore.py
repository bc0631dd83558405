"""Applying restorers to reconstructions (paper section 5.1.1, methods 3 to 5).

* ``edm``: condition the diffusion model on each reconstruction and sample with the Heun
  sampler; ``single`` is the first of the k samples, ``averaged`` the mean of all k (k = 20
  in the paper), and ``std`` the per-image mean of the per-pixel standard deviation across
  the k samples: a hallucination indicator (high where samples disagree, paper Figure 4).
* ``bfdncnn``, the Noise2Noise U-Nets (``n2n``) and the classical denoisers:
  deterministic, one output per reconstruction.

Inputs and outputs are (N, C, H, W) float tensors in [0, 1] (the data's image spec).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..seeding import torch_generator
from .base import restore_direct  # noqa: F401  (one-pass restoration, re-exported)
from .edm import heun_sample


@dataclass
class Samples:
    single: torch.Tensor
    averaged: torch.Tensor | None = None
    std: torch.Tensor | None = None  # (N,) hallucination indicator


@torch.no_grad()
def restore_edm(model, recon: torch.Tensor, samples: int, sampler_cfg: dict, batch: int, device: torch.device,
                seed: int, dtype: torch.dtype = torch.float32, progress: bool = False, rows: np.ndarray | None = None) -> Samples:
    """``rows``: each reconstruction's identity (its row in ``plain.h5``; default 0..N-1). Sample
    k of a reconstruction is seeded by (seed, row, k), so restorations do not depend on the
    batch size or on how the reconstructions are split into shards."""
    rows = np.arange(recon.shape[0]) if rows is None else np.asarray(rows)
    model = model.to(device=device, dtype=dtype, memory_format=torch.channels_last).eval()
    n = recon.shape[0]
    single = torch.empty_like(recon, dtype=torch.float32)
    mean = torch.zeros_like(single)
    sq = torch.zeros_like(single)
    bar = tqdm(total=n * samples, desc="diffusion restore", disable=not progress, mininterval=5)
    for s in range(0, n, batch):
        cond = (recon[s : s + batch].to(device, torch.float64) * 2 - 1).contiguous(memory_format=torch.channels_last)
        acc, acc2 = 0.0, 0.0
        for k in range(samples):
            g = [torch_generator(seed, "restore", int(r), k, device=device) for r in rows[s : s + batch]]
            x = heun_sample(lambda x, sig, c: model(x, sig, c), cond, generator=g, dtype=dtype, **sampler_cfg)
            img = ((x.clamp(-1, 1) + 1) / 2).float().cpu()
            if k == 0:
                single[s : s + batch] = img
            acc = acc + img
            acc2 = acc2 + img * img
            bar.update(img.shape[0])
        m = acc / samples
        mean[s : s + batch] = m
        sq[s : s + batch] = (acc2 / samples - m * m).clamp_min(0)
    bar.close()
    std = sq.sqrt().flatten(1).mean(1) if samples > 1 else torch.zeros(n)
    return Samples(single, mean, std)


def read_user_images(path, spec=None) -> tuple[torch.Tensor, list[str]]:
    """Reconstructions from a .npy file, a folder of PNGs or an HDF5 file (dataset 'images'
    or 'recon'), for a restorer trained on images of ``spec`` (``data.spec.ImageSpec``, its
    checkpoint's; default the paper's 3x32x32). Accepts (N, C, H, W) or (N, H, W, C) (and
    (N, H, W) for one channel), uint8 or float in [0, 1].
    Anything else ends in one UserError naming the file and what was expected; a .npy
    file is never unpickled."""
    from pathlib import Path

    from ..errors import UserError

    from ..data.spec import CIFAR

    spec = spec or CIFAR
    channels = spec.channels
    p = Path(path)
    names: list[str] = []
    if p.is_dir():
        files = sorted(p.glob("*.png"))
        if not files:
            raise UserError(f"{p}: folder holds no .png files")
        imgs = [_read_png(f, channels) for f in files]
        shapes = {im.shape for im in imgs}
        if len(shapes) > 1:
            i = next(i for i, im in enumerate(imgs) if im.shape != imgs[0].shape)
            raise UserError(f"{files[i]}: image of shape {imgs[i].shape} differs from {files[0].name}'s {imgs[0].shape}; "
                            "expected images of one size")
        arr = np.stack(imgs)
        names = [f.name for f in files]
    elif p.suffix == ".npy":
        if not p.is_file():
            raise UserError(f"{p}: input file does not exist")
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as e:  # object arrays need pickle: refused
            raise UserError(f"{p}: not a numeric .npy array ({e}); expected uint8 or float images") from None
        except (OSError, EOFError) as e:
            raise UserError(f"{p}: unreadable or truncated .npy file ({e})") from None
    elif p.suffix in (".h5", ".hdf5"):
        from ..io import open_h5

        with open_h5(p, "input file") as f:
            key = next((k for k in ("images", "recon", "plain") if k in f), None)
            if key is None:
                raise UserError(f"{p}: expected an HDF5 dataset named 'images', 'recon' or 'plain'; found {sorted(f.keys())}")
            arr = f[key][()]
    else:
        raise UserError(f"{p}: unsupported input; expected a .npy file, a folder of .png files or an .h5 file")
    return _validate(arr, p, spec), names


def _read_png(f, channels: int = 3) -> np.ndarray:
    from skimage.io import imread

    from ..errors import UserError

    try:
        img = imread(f)
    except Exception as e:  # PIL raises several types for corrupt files
        raise UserError(f"{f}: unreadable PNG file ({type(e).__name__}: {e})") from None
    return _channels(img, f, channels)


def _channels(img: np.ndarray, f, channels: int) -> np.ndarray:
    """(H, W, channels): grey repeated to RGB; RGB(A) to grey by the ITU-R 601 weights."""
    from ..errors import UserError

    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise UserError(f"{f}: expected a grey or RGB image, got shape {img.shape}")
    if channels == 3:
        return np.repeat(img[..., :1], 3, 2) if img.shape[2] < 3 else img[..., :3]
    if img.shape[2] < 3:
        return img[..., :1]
    grey = img[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.round(grey), 0, 255).astype(img.dtype)[..., None]


def _validate(arr: np.ndarray, p, spec) -> torch.Tensor:
    from ..errors import UserError

    if not isinstance(arr, np.ndarray) or arr.dtype == object:
        raise UserError(f"{p}: expected a numeric image array, got {getattr(arr, 'dtype', type(arr).__name__)}")
    c, h, w = spec.shape
    if arr.ndim == 3 and c == 1:
        arr = arr[:, None]
    want = f"(N, {c}, {h}, {w}) or (N, {h}, {w}, {c})"
    if arr.ndim == 4 and arr.shape[1:] == (h, w, c) and arr.shape[1:] != spec.shape:
        arr = arr.transpose(0, 3, 1, 2)
    if arr.ndim != 4 or arr.shape[1:] != spec.shape:
        raise UserError(f"{p}: expected images of shape {want} (the images the restorer was trained on), got {arr.shape}")
    if arr.shape[0] == 0:
        raise UserError(f"{p}: holds no images (shape {arr.shape}); expected at least one")
    if arr.dtype == np.uint8:
        return torch.from_numpy(arr.astype(np.float32) / 255)
    if not np.issubdtype(arr.dtype, np.floating):
        raise UserError(f"{p}: expected uint8 or float pixels, got {arr.dtype}")
    nan = int(np.isnan(arr).sum())
    if nan:
        raise UserError(f"{p}: {nan} pixels are NaN; expected finite float pixels in [0, 1]")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
        raise UserError(
            f"{p}: float pixels must be finite and in [0, 1] (got min {arr.min():.4g}, max {arr.max():.4g}); "
            "postprocess reconstructions first (add the training mean, scale into [0, 1])"
        )
    return torch.from_numpy(arr.astype(np.float32))
