"""Training the target networks (paper section 2 "training phase" and section 5.1).

Binary logistic loss log(1 + exp(-y Phi(x))) with y = -1 for vehicles and +1 for animals,
full batch, on inputs already mean-subtracted. Dataset setting: Adadelta, learning rate 1,
50,000 epochs, float32. Evaluation setting: gradient descent, learning rate 0.01,
10^6 epochs, float64. R networks train at once, each on its own mean loss.

The gradient is written out in closed form for the two-hidden-layer ReLU network
(``loss_and_grads``; tested against autograd) into one flat (R, P) buffer, so one
batched optimiser update (``optim``, fused when compiling) steps all parameters of all
runs: at the attack's sizes the elementwise update, not the matrix products, is the
cost of an epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import optim
from .model import Weights, phi


@dataclass
class TrainResult:
    weights: Weights
    loss: torch.Tensor  # (R,) final mean logistic loss
    min_margin: torch.Tensor  # (R,) min_i y_i Phi(x_i) (>= 1 needed for eq. 1)
    accuracy: torch.Tensor  # (R,)
    failed: torch.Tensor  # (R,) bool: NaN/inf during training


class FlatWeights:
    """R networks' parameters stored as one (R, P) tensor, with ``Weights`` views into it."""

    def __init__(self, like: Weights):
        R = like.runs
        self.shapes = [(k, t.shape[1:]) for k, t in zip(("W1", "b1", "W2", "w3"), (like.W1, like.b1, like.W2, like.w3))
                       if t is not None]
        self.flat = torch.empty(R, sum(math.prod(s) for _, s in self.shapes), dtype=like.W1.dtype, device=like.W1.device)
        self.weights = self.view(self.flat)
        for k, _ in self.shapes:
            getattr(self.weights, k).copy_(getattr(like, k))

    def view(self, flat: torch.Tensor) -> Weights:
        out, i = {}, 0
        for k, s in self.shapes:
            n = math.prod(s)
            out[k] = flat[:, i : i + n].view(flat.shape[0], *s)
            i += n
        return Weights(out["W1"], out["W2"], out["w3"], out.get("b1"))


def loss_and_grads(w: Weights, x: torch.Tensor, y: torch.Tensor, grads: Weights) -> torch.Tensor:
    """Per-run mean logistic loss (R,); writes d loss_r / d theta_r into ``grads``.

    x: (R, n, d), y: (R, n). Backpropagation by hand: dL/dPhi_i = -y_i sigmoid(-y_i Phi_i) / n,
    then through w3, the second ReLU, W2, the first ReLU and W1 (ReLU'(0) = 0, as torch).
    """
    z1 = torch.bmm(x, w.W1.transpose(1, 2))
    if w.b1 is not None:
        z1 += w.b1.unsqueeze(1)
    a1 = torch.relu(z1)
    z2 = torch.bmm(a1, w.W2.transpose(1, 2))
    a2 = torch.relu(z2)
    out = torch.bmm(a2, w.w3.unsqueeze(2)).squeeze(2)
    margin = -y * out
    loss = F.softplus(margin).mean(1)
    d_out = (-y * torch.sigmoid(margin)).div_(y.shape[1])
    torch.bmm(d_out.unsqueeze(1), a2, out=grads.w3.unsqueeze(1))
    d_z2 = (d_out.unsqueeze(2) * w.w3.unsqueeze(1)).mul_(z2 > 0)
    torch.bmm(d_z2.transpose(1, 2), a1, out=grads.W2)
    d_z1 = torch.bmm(d_z2, w.W2).mul_(z1 > 0)
    torch.bmm(d_z1.transpose(1, 2), x, out=grads.W1)
    if w.b1 is not None:
        torch.sum(d_z1, 1, out=grads.b1)
    return loss


def train_target(
    w: Weights,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer: str,
    lr: float,
    epochs: int,
    progress: bool = False,
    desc: str = "train target",
    weight_decay: float = 0.0,
) -> TrainResult:
    """Full-batch training of R networks; x: (R, n, d) mean-subtracted, y: (R, n) in {-1, +1}.

    ``optimizer``: 'adadelta' (torch.optim.Adadelta's rule) or 'gd' (plain gradient descent).
    ``weight_decay``: the loss gains weight_decay / 2 ||theta||^2 (gradient + weight_decay theta,
    torch's convention; the defences study).
    """
    if optimizer not in ("adadelta", "gd"):
        raise ValueError(f"unknown target optimizer {optimizer!r}; expected 'adadelta' or 'gd'")
    with torch.no_grad():
        params = FlatWeights(w)
        g_flat = torch.zeros_like(params.flat)
        grads = params.view(g_flat)
        lrs = torch.full((w.runs,), float(lr), dtype=params.flat.dtype, device=params.flat.device)
        opt = optim.make("adadelta" if optimizer == "adadelta" else "sgd", lrs, momentum=0.0)
        x = x.expand(w.runs, *x.shape[1:]) if x.shape[0] == 1 else x
        y = y.expand(w.runs, *y.shape[1:]) if y.shape[0] == 1 else y
        every = max(1, epochs // 100)
        bar = tqdm(total=epochs, desc=desc, disable=not progress, mininterval=5)
        for epoch in range(epochs):
            loss = loss_and_grads(params.weights, x, y, grads)
            if weight_decay:
                g_flat.add_(params.flat, alpha=weight_decay)
            opt.step(params.flat, g_flat)
            if epoch % every == 0:
                bar.update(min(every, epochs - bar.n))
                bar.set_postfix(loss=f"{loss.max().item():.3g}")
        bar.update(epochs - bar.n)
        bar.close()
        final = Weights(*(None if t is None else t.clone() for t in
                          (params.weights.W1, params.weights.W2, params.weights.w3, params.weights.b1)))
        out = phi(final, x)
        loss = F.softplus(-y * out).mean(1)
        margin = (y * out).min(1).values
        acc = ((out > 0).to(y.dtype) * 2 - 1 == y).to(torch.float32).mean(1)
        failed = ~torch.isfinite(loss) | ~torch.isfinite(params.flat).all(1)
    return TrainResult(final, loss, margin, acc, failed)

