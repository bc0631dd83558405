"""FLOPs counted from the models, not guessed: torch's per-operator FLOP formulas (matrix
products, convolutions; ``torch.utils.flop_counter``) summed over every operator a call
dispatches. Element-wise work is not counted (a few percent for these networks).

The counters live with the code they count, so that no stage imports another stage's
models to count them: the attack's in ``attack.flops``, each restorer's in its class
(``restorers.base``); matching's here (``ssim_pair_flops``). Used by ``recon-restore bench
attack`` (GFLOP/s), ``recon-restore plan`` (each job's FLOPs at the preset's sizes) and the
dataset cost study (pairs per PFLOP). Each counter runs the real implementation once at
the real sizes (batch 1 where the cost is linear in the batch) and returns the count.
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


def ssim_pair_flops(variant: str = "haim", shape: tuple = None) -> int:
    """The all-pairs SSIM GEMM per (reconstruction, image) pair (``metrics.ssim_blocks``) for
    images of ``shape`` (C, H, W; default the paper's)."""
    from .data.spec import CIFAR
    from .metrics import ssim_blocks

    a, b = torch.rand(8, *(shape or CIFAR.shape)), torch.rand(16, *(shape or CIFAR.shape))
    return count(lambda: list(ssim_blocks(a, b, variant, None))) // (8 * 16)
