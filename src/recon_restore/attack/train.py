"""Training the target networks (paper section 2 "training phase" and section 5.1).

Binary logistic loss log(1 + exp(-y Phi(x))) with y = -1 for vehicles and +1 for animals,
full batch, on inputs already mean-subtracted. Dataset setting: Adadelta, learning rate 1,
50,000 epochs, float32. Evaluation setting: gradient descent, learning rate 0.01,
10^6 epochs, float64. R networks train at once: the loss is the sum of the per-run
mean losses, so every run's gradient is exactly its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .model import Weights, phi


@dataclass
class TrainResult:
    weights: Weights
    loss: torch.Tensor  # (R,) final mean logistic loss
    min_margin: torch.Tensor  # (R,) min_i y_i Phi(x_i) (>= 1 needed for eq. 1)
    accuracy: torch.Tensor  # (R,)
    failed: torch.Tensor  # (R,) bool: NaN/inf during training


def train_target(
    w: Weights,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: str = "adadelta",
    lr: float = 1.0,
    epochs: int = 50_000,
    progress: bool = False,
    desc: str = "train target",
) -> TrainResult:
    """Full-batch training of R networks; x: (R, n, d) mean-subtracted, y: (R, n) in {-1, +1}."""
    params = [t.detach().clone().requires_grad_(True) for t in w.tensors()]
    has_bias = w.b1 is not None

    def unpack(ps):
        if has_bias:
            W1, b1, W2, w3 = ps
        else:
            (W1, W2, w3), b1 = ps, None
        return Weights(W1, W2, w3, b1)

    if optimizer == "adadelta":
        opt = torch.optim.Adadelta(params, lr=lr)
    elif optimizer == "gd":
        opt = torch.optim.SGD(params, lr=lr)
    else:
        raise ValueError(f"unknown target optimizer {optimizer!r}; expected 'adadelta' or 'gd'")
    every = max(1, epochs // 100)
    bar = tqdm(total=epochs, desc=desc, disable=not progress, mininterval=5)
    for epoch in range(epochs):
        opt.zero_grad(set_to_none=True)
        per_run = F.softplus(-y * phi(unpack(params), x)).mean(1)
        per_run.sum().backward()
        opt.step()
        if epoch % every == 0:
            bar.update(min(every, epochs - bar.n))
            bar.set_postfix(loss=f"{per_run.detach().max().item():.3g}")
    bar.update(epochs - bar.n)
    bar.close()
    with torch.no_grad():
        final = unpack([p.detach() for p in params])
        out = phi(final, x)
        loss = F.softplus(-y * out).mean(1)
        margin = (y * out).min(1).values
        acc = ((out > 0).to(y.dtype) * 2 - 1 == y).to(torch.float32).mean(1)
        failed = ~torch.isfinite(loss) | ~torch.stack([torch.isfinite(t.flatten(1)).all(1) for t in final.tensors()]).all(0)
    return TrainResult(final, loss, margin, acc, failed)


def he_std(fan_in: int) -> float:
    return math.sqrt(2.0 / fan_in)
