"""Paper 004's attack on a denoiser (section 4.1): Dense Adversary Generation (Xie et al.
2017) carried over from segmentation to restoration.

Start from the clean image x_c and aim the restorer's output at the noisy image y (the
adversarial target; paper 004: "the noisy image was used as the adversarial target"). At
iteration m, with x_m = x_c + r,

    r_m  = grad_x  sum_p T_p f_p(x_m) (y_p - x_c,p)       (the target's minus the clean "label")
    r'_m = gamma / ||r_m||_inf  r_m                        (eq. 13; paper 004: gamma = 0.1)
    r   <- r + r'_m                                        (unbounded)

where T marks the pixels whose 8-bit output still differs from the 8-bit target (DAG's
active set). An image stops when T is empty or its gradient vanishes. Units: gamma is in
1/255 per step (paper 004 and Xie et al. work on 0..255 images; our pixels are in [0, 1]).
The adversarial input is clamped to [0, 1] before the restorer, as in the authors' released
code. Paper 004 does not state the number of iterations; ``iterations`` is a parameter (the
authors' released code stops at 20).
"""

from __future__ import annotations

from typing import Callable

import torch


def eight_bit(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round()


def dag(f: Callable[[torch.Tensor], torch.Tensor], clean: torch.Tensor, target: torch.Tensor, iterations: int,
        gamma: float) -> torch.Tensor:
    """The adversarial perturbation r (same shape as ``clean``); the attacked input is
    ``(clean + r).clamp(0, 1)``. ``gamma`` in units of 1/255."""
    if iterations < 0 or gamma <= 0:
        raise ValueError(f"dag: iterations {iterations} must be >= 0 and gamma {gamma} > 0")
    r = torch.zeros_like(clean)
    direction = target - clean
    goal = eight_bit(target)
    for _ in range(iterations):
        x = (clean + r).clamp(0, 1).requires_grad_(True)
        out = f(x)
        active = (eight_bit(out.detach()) != goal).to(out.dtype)
        (g,) = torch.autograd.grad((active * out * direction).sum(), x)
        norm = g.flatten(1).abs().amax(1).view(-1, *[1] * (g.ndim - 1))
        moving = norm > 0
        if not moving.any():
            break
        r = r + torch.where(moving, gamma / 255 * g / norm.clamp_min(torch.finfo(g.dtype).tiny), torch.zeros_like(g))
    return r.detach()


def attacked(clean: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The adversarial example the restorer sees."""
    return (clean + r).clamp(0, 1)
