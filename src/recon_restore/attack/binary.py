"""Haim et al.'s binary KKT attack (paper section 1.2) behind the attack interface: the target
``d - h1 - h2 - 1`` trained with the logistic loss on y in {-1, +1}, candidates half -1 and half
+1, one multiplier each, and the closed-form objective (``objective.closed_form``)."""

from __future__ import annotations

import numpy as np
import torch

from .attacks import Attack


class KKTBinary(Attack):
    name = "kkt_binary"

    def __init__(self, cfg: dict | None = None):
        pass

    def training_labels(self, labels, classes):
        return np.asarray(labels)

    def outputs(self, train_labels) -> int:
        return 1

    def classes(self, w) -> int:
        return 2

    def plan_classes(self, source_classes):
        return 2

    def init(self, runs, in_dim, net, outputs, generator, dtype, device):
        from .model import init_weights

        return init_weights(runs, in_dim, net["hidden"], net["bias"], net["init_std"], generator, dtype, device)

    def train(self, w, x, y, optimizer, lr, epochs, progress=False, desc="train targets", weight_decay=0.0):
        from .train import train_target

        return train_target(w, x, y, optimizer, lr, epochs, progress, desc, weight_decay)

    def predict(self, w, x):
        from .model import phi

        out = phi(w, x)
        return torch.where(out > 0, 1.0, -1.0).to(out.dtype)

    def loss(self, out, y):
        import torch.nn.functional as F

        return F.softplus(-y * out[:, 0]).mean()

    def candidate_labels(self, per_class, classes, dtype, device):
        from .objective import candidate_labels

        return candidate_labels(2 * per_class, dtype, device)

    def lambda_shape(self, m, classes):
        return (m,)

    def cache(self, w):
        from .objective import layer_sq_norms

        return layer_sq_norms(w)

    def objective(self, w, x, lam, y, alpha, lambda_min, cache=None):
        from .objective import closed_form

        return closed_form(w, x, lam, y, alpha, lambda_min, cache)

    def first_layer_sq(self, w, cache=None):
        if cache is None:
            return super().first_layer_sq(w)
        return cache[:, 0] if w.b1 is None else cache[:, 0] + w.b1.pow(2).sum(1)

    def iteration_flops(self, d, hidden, m, classes):
        from .flops import reconstruction_iteration_flops

        return reconstruction_iteration_flops(d, hidden, m)

    def epoch_flops(self, d, hidden, n, classes):
        from .flops import target_epoch_flops

        return target_epoch_flops(d, hidden, n)


ATTACK = KKTBinary
