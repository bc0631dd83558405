"""Offline demo set: 32x32 images cut from photos bundled with scikit-image.

Stands in for CIFAR-10 (the pool for the dataset stage) and ciFAIR-10 test (held-out
images: the evaluation network's training set and the null galleries) when there is no
network. Two classes, y = -1 and y = +1, by source photo.

How the images are made, so that the demo measures the attack and not chance:

* **Cells.** Each photo is cut into square cells, ``cells`` along its short side. Each
  cell belongs either to the pool or to the held-out set, so a held-out image never
  shares a pixel with a pool image.
* **Object-scale crops.** An image is a square crop of a cell, its side a random
  fraction in [``crop_min``, 1] of the cell's side, resized to 32x32 with
  anti-aliasing (a part of a photo the way a CIFAR-10 image is a photo of an object).
  Pool cells give ``pool_crops_per_cell`` crops each, held-out cells
  ``heldout_crops_per_cell``. Crops of one cell overlap, so each cell is a *group*: the
  evaluation network trains on at most one image per group, and the null galleries
  take no image from a group it trained on (``ImageSet.groups``).
* **Content rule.** Flat images (sky, dark backgrounds) make chance matches: SSIM is
  high between any two nearly flat images. An image is kept only if its mean absolute
  gradient is at least ``min_gradient`` and the fraction of its 3x3 windows with a
  standard deviation below 0.03 is at most ``max_flat`` (on [0, 1] grey values;
  CIFAR-10's test images: 10th percentile of the gradient 0.035, 75th percentile of the
  flat fraction 0.43).
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .spec import CIFAR
from .store import ImageSet

FLAT_STD = 0.03  # a 3x3 window with a smaller standard deviation counts as flat


def load_photo(name: str) -> np.ndarray:
    """A bundled scikit-image photo as (H, W, 3) uint8 (grayscale is replicated)."""
    import skimage.data

    fn = getattr(skimage.data, name, None)
    if fn is None or name.startswith("_"):
        raise UserError(f"params: data.demo: unknown scikit-image photo {name!r}")
    try:
        img = fn()
    except Exception as e:  # pooch-only images fail offline
        raise UserError(f"params: data.demo: scikit-image photo {name!r} is not bundled offline ({e})") from None
    if isinstance(img, tuple):
        img = img[0]
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.dtype != np.uint8:
        img = np.clip(img * (255 if img.max() <= 1 else 1), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] < 3:
        raise UserError(f"params: data.demo: photo {name!r} has unsupported shape {img.shape}")
    return img[..., :3]


def content_scores(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean absolute gradient and flat-window fraction of (N, C, H, W) uint8 images (grey values in [0, 1])."""
    g = images.astype(np.float64).mean(1) / 255  # (N, H, W)
    grad = (np.abs(np.diff(g, axis=2)).mean((1, 2)) + np.abs(np.diff(g, axis=1)).mean((1, 2))) / 2
    win = np.lib.stride_tricks.sliding_window_view(g, (3, 3), axis=(1, 2))  # (N, H-2, W-2, 3, 3)
    flat = (win.std(axis=(-1, -2)) < FLAT_STD).mean((1, 2))
    return grad, flat


def content_ok(images: np.ndarray, min_gradient: float, max_flat: float) -> np.ndarray:
    grad, flat = content_scores(images)
    return (grad >= min_gradient) & (flat <= max_flat)


def _crop(photo: np.ndarray, y: int, x: int, side: int) -> np.ndarray:
    from skimage.transform import resize

    c = photo[y : y + side, x : x + side]
    small = resize(c, (CIFAR.height, CIFAR.width), anti_aliasing=side > CIFAR.height, preserve_range=True)
    return np.clip(np.round(small), 0, 255).astype(np.uint8).transpose(2, 0, 1)


