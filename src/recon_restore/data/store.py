"""Image sets written by the data stage: ``/images`` uint8 (N, C, H, W) of the data source's
spec (``data.spec``; attributes ``channels``, ``height``, ``width``), ``/labels`` int8 in
{-1, +1} (the binary split, ``data.positive``: e.g. vehicles -1, animals +1), ``/classes``
int64 (the source's class index; attribute ``class_names``), ``/ids`` int64 (original index,
e.g. the CIFAR-10 index), ``/groups`` int64 (images of one group may share pixels, e.g. crops
of one cell of a demo photo; CIFAR-10: every image is its own group), plus provenance
attributes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import UserError
from ..io import atomic_path, open_h5, require_datasets, set_attrs
from .spec import ImageSpec


@dataclass
class ImageSet:
    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    groups: np.ndarray | None = None  # None: every image is its own group
    classes: np.ndarray | None = None  # the source's class index (None: 0 for label -1, 1 for +1)
    class_names: list[str] | None = None  # names of the class indices (None: their numbers)

    def __post_init__(self):
        if self.groups is None:
            self.groups = np.asarray(self.ids, dtype=np.int64)
        if self.classes is None:
            self.classes = (np.asarray(self.labels) > 0).astype(np.int64)
        self.classes = np.asarray(self.classes, dtype=np.int64)
        if self.class_names is None:
            self.class_names = [str(c) for c in range(int(self.classes.max(initial=-1)) + 1)]

    @property
    def spec(self) -> ImageSpec:
        return ImageSpec.of(self.images)

    def subset(self, idx) -> "ImageSet":
        return ImageSet(self.images[idx], self.labels[idx], self.ids[idx], self.groups[idx], self.classes[idx], self.class_names)

    def __len__(self) -> int:
        return len(self.labels)


def write_image_set(path: str | Path, s: ImageSet, attrs: dict, overwrite: bool = False) -> None:
    if s.images.dtype != np.uint8 or s.images.ndim != 4:
        raise ValueError(f"image set must be uint8 (N, C, H, W), got {s.images.dtype} {s.images.shape}")
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=s.images, compression="gzip", shuffle=True)
            f.create_dataset("labels", data=s.labels.astype(np.int8))
            f.create_dataset("ids", data=s.ids.astype(np.int64))
            f.create_dataset("groups", data=np.asarray(s.groups, dtype=np.int64))
            f.create_dataset("classes", data=s.classes)
            set_attrs(f, dict(attrs, kind="recon-restore/image-set", count=len(s), class_names=list(s.class_names), **s.spec.attrs()))


def read_image_set(path: str | Path, spec: ImageSpec | None = None) -> ImageSet:
    """The image set at ``path``; ``spec``: the params' image spec it must have (one clear
    error otherwise: data prepared under other params)."""
    with open_h5(path, "image set") as f:
        require_datasets(f, ["images", "labels", "ids"])
        names = f.attrs.get("class_names")
        s = ImageSet(f["images"][()], f["labels"][()], f["ids"][()], f["groups"][()] if "groups" in f else None,
                     f["classes"][()] if "classes" in f else None, None if names is None else [str(n) for n in json.loads(names)])
    if s.images.ndim != 4 or s.images.dtype != np.uint8 or not np.isin(s.labels, (-1, 1)).all():
        raise UserError(f"{path}: expected uint8 images (N, C, H, W) with labels in {{-1, +1}}")
    if spec is not None:
        spec.check(s.images, str(path))
    return s
