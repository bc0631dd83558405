"""Elementwise optimisers with one learning rate per run (paper sections 2 and 5.1).

Same update rules as torch.optim.SGD (momentum, no dampening) and torch.optim.Adadelta
(rho 0.9, eps 1e-6; Zeiler 2012), written for batched tensors whose leading dimension
is the run, so that R runs with different hyperparameters step together.

An update is a chain of elementwise operations; run eagerly, each one is a pass over
memory, and at the attack's sizes those passes, not the matrix products, dominate a
training epoch. ``set_compile(True)`` (params key ``compile``) fuses each update into one
kernel with ``torch.compile`` (a C++ loop on CPU, a Triton kernel on GPU). Where that
cannot compile (no C++ compiler), it warns once and runs eagerly: same formula.
"""

from __future__ import annotations

import logging

import torch

from .. import runtime

log = logging.getLogger(__name__)
_COMPILE = {"fns": {}, "broken": False}


def set_compile(on: bool) -> None:
    """Fuse optimiser updates with torch.compile from now on (process-wide; ``runtime``'s switch)."""
    runtime.set_compile(on)


def compiling() -> bool:
    return runtime.compile_enabled() and not _COMPILE["broken"]


def _adadelta_update(p, g, sq, acc, lr, rho: float, eps: float):
    sq.mul_(rho).addcmul_(g, g, value=1 - rho)
    std = sq.add(eps).sqrt_()
    delta = acc.add(eps).sqrt_().div_(std).mul_(g)
    acc.mul_(rho).addcmul_(delta, delta, value=1 - rho)
    p.addcmul_(lr, delta, value=-1)


def _sgd_update(p, g, buf, lr, momentum: float):
    buf.mul_(momentum).add_(g)
    p.addcmul_(lr, buf, value=-1)


def _gd_update(p, g, lr):
    p.addcmul_(lr, g, value=-1)


def _run(fn, p: torch.Tensor, *tensors, consts=()) -> None:
    """fn(p, *tensors, lr, *consts) updating p in place, fused by torch.compile when enabled.

    Tensors go in as (R, N) (lr as (R, 1)), so one compiled kernel per dtype serves every
    shape. A compilation failure switches the process to eager updates for good.
    """
    *state, lr = tensors
    if compiling() and p.is_contiguous() and all(t.is_contiguous() for t in state):
        R = p.shape[0]
        flat = [t.view(R, -1) for t in (p, *state)] + [lr.reshape(R, 1)]
        c = _COMPILE["fns"].get(fn)
        if c is None:
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "no CUDA runtime" on CPU
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            c = _COMPILE["fns"][fn] = torch.compile(fn, dynamic=True, fullgraph=True)
        try:
            return c(*flat, *consts)
        except Exception as e:  # compilation happens before any tensor is written
            _COMPILE["broken"] = True
            log.warning("torch.compile of the optimiser update failed (%s: %s); running it eagerly",
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "")
    return fn(p, *tensors, *consts)


def _per_run(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))


class BatchedSGD:
    """p -= lr * buf, buf = momentum * buf + g (buf = g at the first step); momentum 0: plain GD."""

    def __init__(self, lr: torch.Tensor, momentum: float):
        self.lr, self.momentum, self.buf = lr, momentum, None

    def step(self, p: torch.Tensor, g: torch.Tensor) -> None:
        lr = _per_run(self.lr, p)
        if self.momentum == 0:
            _run(_gd_update, p, g, lr)
        elif self.buf is None:
            self.buf = g.clone()
            p.sub_(lr * self.buf)
        else:
            _run(_sgd_update, p, g, self.buf, lr, consts=(self.momentum,))

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
        _run(_adadelta_update, p, g, self.sq, self.acc, _per_run(self.lr, p), consts=(self.rho, self.eps))

    def state(self) -> dict:
        return {"sq": self.sq, "acc": self.acc}

    def load(self, s: dict) -> None:
        self.sq, self.acc = s["sq"], s["acc"]

    def select(self, idx: torch.Tensor) -> None:
        self.lr = self.lr[idx]
        if self.sq is not None:
            self.sq, self.acc = self.sq[idx], self.acc[idx]


def make(name: str, lr: torch.Tensor, momentum: float):
    """'sgd' (momentum; 0 = plain gradient descent) or 'adadelta', one lr per run."""
    if name == "sgd":
        return BatchedSGD(lr, momentum)
    if name == "adadelta":
        return BatchedAdadelta(lr)
    raise ValueError(f"unknown optimizer {name!r}; expected 'sgd' or 'adadelta'")
