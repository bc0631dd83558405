"""Attack stage (paper sections 1.2, 2, 5.1): target networks and Haim et al.'s KKT
reconstruction.

Public API:

* ``TargetMLP(in_dim, hidden, bias)``: the target network (``model.py``).
* ``train_target(weights, x, y, optimizer, lr, epochs)``: batched full-batch training
  (closed-form gradients ``train.loss_and_grads``).
* ``reconstruction_loss(model, x, lam, y, alpha=..., lambda_min=...)``: the objective
  and its parts by autograd (the reference); ``closed_form``: the fast batched version.
* ``reconstruct(weights, hparams, config, dims, generators)``: batched reconstruction.
* ``optim.set_compile(on)``: fuse the batched optimiser updates with torch.compile.
"""

from .model import TargetMLP, Weights, init_weights, phi
from .objective import closed_form, reconstruction_loss
from .reconstruct import Hparams, ReconConfig, ReconResult, reconstruct
from .train import train_target

__all__ = [
    "TargetMLP",
    "Weights",
    "init_weights",
    "phi",
    "closed_form",
    "reconstruction_loss",
    "Hparams",
    "ReconConfig",
    "ReconResult",
    "reconstruct",
    "train_target",
]
