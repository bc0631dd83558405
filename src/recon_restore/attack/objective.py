"""Haim et al.'s reconstruction objective (paper section 1.2; Haim et al. 2022, section 3).

For candidates x_i with fixed labels y_i (first half -1, second half +1) and multipliers
lambda_i, with Haim's 1/m factor::

    g       = (1/m) sum_i lambda_i y_i grad_theta Phi~(x_i)        (surrogate derivatives)
    L_stat  = sum_p ||theta_p - g_p||^2                             (all parameter tensors)
    L_box   = sum relu(x - 1)^2 + relu(-1 - x)^2                    (mean-subtracted pixels)
    L_lam   = 5 sum_i relu(lambda_min - lambda_i)^2
    L       = L_stat + L_box + L_lam

Phi~ is the network with exact-ReLU values and softplus_alpha derivatives; gradients of
L with respect to x and lambda include the second-order term alpha sigma (1 - sigma).

Two implementations:

* ``reconstruction_loss``: the reference, by autograd double backward on a ``TargetMLP``.
* ``closed_form``: loss parts and both gradients in closed form for the two-hidden-layer
  network, batched over R runs. The per-parameter sums are never formed: the residual
  norms and their gradients use Gram matrices of the candidates (m x m) instead, which
  is cheaper whenever m is below the width, and memory-light.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import TargetMLP, Weights, phi

LAMBDA_WEIGHT = 5.0


def candidate_labels(m: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    """y' for 2k candidates: the first half -1, the second half +1 (paper section 1.2)."""
    if m % 2:
        raise ValueError(f"the number of candidates must be even (m per class x 2), got {m}")
    y = torch.ones(m, dtype=dtype, device=device)
    y[: m // 2] = -1
    return y


def reconstruction_loss(
    model: TargetMLP,
    x: torch.Tensor,
    lam: torch.Tensor,
    y: torch.Tensor,
    alpha: float,
    lambda_min: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total objective and its parts for one run, by autograd (the reference).

    x: (m, ...) mean-subtracted candidates (requires_grad for optimisation),
    lam: (m,), y: (m,) in {-1, +1}. Returns (total, {"stationarity", "box", "lambda"}).
    """
    m = x.shape[0]
    params = [p for p in model.parameters()]
    out = model(x, surrogate_alpha=alpha)
    grads = torch.autograd.grad((out * lam * y).sum() / m, params, create_graph=True)
    stat = sum(((p.detach() - g) ** 2).sum() for p, g in zip(params, grads))
    box = (torch.relu(x - 1) ** 2 + torch.relu(-1 - x) ** 2).sum()
    lam_pen = LAMBDA_WEIGHT * (torch.relu(lambda_min - lam) ** 2).sum()
    return stat + box + lam_pen, {"stationarity": stat, "box": box, "lambda": lam_pen}


@dataclass
class ObjectiveOut:
    stationarity: torch.Tensor  # (R,)
    box: torch.Tensor  # (R,)
    lam: torch.Tensor  # (R,)
    grad_x: torch.Tensor  # (R, m, d)
    grad_lam: torch.Tensor  # (R, m)
    stat_first: torch.Tensor | None = None  # (R,) first-layer part ||W1 - g1||^2 (+ bias)

    @property
    def total(self) -> torch.Tensor:
        return self.stationarity + self.box + self.lam


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def layer_sq_norms(w: Weights) -> torch.Tensor:
    """(R, 2): ||W1||^2 and ||W2||^2 per run."""
    return torch.stack([w.W1.flatten(1).pow(2).sum(1), w.W2.flatten(1).pow(2).sum(1)], 1)


def closed_form(
    w: Weights,
    x: torch.Tensor,
    lam: torch.Tensor,
    y: torch.Tensor,
    alpha: torch.Tensor,
    lambda_min: torch.Tensor,
    layer_sq: torch.Tensor | None = None,
) -> ObjectiveOut:
    """Objective parts and gradients for R runs at once.

    w: networks with R (or 1, shared) runs; x: (R, m, d); lam: (R, m); y: (m,);
    alpha, lambda_min: (R,). ``layer_sq`` optionally caches ``layer_sq_norms(w)``, constant
    during a reconstruction.
    """
    R, m, d = x.shape
    a = alpha.view(R, 1, 1).to(x.dtype)
    c = lam * y / m  # (R, m)
    cc = c.unsqueeze(-1)
    W1t, W2t = w.W1.transpose(1, 2), w.W2.transpose(1, 2)
    w3 = w.w3.unsqueeze(1)  # (R|1, 1, h2)

    # forward pass and per-candidate gradient factors of Phi~
    xw = torch.matmul(x, W1t)  # W1 x_i, (R, m, h1)
    z1 = xw if w.b1 is None else xw + w.b1.unsqueeze(1)
    a1, s1 = torch.relu(z1), torch.sigmoid(a * z1)
    z2 = torch.matmul(a1, W2t)  # (R, m, h2)
    a2, s2 = torch.relu(z2), torch.sigmoid(a * z2)
    u = s2 * w3  # delta_2 = w3 * s2
    v = torch.matmul(u, w.W2)  # W2^T delta_2, (R, m, h1)
    d1 = v * s1  # delta_1

    # Gram matrices of the candidates' factors (R, m, m)
    K = torch.matmul(x, x.transpose(1, 2))
    G1 = torch.matmul(d1, d1.transpose(1, 2))
    A1 = torch.matmul(a1, a1.transpose(1, 2))
    U = torch.matmul(u, u.transpose(1, 2))

    # rows of R1 X^T, R2 A1^T (R = g - theta): Q1_i = R1 x_i, Q2_i = R2 a1_i
    q1 = torch.matmul(K * c.unsqueeze(1), d1) - xw
    q2 = torch.matmul(A1 * c.unsqueeze(1), u) - z2
    g3 = (cc * a2).sum(1)  # (R, h2)
    r3 = g3 - w.w3
    if w.b1 is not None:
        rb = (cc * d1).sum(1) - w.b1

    # residual norms: ||R||^2 = <g, R> - <theta, R>, expanded without forming g
    w1sq, w2sq = (layer_sq_norms(w) if layer_sq is None else layer_sq).unbind(1)
    stat_1 = (c * _rowdot(d1, q1 - xw)).sum(1) + w1sq
    stat_2 = (c * _rowdot(u, q2 - z2)).sum(1) + w2sq
    stat_first = stat_1.clamp_min(0)
    if w.b1 is not None:
        stat_first = stat_first + rb.pow(2).sum(1)
    stat = stat_first + stat_2.clamp_min(0) + r3.pow(2).sum(1)

    # reverse mode through g(x, lambda): d/dc, d/d delta_1, d/d u, d/d a1, d/d a2
    dc = 2 * (_rowdot(d1, q1) + _rowdot(u, q2) + _rowdot(a2, r3.unsqueeze(1)))
    dd1 = 2 * cc * q1
    if w.b1 is not None:
        dc = dc + 2 * _rowdot(d1, rb.unsqueeze(1))
        dd1 = dd1 + 2 * cc * rb.unsqueeze(1)
    du = 2 * cc * q2
    da1 = 2 * cc * (torch.matmul(U * c.unsqueeze(1), a1) - v)
    da2 = 2 * cc * r3.unsqueeze(1)

    # through delta_1 = (W2^T u) * s1 and u = w3 * s2
    dv = dd1 * s1
    ds1 = dd1 * v
    du = du + torch.matmul(dv, W2t)
    ds2 = du * w3
    # through the surrogate activations (value: relu, derivative: sigmoid)
    dz2 = da2 * s2 + ds2 * a * s2 * (1 - s2)
    da1 = da1 + torch.matmul(dz2, w.W2)
    dz1 = da1 * s1 + ds1 * a * s1 * (1 - s1)
    # x enters through z1 = W1 x and through g1 = sum_i c_i delta_1,i x_i^T
    gx = torch.matmul(dz1 - 2 * cc * d1, w.W1) + 2 * cc * torch.matmul(G1 * c.unsqueeze(1), x)

    # penalties
    excess = x - x.clamp(-1, 1)  # relu(x - 1) - relu(-1 - x): at most one is non-zero
    box = excess.flatten(1).pow(2).sum(1)
    gx = gx.add_(excess, alpha=2)
    lmin = lambda_min.view(R, 1).to(lam.dtype)
    short = torch.relu(lmin - lam)
    lam_pen = LAMBDA_WEIGHT * short.pow(2).sum(1)
    glam = dc * y / m - 2 * LAMBDA_WEIGHT * short
    return ObjectiveOut(stat, box, lam_pen, gx, glam, stat_first)


def autograd_objective(
    w: Weights,
    x: torch.Tensor,
    lam: torch.Tensor,
    y: torch.Tensor,
    alpha: torch.Tensor,
    lambda_min: torch.Tensor,
) -> ObjectiveOut:
    """The same quantities as ``closed_form``, by autograd double backward, one run at a time."""
    outs = []
    for r in range(x.shape[0]):
        model = TargetMLP.from_weights(w, 0 if w.runs == 1 else r)
        xr = x[r].detach().clone().requires_grad_(True)
        lr_ = lam[r].detach().clone().requires_grad_(True)
        total, parts = reconstruction_loss(model, xr, lr_, y, float(alpha[r]), float(lambda_min[r]))
        gx, gl = torch.autograd.grad(total, [xr, lr_])
        outs.append((parts["stationarity"].detach(), parts["box"].detach(), parts["lambda"].detach(), gx, gl))
    cat = [torch.stack([o[i] for o in outs]) for i in range(5)]
    return ObjectiveOut(*cat)


__all__ = [
    "candidate_labels",
    "reconstruction_loss",
    "closed_form",
    "autograd_objective",
    "ObjectiveOut",
    "phi",
]
