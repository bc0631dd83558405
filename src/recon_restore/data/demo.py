"""Offline demo set: 32x32 natural-image patches from photos bundled with scikit-image.

Stands in for CIFAR-10 (pool for the dataset stage) and ciFAIR-10 test (held-out images
for the evaluation) when there is no network. Two classes, y = -1 and y = +1, by source
photo. Patches are non-overlapping 32x32 tiles of each photo downscaled (anti-aliased)
to several sizes; a photo's coarse cells are assigned to the pool or to the held-out set,
so a held-out patch never shares pixels with a pool patch at any scale. Near-constant
tiles (pixel std below ``min_std``) are dropped.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from .store import ImageSet


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


def _tiles(photo: np.ndarray, short_sides: list[int], cells: int, heldout_cells: set[tuple[int, int]], min_std: float):
    from skimage.transform import resize

    h, w = photo.shape[:2]
    out = []
    for short in short_sides:
        scale = short / min(h, w)
        hh, ww = int(round(h * scale)), int(round(w * scale))
        small = resize(photo, (hh, ww), anti_aliasing=True, preserve_range=True)
        small = np.clip(np.round(small), 0, 255).astype(np.uint8)
        for i in range(hh // 32):
            for j in range(ww // 32):
                tile = small[i * 32 : (i + 1) * 32, j * 32 : (j + 1) * 32]
                if tile.astype(np.float32).std() / 255.0 < min_std:
                    continue
                # coarse cell of the tile's centre, in original-photo coordinates
                cy = min(cells - 1, int((i * 32 + 16) / hh * cells))
                cx = min(cells - 1, int((j * 32 + 16) / ww * cells))
                out.append((tile.transpose(2, 0, 1), (cy, cx) in heldout_cells))
    return out


def make_demo_sets(cfg: dict, seed: int) -> tuple[ImageSet, ImageSet]:
    """Build the (pool, held-out) patch sets described by params ``data.demo``."""
    rng = np.random.default_rng(seed)
    cells = int(cfg["cells"])
    all_tiles, all_labels, all_held = [], [], []
    for label, names in ((-1, cfg["negative"]), (1, cfg["positive"])):
        for name in names:
            photo = load_photo(name)
            grid = [(a, b) for a in range(cells) for b in range(cells)]
            k = max(1, int(round(cfg["heldout_fraction"] * len(grid))))
            held = {grid[t] for t in rng.choice(len(grid), size=k, replace=False)}
            for tile, is_held in _tiles(photo, cfg["short_sides"], cells, held, cfg["min_std"]):
                all_tiles.append(tile)
                all_labels.append(label)
                all_held.append(is_held)
    tiles = np.stack(all_tiles)
    labels = np.asarray(all_labels, dtype=np.int8)
    held = np.asarray(all_held)
    ids = np.arange(len(tiles), dtype=np.int64)

    def pick(mask: np.ndarray, per_class: int, what: str) -> ImageSet:
        chosen = []
        for label in (-1, 1):
            idx = ids[mask & (labels == label)]
            if len(idx) < per_class:
                raise UserError(
                    f"params: data.demo.{what}: asked for {per_class} patches per class but only "
                    f"{len(idx)} are available for class {label:+d}; lower it or add photos"
                )
            chosen.append(np.sort(rng.choice(idx, size=per_class, replace=False)))
        sel = np.concatenate(chosen)
        return ImageSet(tiles[sel], labels[sel], sel)

    return pick(~held, int(cfg["pool_per_class"]), "pool_per_class"), pick(
        held, int(cfg["heldout_per_class"]), "heldout_per_class"
    )
