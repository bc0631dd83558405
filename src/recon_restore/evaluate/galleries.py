"""Null galleries: the chance level of every count (docs/results.md: how reconstructions are counted).

A null gallery is a set of as many images as the evaluation network's training set, per
class, from the same distribution, that neither the evaluation network nor any restorer
has seen: held-out images outside the evaluated ones (CIFAR presets: ciFAIR-10 test
images outside the evaluated 500; demo: held-out crops from photo cells that no training
image comes from). Each gallery takes one image per group, like the training set. The
reconstructions are matched against each gallery exactly as against the training images;
what they "recover" there is chance. Galleries are disjoint from each other when the
held-out set is large enough, otherwise each is an independent random subset (recorded).

File ``null_galleries.h5``: ``images`` uint8 (K, M, C, H, W), ``labels`` int8 (K, M),
``ids`` int64 (K, M) (held-out ids), attrs ``disjoint`` and provenance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import h5py
import numpy as np

from ..data.store import ImageSet
from ..errors import UserError
from ..io import atomic_path, open_h5, require_datasets, set_attrs


@dataclass
class Galleries:
    images: np.ndarray  # (K, M, 3, 32, 32) uint8
    labels: np.ndarray  # (K, M)
    ids: np.ndarray  # (K, M)
    disjoint: bool

    def __len__(self) -> int:
        return self.images.shape[0]


def content_keys(images: np.ndarray) -> set[bytes]:
    """A digest of every image's pixels: equal images, whatever their ids, have equal keys."""
    return {hashlib.sha256(np.ascontiguousarray(im).tobytes()).digest() for im in images}


def build_galleries(held: ImageSet, train_ids: np.ndarray, train_images: np.ndarray, train_labels: np.ndarray,
                    pool_images: np.ndarray, k: int, seed: int, held_labels: np.ndarray | None = None) -> Galleries:
    """K galleries with the training set's class counts, one image per group, from held-out
    images that are not training images or pool images (compared by pixel content, not by
    id) and share no group with a training image. ``held_labels``: the held-out images in the
    attack's training labels (default their binary labels)."""
    labels = held.labels if held_labels is None else held_labels
    classes = [int(c) for c in np.unique(train_labels)]
    seen = content_keys(train_images) | content_keys(pool_images)
    train_groups = np.unique(held.groups[np.isin(held.ids, train_ids)])
    free = np.array([hashlib.sha256(np.ascontiguousarray(im).tobytes()).digest() not in seen for im in held.images])
    free &= ~np.isin(held.groups, train_groups)
    rng = np.random.default_rng(seed)
    per_class = {c: int((train_labels == c).sum()) for c in classes}
    members = {}
    for c in classes:
        idx = np.nonzero(free & (labels == c))[0]
        groups = np.unique(held.groups[idx])
        members[c] = [idx[held.groups[idx] == g] for g in rng.permutation(groups)]
        if len(members[c]) < per_class[c]:
            raise UserError(f"null galleries: need {per_class[c]} unseen held-out images of class {c:+d} per gallery, "
                            f"but only {len(members[c])} (of distinct groups) are left outside the evaluated images and the "
                            f"pool; raise the held-out set (data.demo.heldout_per_class) or lower evaluate.images_per_class")
    disjoint = all(len(members[c]) >= k * per_class[c] for c in classes)
    sel = []
    for g in range(k):
        parts = []
        for c in classes:
            n = per_class[c]
            chosen = range(g * n, (g + 1) * n) if disjoint else np.sort(rng.choice(len(members[c]), n, replace=False))
            parts.append([int(rng.choice(members[c][i])) for i in chosen])
        sel.append(np.concatenate(parts))
    sel = np.stack(sel)
    return Galleries(held.images[sel], labels[sel], held.ids[sel], disjoint)


def check_unseen(gal: Galleries, train_images: np.ndarray, pool_images: np.ndarray, source: str = "null galleries") -> None:
    """Raise if any gallery image is one of the training images or a pool image."""
    g = content_keys(gal.images.reshape(-1, *gal.images.shape[2:]))
    if g & content_keys(train_images):
        raise UserError(f"{source}: a gallery image is one of the evaluation network's training images")
    if g & content_keys(pool_images):
        raise UserError(f"{source}: a gallery image is in the pool the restorers were trained from")


def write_galleries(path, gal: Galleries, attrs: dict, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=gal.images, compression="gzip", shuffle=True)
            f.create_dataset("labels", data=gal.labels.astype(np.int8))
            f.create_dataset("ids", data=gal.ids.astype(np.int64))
            set_attrs(f, dict(attrs, kind="recon-restore/null-galleries", galleries=len(gal), disjoint=bool(gal.disjoint)))


def read_galleries(path) -> Galleries:
    with open_h5(path, "null galleries") as f:
        require_datasets(f, ["images", "labels", "ids"])
        gal = Galleries(f["images"][()], f["labels"][()], f["ids"][()], bool(f.attrs.get("disjoint", False)))
    if gal.images.ndim != 5 or gal.images.dtype != np.uint8:
        raise UserError(f"{path}: expected images uint8 (K, M, C, H, W), got {gal.images.dtype} {gal.images.shape}")
    return gal
