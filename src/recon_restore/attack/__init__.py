"""Attack stage (paper sections 1.2, 2, 5.1): target networks and Haim et al.'s KKT
reconstruction.

Public API:

* ``TargetMLP(in_dim, hidden, bias)``: the target network (``model.py``).
* ``train_target(weights, x, y, optimizer, lr, epochs)``: batched full-batch training
  (closed-form gradients ``train.loss_and_grads``).
* ``reconstruction_loss(model, x, lam, y, alpha=..., lambda_min=...)``: the objective
  and its parts by autograd (the reference); ``closed_form``: the fast batched version.
* ``reconstruct.reconstruct(weights, hparams, config, dims, generators)``: batched reconstruction.
* ``optim.set_compile(on)``: fuse the batched optimiser updates with torch.compile.
"""

# Loaded on first use, so that importing one module of the stage (e.g. ``target_file``, which
# the evaluation reads) does not run the others: a command's code hash covers what it runs.
_API = {"TargetMLP": "model", "Weights": "model", "init_weights": "model", "phi": "model", "closed_form": "objective",
        "reconstruction_loss": "objective", "Hparams": "reconstruct", "ReconConfig": "reconstruct", "ReconResult": "reconstruct",
        "train_target": "train"}  # reconstruct(): from .reconstruct (the name is the module's)
__all__ = list(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
