"""Data sources: the registry (paper section 2 trains on CIFAR-10; a researcher brings their own).

A source is one module with a ``SOURCE`` object (``Source``) plus one line in ``SOURCES``
plus its params section ``data.<name>``. It declares its image spec from its params (so
that the plan and the networks know the geometry before any file exists), names the local
files it reads (the workflow's inputs) and loads the pool (images the dataset runs sample
from) and the held-out set (images the evaluation network trains on), each with the
source's class indices and names. The binary split of the paper's attack (which classes
are y = +1) is the param ``data.positive`` for every source (``split``).
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path

import numpy as np

from ..errors import UserError
from .spec import ImageSpec
from .store import ImageSet

SOURCES = {
    "demo": "demo",  # offline: crops of the photos bundled with scikit-image (3x32x32)
    "cifar10": "cifar",  # CIFAR-10 train / ciFAIR-10 test (the paper)
    "cifar100": "cifar100",  # CIFAR-100 train / test, fine or coarse labels
    "mnist": "idx:MNIST",  # MNIST IDX files (1x28x28)
    "fashion_mnist": "idx:FASHION",  # Fashion-MNIST IDX files (1x28x28)
    "folder": "folder",  # the user's own images: class subfolders of PNG/JPEG, or an .npz
}


class Source:
    """What every data source provides; ``cfg`` is its params section ``data.<name>``."""

    name = ""
    pool_kind = "pool"
    heldout_kind = "held-out"

    def spec(self, cfg: dict) -> ImageSpec:
        raise NotImplementedError

    def inputs(self, data_cfg: dict) -> list[str]:
        """Local files or folders the source reads (those that exist: the workflow's inputs)."""
        return []

    def load(self, data_cfg: dict, seed: int) -> tuple[ImageSet, ImageSet]:
        """(pool, held-out) with the source's classes; labels are set by ``split`` afterwards."""
        raise NotImplementedError

    def num_classes(self, data_cfg: dict) -> int:
        """How many classes the source has (the plan of the multiclass attack)."""
        return 10


def get(name: str) -> Source:
    if name not in SOURCES:
        hint = difflib.get_close_matches(str(name), list(SOURCES), n=1)
        raise UserError(f"params: key 'data.source': unknown source {name!r}" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                        + f"; expected one of {', '.join(SOURCES)}")
    module, _, attr = SOURCES[name].partition(":")
    return getattr(importlib.import_module(f".{module}", __package__), attr or "SOURCE")


def module_of(data_cfg: dict) -> str:
    """The module implementing the preset's source (its code hash)."""
    get(data_cfg["source"])
    return f"{__package__}.{SOURCES[data_cfg['source']].partition(':')[0]}"


def section(data_cfg: dict) -> dict:
    name = data_cfg["source"]
    if name not in data_cfg:
        raise UserError(f"params: data source {name!r} needs the section 'data.{name}' (its settings)")
    return data_cfg[name]


def spec_of(data_cfg: dict) -> ImageSpec:
    """The image spec every stage of this preset works in."""
    return get(data_cfg["source"]).spec(section(data_cfg))


def num_classes(data_cfg: dict) -> int:
    return int(get(data_cfg["source"]).num_classes(data_cfg))


def inputs(data_cfg: dict) -> list[str]:
    section(data_cfg)
    return [p for p in get(data_cfg["source"]).inputs(data_cfg) if p and Path(p).exists()]


def positive_classes(names: list[str], positive: list, where: str = "data.positive") -> np.ndarray:
    """Class indices named by ``positive`` (names or indices), one clear error for an unknown one."""
    out = []
    for p in positive:
        if isinstance(p, bool) or not isinstance(p, (int, str)):
            raise UserError(f"params: key '{where}': {p!r} is neither a class name nor a class index")
        if isinstance(p, int):
            if not 0 <= p < len(names):
                raise UserError(f"params: key '{where}': class index {p} is outside 0..{len(names) - 1}")
            out.append(p)
        elif p in names:
            out.append(names.index(p))
        else:
            hint = difflib.get_close_matches(p, names, n=1)
            raise UserError(f"params: key '{where}': {p!r} is not a class of this source"
                            + (f" (did you mean '{hint[0]}'?)" if hint else "") + f"; classes: {', '.join(names)}")
    return np.asarray(sorted(set(out)), dtype=np.int64)


def split(s: ImageSet, positive: list, what: str) -> ImageSet:
    """The binary labels of Haim et al.'s attack: y = +1 for the ``positive`` classes, -1 else;
    both must occur."""
    pos = positive_classes(list(s.class_names), positive)
    labels = np.where(np.isin(s.classes, pos), 1, -1).astype(np.int8)
    for c in (-1, 1):
        if not (labels == c).any():
            raise UserError(f"params: key 'data.positive' = {positive}: the {what} has no image of class y = {c:+d} "
                            f"(classes: {', '.join(s.class_names)})")
    return ImageSet(s.images, labels, s.ids, s.groups, s.classes, s.class_names)


def prepare(data_cfg: dict, seed: int) -> tuple[ImageSet, ImageSet, Source]:
    """The pool and held-out sets of a preset, split into the binary classes, checked against the spec."""
    src = get(data_cfg["source"])
    cfg = section(data_cfg)
    spec = src.spec(cfg)
    pool, held = src.load(data_cfg, seed)
    out = []
    for s, what in ((pool, src.pool_kind), (held, src.heldout_kind)):
        spec.check(s.images, f"data source {src.name!r} ({what})")
        out.append(split(s, data_cfg["positive"], what))
    return out[0], out[1], src
