"""The target network (paper sections 1.2, 2 and 5.1).

An MLP ``d - h1 - h2 - 1`` with ReLU and no bias (the paper), optionally with Haim et
al.'s first-layer bias. First layer initialised N(0, init_std^2) (1e-4 in the paper),
the other layers with He (Kaiming-normal, fan-in) initialisation.

``Weights`` is the batched functional view used by the fast paths: every tensor carries
a leading run dimension R, so many independent networks train and are attacked at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn


@dataclass
class Weights:
    """Batched weights of R two-hidden-layer target networks."""

    W1: torch.Tensor  # (R, h1, d)
    W2: torch.Tensor  # (R, h2, h1)
    w3: torch.Tensor  # (R, h2)
    b1: torch.Tensor | None = None  # (R, h1) or None

    @property
    def runs(self) -> int:
        return self.W1.shape[0]

    def tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.W1, self.b1, self.W2, self.w3) if t is not None]

    def to(self, **kw) -> "Weights":
        return Weights(*(None if t is None else t.to(**kw) for t in (self.W1, self.W2, self.w3, self.b1)))

    @staticmethod
    def cat(ws: list["Weights"]) -> "Weights":
        """Stack the runs of several batches of networks."""
        b1 = None if ws[0].b1 is None else torch.cat([w.b1 for w in ws])
        return Weights(torch.cat([w.W1 for w in ws]), torch.cat([w.W2 for w in ws]), torch.cat([w.w3 for w in ws]), b1)

    def select(self, idx: torch.Tensor) -> "Weights":
        if self.runs == 1:
            return self
        return Weights(*(None if t is None else t[idx] for t in (self.W1, self.W2, self.w3, self.b1)))


def init_weights(
    runs: int,
    in_dim: int,
    hidden: list[int] | tuple[int, int],
    bias: bool = False,
    init_std: float = 1e-4,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    outputs: int | None = None,
) -> Weights:
    """Paper initialisation for R networks: N(0, init_std^2) first layer, He elsewhere.
    ``outputs``: C output rows (the multiclass target; ``w3`` is then (R, C, h2)); None: one output."""
    if len(hidden) != 2:
        raise ValueError(f"the target network has two hidden layers (paper section 2); got hidden={list(hidden)}")
    h1, h2 = hidden

    def normal(*shape, std):
        return (torch.randn(*shape, generator=generator, dtype=torch.float64) * std).to(dtype=dtype, device=device)

    W1 = normal(runs, h1, in_dim, std=init_std)
    b1 = normal(runs, h1, std=init_std) if bias else None
    W2 = normal(runs, h2, h1, std=math.sqrt(2.0 / h1))
    w3 = normal(runs, *((outputs,) if outputs else ()), h2, std=math.sqrt(2.0 / h2))
    return Weights(W1, W2, w3, b1)


def phi(w: Weights, x: torch.Tensor) -> torch.Tensor:
    """Network output Phi for inputs x (R or 1, n, d) -> (R, n). Exact ReLU."""
    z1 = torch.matmul(x, w.W1.transpose(1, 2))
    if w.b1 is not None:
        z1 = z1 + w.b1.unsqueeze(1)
    a1 = torch.relu(z1)
    a2 = torch.relu(torch.matmul(a1, w.W2.transpose(1, 2)))
    return (a2 * w.w3.unsqueeze(1)).sum(-1)


def surrogate_relu(z: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """ReLU in the forward pass, softplus_alpha derivatives in the backward (Haim et al.).

    stopgrad(relu(z)) + s(z) - stopgrad(s(z)) with s(z) = relu(z) + log1p(exp(-alpha |z|)) / alpha,
    a numerically stable softplus with beta = alpha: the value is exactly relu(z), the
    first derivative is sigmoid(alpha z) and the second alpha sigma (1 - sigma).
    """
    s = torch.relu(z) + torch.log1p(torch.exp(-alpha * z.abs())) / alpha
    return torch.relu(z).detach() + (s - s.detach())


class TargetMLP(nn.Module):
    """The paper's target network ``in_dim - hidden[0] - hidden[1] - 1``, ReLU, no bias."""

    def __init__(
        self,
        in_dim: int = 3072,
        hidden: list[int] | tuple[int, int] = (1000, 1000),
        bias: bool = False,
        init_std: float = 1e-4,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        w = init_weights(1, in_dim, hidden, bias, init_std, generator, dtype)
        self.in_dim, self.hidden, self.bias = in_dim, list(hidden), bias
        self.layers = nn.ModuleList(
            [
                nn.Linear(in_dim, hidden[0], bias=bias, dtype=dtype),
                nn.Linear(hidden[0], hidden[1], bias=False, dtype=dtype),
                nn.Linear(hidden[1], 1, bias=False, dtype=dtype),
            ]
        )
        with torch.no_grad():
            self.layers[0].weight.copy_(w.W1[0])
            if bias:
                self.layers[0].bias.copy_(w.b1[0])
            self.layers[1].weight.copy_(w.W2[0])
            self.layers[2].weight.copy_(w.w3[0].unsqueeze(0))

    def forward(self, x: torch.Tensor, surrogate_alpha: float | None = None) -> torch.Tensor:
        """Phi(x) for x of shape (n, ...) flattened to (n, in_dim); returns (n,).

        With ``surrogate_alpha`` the ReLUs use Haim et al.'s softplus-derivative backward.
        """
        h = x.flatten(1)
        act = torch.relu if surrogate_alpha is None else (lambda z: surrogate_relu(z, surrogate_alpha))
        h = act(self.layers[0](h))
        h = act(self.layers[1](h))
        return self.layers[2](h).squeeze(-1)

    def weights(self) -> Weights:
        """Batched (R = 1) view sharing no storage with the module."""
        L = self.layers
        return Weights(
            L[0].weight.detach().clone().unsqueeze(0),
            L[1].weight.detach().clone().unsqueeze(0),
            L[2].weight.detach().clone(),
            None if L[0].bias is None else L[0].bias.detach().clone().unsqueeze(0),
        )

    @classmethod
    def from_weights(cls, w: Weights, run: int = 0) -> "TargetMLP":
        h1, d = w.W1.shape[1:]
        m = cls(d, [h1, w.W2.shape[1]], bias=w.b1 is not None, dtype=w.W1.dtype)
        with torch.no_grad():
            m.layers[0].weight.copy_(w.W1[run])
            if w.b1 is not None:
                m.layers[0].bias.copy_(w.b1[run])
            m.layers[1].weight.copy_(w.W2[run])
            m.layers[2].weight.copy_(w.w3[run].unsqueeze(0))
        return m
