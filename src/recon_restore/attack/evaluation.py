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


def train_network(prm, heldout, device, train=None, label: str = "evaluation target", progress: bool = False):
    """Train the evaluation network of params ``prm`` on the held-out image set file ``heldout``:
    (attack, training set, ``TrainResult``, statistics). ``train(attack, w, ts, evaluate.train,
    progress)`` returns (result, extra statistics); by default the attack's own full-batch training
    (section 5.1). A diverged network is one clear error."""
    from ..data.store import read_image_set
    from ..precision import dtype_of, matmul_mode
    from . import attacks

    ev, net = prm.section("evaluate"), prm.section("attack", "target")
    attack = attacks.get(prm.section("attack"))
    tr = ev["train"]
    dt = dtype_of(tr["precision"])
    ts = training_set(read_image_set(heldout, prm.spec), attack, ev, prm.seed, dt, device)
    w = initial_weights(attack, ts, net, prm.seed, dt, device)
    if train is None:
        def train(attack, w, ts, tr, progress):
            return attack.train(w, ts.x, ts.y, tr["optimizer"], tr["lr"], tr["epochs"], progress, f"train {label}"), {}
    with matmul_mode(tr["precision"]):
        res, extra = train(attack, w, ts, tr, progress)
    if bool(res.failed[0]):
        raise UserError(f"{label}: training diverged (NaN/inf); lower evaluate.train.lr")
    stats = {"loss": float(res.loss[0]), "min_margin": float(res.min_margin[0]), "accuracy": float(res.accuracy[0]),
             "images": len(ts.index), **extra}
    return attack, ts, res, stats
