"""The evaluation target network's training set and starting point (paper section 5.1): the
held-out images it trains on (per class, the first or random ones, one per group), their mean,
the centred inputs, and the initial weights. The undefended network (``attack target``) and
every network of the defences study (``defences target``) start from the same images and the
same draw, so that only the training differs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError
from ..seeding import derive_seed, torch_generator


def select_heldout(labels: np.ndarray, per_class: int, mode: str, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """The evaluation network's training images: per class of ``labels`` (the attack's training
    labels) the first (or random) held-out images, at most one per group (images of one group
    share pixels)."""
    out = []
    first = np.zeros(len(labels), dtype=bool)
    first[np.unique(np.arange(len(labels)) if groups is None else groups, return_index=True)[1]] = True
    for c in (int(c) for c in np.unique(labels)):
        idx = np.nonzero((labels == c) & first)[0]
        if len(idx) < per_class:
            raise UserError(f"evaluate.images_per_class = {per_class}, but the held-out set has only {len(idx)} images "
                            f"(of distinct groups) of class {c:+d}")
        if mode == "random":
            idx = np.sort(np.random.default_rng(derive_seed(seed, "heldout-select", c)).choice(idx, per_class, replace=False))
        out.append(idx[:per_class])
    return np.concatenate(out)


@dataclass
class TrainingSet:
    """What the evaluation network trains on: uint8 ``images``, the attack's ``labels``, source
    ``ids``, the pixel ``mean`` (float64, [0, 1]), and ``x`` (1, n, d) centred, ``y`` (1, n)."""

    index: np.ndarray  # rows of the held-out set
    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    mean: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor


def training_set(held, attack, ev: dict, seed: int, dtype, device) -> TrainingSet:
    """The evaluation network's training images from the held-out image set ``held``."""
    train_labels = attack.training_labels(held.labels, held.classes)
    sel = select_heldout(train_labels, ev["images_per_class"], ev["selection"], seed, held.groups)
    images, labels = held.images[sel], train_labels[sel]
    x = torch.from_numpy(images).to(torch.float64) / 255
    mean = x.mean(0)
    xc = (x - mean).flatten(1).to(device=device, dtype=dtype)[None]
    y = torch.from_numpy(labels).to(device=device, dtype=dtype)[None]
    return TrainingSet(sel, images, labels, held.ids[sel], mean, xc, y)


def initial_weights(attack, ts: TrainingSet, net: dict, seed: int, dtype, device):
    """The evaluation network's initial weights (one run; the seed's "eval-target" draw)."""
    return attack.init(1, ts.x.shape[-1], net, attack.outputs(ts.labels), torch_generator(seed, "eval-target"), dtype, device)
