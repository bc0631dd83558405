"""FLOPs counted from the models, not guessed: torch's per-operator FLOP formulas (matrix
products, convolutions; ``torch.utils.flop_counter``) summed over every operator a call
dispatches. Element-wise work is not counted (a few percent for these networks).

Used by ``recon-restore bench attack`` (GFLOP/s), ``recon-restore plan`` (each job's FLOPs
at the preset's sizes) and the dataset cost study (pairs per PFLOP). Each ``*_flops``
function runs the real implementation once at the real sizes (batch 1 where the cost is
linear in the batch) and returns the count.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class _CountFlops(TorchDispatchMode):
    """FlopCounterMode itself cannot be used: its module tracker breaks torch.autograd.grad
    on the double-backward path of the naive attack implementation."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def count(fn) -> int:
    """FLOPs of the matrix products and convolutions ``fn()`` dispatches."""
    with _CountFlops() as c:
        fn()
    return int(c.flops)


# ---- the attack (paper section 2; Haim et al.): one epoch of training, one iteration ----


def _weights(d: int, hidden: list[int]):
    from .attack.model import init_weights

    return init_weights(1, d, hidden, False, 1e-4, torch.Generator().manual_seed(0), torch.float32, torch.device("cpu"))


def target_epoch_flops(d: int, hidden: list[int], n: int) -> int:
    """One full-batch training epoch of the target network on n images (forward and the
    closed-form backward of ``attack.train.loss_and_grads``)."""
    from .attack.train import FlatWeights, loss_and_grads

    w = _weights(d, hidden)
    x = torch.rand(1, n, d)
    y = torch.ones(1, n)
    return count(lambda: loss_and_grads(w, x, y, FlatWeights(w).weights))


def reconstruction_iteration_flops(d: int, hidden: list[int], m: int) -> int:
    """One iteration of the KKT reconstruction for m candidates (``attack.objective.closed_form``:
    the objective and its gradients in x and lambda)."""
    from .attack.objective import candidate_labels, closed_form

    w = _weights(d, hidden)
    cand = torch.randn(1, m, d) * 1e-2
    lam = torch.rand(1, m)
    one = torch.ones(1)
    return count(lambda: closed_form(w, cand, lam, candidate_labels(m, torch.float32, torch.device("cpu")), one * 20, one * 0.5))


def dataset_run_flops(hidden: list[int], n: int, m: int, epochs: int, iterations: int, snapshots: int,
                      variant: str = "haim", d: int = 3 * 32 * 32) -> float:
    """One attack run: ``epochs`` of training on n images, ``iterations`` of reconstructing m
    candidates, and matching ``snapshots`` snapshots of them against the n images."""
    f = epochs * target_epoch_flops(d, hidden, n) if epochs else 0
    f += iterations * reconstruction_iteration_flops(d, hidden, m)
    return f + snapshots * m * n * ssim_pair_flops(variant)


def ssim_pair_flops(variant: str = "haim") -> int:
    """The all-pairs SSIM GEMM per (reconstruction, image) pair (``metrics.ssim_blocks``)."""
    from .metrics import ssim_blocks

    a, b = torch.rand(8, 3, 32, 32), torch.rand(16, 3, 32, 32)
    return count(lambda: list(ssim_blocks(a, b, variant, None))) // (8 * 16)


# ---- restorers (paper sections 3-4): per image --------------------------------------


def restorer_flops(kind: str, config: dict) -> dict[str, int]:
    """Per image: ``train`` (forward and backward of one training example) and ``forward``
    (one network evaluation), for a checkpoint kind (edm, bfdncnn, n2n) and its config."""
    from .restorers import checkpoint

    model = checkpoint.build(kind, config).float().train()
    x = torch.rand(1, 3, 32, 32)
    if kind == "edm":
        sigma = torch.ones(1)
        fwd = lambda: model(x * 2 - 1, sigma, x * 2 - 1)  # noqa: E731
    else:
        fwd = lambda: model(x)  # noqa: E731

    def step():
        model.zero_grad(set_to_none=True)
        fwd().square().sum().backward()

    with torch.no_grad():
        f = count(fwd)
    return {"train": count(step), "forward": f}


def restormer_forward_flops(setting: str) -> int:
    """One Restormer evaluation of a 32x32 image (``restorers.restormer``)."""
    from .restorers.restormer import build

    model = build(setting).eval()
    with torch.no_grad():
        return count(lambda: model(torch.rand(1, 3, 32, 32)))
