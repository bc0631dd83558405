"""``recon-restore bench attack``: dataset-setting runs per hour, batched vs naive.

For one size (input d, widths h, n training images, m candidates) it times, in the same
process: (a) the naive implementation, one run at a time, autograd double backward
through the surrogate network (``reconstruction_loss``) and autograd training; (b) the
batched implementation, R runs at once, closed-form objective (``closed_form``) and
batched training. Per-iteration and per-epoch times are medians of repeated timings;
a run's time is extrapolated to the setting's epochs and iterations. FLOPs are counted
by torch's FLOP counter for each implementation's own work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from ..attack.model import TargetMLP, Weights, init_weights, phi
from ..attack.objective import candidate_labels, closed_form, reconstruction_loss
from .timing import median_time


class _CountFlops(TorchDispatchMode):
    """Sum torch's per-operator FLOP formulas (matrix products, convolutions) over every
    operator a call dispatches. FlopCounterMode itself cannot be used: its module tracker
    breaks torch.autograd.grad on the double-backward path of the naive implementation."""

    def __init__(self):
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


def _flops(fn) -> int:
    with _CountFlops() as c:
        fn()
    return c.flops


def bench_size(d: int, hidden: list[int], n: int, m: int, runs: int, epochs: int, iters: int, dev: torch.device,
               dtype: torch.dtype, repeat: int = 5) -> dict:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(runs, n, d, generator=g, dtype=torch.float64) - 0.5).to(dev, dtype)
    y = torch.ones(runs, n, dtype=dtype, device=dev)
    y[:, : n // 2] = -1
    w = init_weights(runs, d, hidden, False, 1e-4, g, dtype, dev)
    cand = (torch.randn(runs, m, d, generator=g, dtype=torch.float64) * 1e-2).to(dev, dtype)
    lam = torch.rand(runs, m, generator=g, dtype=torch.float64).to(dev, dtype)
    yc = candidate_labels(m, dtype, dev)
    alpha = torch.full((runs,), 20.0, dtype=dtype, device=dev)
    lmin = torch.full((runs,), 0.5, dtype=dtype, device=dev)

    # batched: one training epoch of all runs, one closed-form iteration of all runs
    params = [t.clone().requires_grad_(True) for t in w.tensors()]
    opt = torch.optim.Adadelta(params, lr=1.0)

    def train_batched():
        opt.zero_grad(set_to_none=True)
        F.softplus(-y * phi(Weights(*params), x)).mean(1).sum().backward()
        opt.step()

    def recon_batched():
        closed_form(w, cand, lam, yc, alpha, lmin)

    # naive: one run, module + autograd
    model = TargetMLP.from_weights(w, 0).to(dev)
    nopt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    xr, yr = x[0], y[0]

    def train_naive():
        nopt.zero_grad(set_to_none=True)
        F.softplus(-yr * model(xr)).mean().backward()
        nopt.step()

    cr = cand[0].clone().requires_grad_(True)
    lr_ = lam[0].clone().requires_grad_(True)

    def recon_naive():
        total, _ = reconstruction_loss(model, cr, lr_, yc, 20.0, 0.5)
        torch.autograd.grad(total, [cr, lr_])

    out = {}
    for name, tr, rc, k in (("naive", train_naive, recon_naive, 1), ("batched", train_batched, recon_batched, runs)):
        t_tr, t_rc = median_time(tr, dev, repeat), median_time(rc, dev, repeat)
        f_tr, f_rc = _flops(tr), _flops(rc)
        per_run = (epochs * t_tr + iters * t_rc) / k
        out[name] = {
            "runs_in_batch": k,
            "train_epoch_s": t_tr,
            "recon_iter_s": t_rc,
            "seconds_per_run": per_run,
            "runs_per_hour": 3600.0 / per_run,
            "gflops_per_s": (epochs * f_tr + iters * f_rc) / (epochs * t_tr + iters * t_rc) / 1e9,
        }
    out["ratio"] = out["batched"]["runs_per_hour"] / out["naive"]["runs_per_hour"]
    return out
