"""Bounded L-infinity projected gradient ascent on a restorer's input (Madry et al. 2018),
the robustness study's second attack beside paper 004's (``dag``).

For budgets eps_1 < eps_2 < ... (``eps = 0`` allowed), maximise each image's squared error
of f(x + delta) to its reference over ||delta||_inf <= eps with signed-gradient steps of
``step_frac * eps / steps``. Budgets are attacked in increasing order, each starting from
the previous budget's best perturbation (feasible for the larger ball), and the best
perturbation seen per image is kept, its start included: so a larger budget never finds a
smaller error, and a zero budget leaves the input, the output and the error unchanged.
Each step's forward pass both scores the current perturbation and gives its gradient (one
forward and one backward per step, one more forward for the last step). The input is not
clipped to [0, 1] (synthetic noise is not); outputs are clamped to [0, 1] as when restoring.
"""

from __future__ import annotations

from typing import Callable

import torch


def image_error(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error of the clamped output."""
    return ((out.clamp(0, 1) - ref) ** 2).flatten(1).mean(1)


def pgd(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, ref: torch.Tensor, budgets: list[float], steps: int,
        step_frac: float = 2.5) -> dict[float, tuple[torch.Tensor, torch.Tensor]]:
    """{eps: (best perturbed input, its per-image error)} for every budget."""
    if list(budgets) != sorted(budgets) or min(budgets, default=0) < 0:
        raise ValueError(f"budgets {budgets} must be non-negative and increasing")
    with torch.no_grad():
        best_err = image_error(f(x), ref)
    best = torch.zeros_like(x)
    out = {}

    def keep(delta, e):
        nonlocal best_err
        better = e > best_err
        best[better] = delta[better]
        best_err = torch.where(better, e, best_err)

    for eps in budgets:
        delta = best.clone()
        if eps > 0:
            step = step_frac * eps / steps
            for k in range(steps):
                delta.requires_grad_(True)
                err = image_error(f(x + delta), ref)
                (g,) = torch.autograd.grad(err.sum(), delta)
                with torch.no_grad():
                    if k:  # the start was scored already
                        keep(delta.detach(), err.detach())
                    delta = (delta.detach() + step * g.sign()).clamp(-eps, eps)
            with torch.no_grad():
                keep(delta, image_error(f(x + delta), ref))
        out[eps] = (x + best, best_err.clone())
    return out