def _photo_crops(photo: np.ndarray, cfg: dict, rng: np.random.Generator) -> list[tuple[np.ndarray, bool, int]]:
    """(image, held_out, cell) for every crop of one photo."""
    h, w = photo.shape[:2]
    side = min(h, w) // int(cfg["cells"])
    if side < 16:
        raise UserError(f"params: data.demo.cells = {cfg['cells']}: cells of a {h}x{w} photo would be under 16 pixels")
    cells = [(i * side, j * side) for i in range(h // side) for j in range(w // side)]
    n_held = max(1, int(round(cfg["heldout_fraction"] * len(cells))))
    held = set(rng.choice(len(cells), size=n_held, replace=False).tolist())
    out = []
    for c, (cy, cx) in enumerate(cells):
        for _ in range(int(cfg["heldout_crops_per_cell" if c in held else "pool_crops_per_cell"])):
            s = int(rng.integers(int(np.ceil(cfg["crop_min"] * side)), side + 1))
            y, x = cy + int(rng.integers(0, side - s + 1)), cx + int(rng.integers(0, side - s + 1))
            out.append((_crop(photo, y, x, s), c in held, c))
    return out


CLASS_NAMES = ["negative", "positive"]  # the photos of params data.demo.negative / .positive


def hash_group(label: int, photo: int, cell: int) -> int:
    """One group id per (class, photo, cell)."""
    return ((label + 1) // 2) * 10**8 + photo * 10**5 + cell


def make_demo_sets(cfg: dict, seed: int) -> tuple[ImageSet, ImageSet]:
    """Build the (pool, held-out) image sets described by params ``data.demo``."""
    rng = np.random.default_rng(seed)
    all_imgs, all_labels, all_held, all_groups = [], [], [], []
    for label, names in ((-1, cfg["negative"]), (1, cfg["positive"])):
        for p, name in enumerate(names):
            for img, is_held, cell in _photo_crops(load_photo(name), cfg, rng):
                all_imgs.append(img)
                all_labels.append(label)
                all_held.append(is_held)
                all_groups.append(hash_group(label, p, cell))
    imgs = np.stack(all_imgs)
    labels = np.asarray(all_labels, dtype=np.int8)
    held = np.asarray(all_held)
    groups = np.asarray(all_groups, dtype=np.int64)
    ok = content_ok(imgs, cfg["min_gradient"], cfg["max_flat"])
    ids = np.arange(len(imgs), dtype=np.int64)

    def pick(mask: np.ndarray, per_class: int, what: str) -> ImageSet:
        chosen = []
        for label in (-1, 1):
            idx = ids[mask & ok & (labels == label)]
            if len(idx) < per_class:
                raise UserError(
                    f"params: data.demo.{what}: asked for {per_class} images per class but only {len(idx)} of class "
                    f"{label:+d} pass the content rule; lower it, add photos or raise data.demo.cells"
                )
            chosen.append(rng.choice(idx, size=per_class, replace=False))  # random order: 'first' is a random sample
        sel = np.concatenate(chosen)
        return ImageSet(imgs[sel], labels[sel], sel, groups[sel], (labels[sel] > 0).astype(np.int64), CLASS_NAMES)

    return pick(~held, int(cfg["pool_per_class"]), "pool_per_class"), pick(held, int(cfg["heldout_per_class"]), "heldout_per_class")


class _Demo:
    """The offline demo source (``data.demo``); its classes are the two photo lists."""

    name = "demo"
    pool_kind, heldout_kind = "demo pool", "demo held-out"

    def spec(self, cfg: dict):
        return CIFAR

    def inputs(self, data_cfg: dict) -> list[str]:
        return []

    def num_classes(self, data_cfg: dict) -> int:
        return len(CLASS_NAMES)

    def load(self, data_cfg: dict, seed: int) -> tuple[ImageSet, ImageSet]:
        from ..seeding import derive_seed

        return make_demo_sets(data_cfg["demo"], derive_seed(seed, "demo-data"))


SOURCE = _Demo()
