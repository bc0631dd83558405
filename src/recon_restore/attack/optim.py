"""Elementwise optimisers with one learning rate per run (paper sections 2 and 5.1).

Same update rules as torch.optim.SGD (momentum, no dampening) and torch.optim.Adadelta
(rho 0.9, eps 1e-6; Zeiler 2012), written for batched tensors whose leading dimension
is the run, so that R runs with different hyperparameters step together.
"""

from __future__ import annotations

import torch


def _per_run(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


class BatchedSGD:
    def __init__(self, lr: torch.Tensor, momentum: float = 0.9):
        self.lr, self.momentum, self.buf = lr, momentum, None

    def step(self, p: torch.Tensor, g: torch.Tensor) -> None:
        self.buf = g.clone() if self.buf is None else self.buf.mul_(self.momentum).add_(g)
        p.sub_(_per_run(self.lr, p) * self.buf)

    def state(self) -> dict:
        return {"buf": self.buf}

    def load(self, s: dict) -> None:
        self.buf = s["buf"]

    def select(self, idx: torch.Tensor) -> None:
        self.lr = self.lr[idx]
        if self.buf is not None:
            self.buf = self.buf[idx]


class BatchedAdadelta:
    def __init__(self, lr: torch.Tensor, rho: float = 0.9, eps: float = 1e-6):
        self.lr, self.rho, self.eps = lr, rho, eps
        self.sq = self.acc = None

    def step(self, p: torch.Tensor, g: torch.Tensor) -> None:
        if self.sq is None:
            self.sq, self.acc = torch.zeros_like(p), torch.zeros_like(p)
        self.sq.mul_(self.rho).addcmul_(g, g, value=1 - self.rho)
        delta = (self.acc + self.eps).sqrt_().div_((self.sq + self.eps).sqrt_()).mul_(g)
        self.acc.mul_(self.rho).addcmul_(delta, delta, value=1 - self.rho)
        p.sub_(_per_run(self.lr, p) * delta)

    def state(self) -> dict:
        return {"sq": self.sq, "acc": self.acc}

    def load(self, s: dict) -> None:
        self.sq, self.acc = s["sq"], s["acc"]

    def select(self, idx: torch.Tensor) -> None:
        self.lr = self.lr[idx]
        if self.sq is not None:
            self.sq, self.acc = self.sq[idx], self.acc[idx]


def make(name: str, lr: torch.Tensor, momentum: float = 0.9):
    if name == "sgd":
        return BatchedSGD(lr, momentum)
    if name == "adadelta":
        return BatchedAdadelta(lr)
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd' or 'adadelta'")
