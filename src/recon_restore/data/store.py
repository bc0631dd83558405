"""Image sets written by the data stage: ``/images`` uint8 (N, 3, 32, 32), ``/labels``
int8 in {-1, +1} (vehicles -1, animals +1), ``/ids`` int64 (original index, e.g. the
CIFAR-10 index), ``/groups`` int64 (images of one group may share pixels, e.g. crops of
one cell of a demo photo; CIFAR-10: every image is its own group), plus provenance
attributes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .. import IMAGE_SHAPE
from ..errors import UserError
from ..io import atomic_path, open_h5, require_datasets, set_attrs


@dataclass
class ImageSet:
    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    groups: np.ndarray | None = None  # None: every image is its own group

    def __post_init__(self):
        if self.groups is None:
            self.groups = np.asarray(self.ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)


def write_image_set(path: str | Path, s: ImageSet, attrs: dict, overwrite: bool = False) -> None:
    if s.images.dtype != np.uint8 or s.images.ndim != 4 or s.images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"image set must be uint8 (N, 3, 32, 32), got {s.images.dtype} {s.images.shape}")
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=s.images, compression="gzip", shuffle=True)
            f.create_dataset("labels", data=s.labels.astype(np.int8))
            f.create_dataset("ids", data=s.ids.astype(np.int64))
            f.create_dataset("groups", data=np.asarray(s.groups, dtype=np.int64))
            set_attrs(f, dict(attrs, kind="recon-restore/image-set", count=len(s)))


def read_image_set(path: str | Path) -> ImageSet:
    with open_h5(path, "image set") as f:
        require_datasets(f, ["images", "labels", "ids"])
        s = ImageSet(f["images"][()], f["labels"][()], f["ids"][()], f["groups"][()] if "groups" in f else None)
    if s.images.shape[1:] != IMAGE_SHAPE or not np.isin(s.labels, (-1, 1)).all():
        raise UserError(f"{path}: expected images (N, 3, 32, 32) with labels in {{-1, +1}}")
    return s
