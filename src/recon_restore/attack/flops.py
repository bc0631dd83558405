"""FLOPs of the attack (paper section 2; Haim et al.), counted from its implementation
(``flops.count``): one epoch of training the target network, one iteration of the KKT
reconstruction, and one whole dataset run (with the matching of its snapshots)."""

from __future__ import annotations

import torch

from ..flops import count, ssim_pair_flops

def _weights(d: int, hidden: list[int]):
    from .model import init_weights

    return init_weights(1, d, hidden, False, 1e-4, torch.Generator().manual_seed(0), torch.float32, torch.device("cpu"))


def target_epoch_flops(d: int, hidden: list[int], n: int) -> int:
    """One full-batch training epoch of the target network on n images (forward and the
    closed-form backward of ``attack.train.loss_and_grads``)."""
    from .train import FlatWeights, loss_and_grads

    w = _weights(d, hidden)
    x = torch.rand(1, n, d)
    y = torch.ones(1, n)
    return count(lambda: loss_and_grads(w, x, y, FlatWeights(w).weights))


def reconstruction_iteration_flops(d: int, hidden: list[int], m: int) -> int:
    """One iteration of the KKT reconstruction for m candidates (``attack.objective.closed_form``:
    the objective and its gradients in x and lambda)."""
    from .objective import candidate_labels, closed_form

    w = _weights(d, hidden)
    cand = torch.randn(1, m, d) * 1e-2
    lam = torch.rand(1, m)
    one = torch.ones(1)
    return count(lambda: closed_form(w, cand, lam, candidate_labels(m, torch.float32, torch.device("cpu")), one * 20, one * 0.5))


def dataset_run_flops(hidden: list[int], n: int, m: int, epochs: int, iterations: int, snapshots: int,
                      variant: str = "haim", shape: tuple | None = None, attack=None, classes: int = 2) -> float:
    """One attack run on images of ``shape`` (C, H, W; default the paper's): ``epochs`` of
    training on n images, ``iterations`` of reconstructing m candidates, and matching
    ``snapshots`` snapshots of them against the n images. ``attack`` (``attacks.Attack``;
    default the binary one) over ``classes`` classes."""
    import math

    from ..data.spec import CIFAR

    shape = tuple(shape or CIFAR.shape)
    d = math.prod(shape)
    if attack is None:
        f = epochs * target_epoch_flops(d, hidden, n) if epochs else 0
        f += iterations * reconstruction_iteration_flops(d, hidden, m)
    else:
        f = epochs * attack.epoch_flops(d, hidden, n, classes) if epochs else 0
        f += iterations * attack.iteration_flops(d, hidden, m, classes)
    return f + snapshots * m * n * ssim_pair_flops(variant, shape)
