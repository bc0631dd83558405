"""Paper 004's attack on a denoiser (section 4.1): Dense Adversary Generation (Xie et al.
2017) carried over from segmentation to restoration.

Start from the clean image x_c and aim the restorer's output at the noisy image y (the
adversarial target; paper 004: "the noisy image was used as the adversarial target"). At
iteration m, with x_m = x_c + r,

    r_m  = grad_x  sum_p T_p f_p(x_m) (y_p - x_c,p)       (the target's minus the clean "label")
    r'_m = gamma / ||r_m||_inf  r_m                        (eq. 13; paper 004: gamma = 0.1)
    r   <- r + r'_m                                        (unbounded)

where T marks the pixels whose output is not yet at the target (DAG's active set); an image
stops when T is empty or its gradient vanishes. Pixels are in [0, 1], as in the authors'
released code (its final version clamps images to [0, 1]), so gamma = 0.1 moves the largest
component a tenth of the range per step. Facts taken from that code where the paper is
silent: a pixel is at the target when the absolute differences over its channels sum to
less than ``tolerance`` (0.04), the attacked input is clamped to [0, 1] before the restorer
and r to [-1, 1], and ``iterations`` defaults to its 40. The step is normalised by the
L-inf norm as the paper's eq. 13 writes it (``norm: linf``); the code divides by the L2 norm
of the whole gradient (``norm: l2``), a step about sqrt(C H W) times smaller per pixel, which
is what the paper's reported ratios (1.1 to 1.3) were measured with.
"""

from __future__ import annotations

from typing import Callable

import torch


def active(out: torch.Tensor, target: torch.Tensor, tolerance: float) -> torch.Tensor:
    """T: 1 where a pixel's output is not at the target (channel differences summing to at
    least ``tolerance``), broadcast over the channels."""
    return ((out - target).abs().sum(1, keepdim=True) >= tolerance).to(out.dtype).expand_as(out)


def dag(f: Callable[[torch.Tensor], torch.Tensor], clean: torch.Tensor, target: torch.Tensor, iterations: int,
        gamma: float, tolerance: float = 0.04, norm: str = "linf") -> torch.Tensor:
    """The adversarial perturbation r (same shape as ``clean``); the attacked input is
    ``(clean + r).clamp(0, 1)``. ``gamma``: the step's ``norm`` (linf | l2) in pixel units ([0, 1])."""
    if iterations < 0 or gamma <= 0 or tolerance <= 0 or norm not in ("linf", "l2"):
        raise ValueError(f"dag: iterations {iterations} must be >= 0, gamma {gamma} and tolerance {tolerance} > 0, "
                         f"norm {norm!r} linf or l2")
    r = torch.zeros_like(clean)
    direction = target - clean
    for _ in range(iterations):
        x = (clean + r).clamp(0, 1).requires_grad_(True)
        out = f(x)
        t = active(out.detach().clamp(0, 1), target, tolerance)
        (g,) = torch.autograd.grad((t * out * direction).sum(), x)
        size = (g.flatten(1).abs().amax(1) if norm == "linf" else g.flatten(1).norm(dim=1)).view(-1, *[1] * (g.ndim - 1))
        moving = size > 0
        if not moving.any():
            break
        r = (r + torch.where(moving, gamma * g / size.clamp_min(torch.finfo(g.dtype).tiny), torch.zeros_like(g))).clamp(-1, 1)
    return r.detach()


def attacked(clean: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """The adversarial example the restorer sees."""
    return (clean + r).clamp(0, 1)
