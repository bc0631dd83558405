"""``recon-restore bench attack``: dataset-setting runs per hour, batched vs naive.

For one size (input d, widths h, n training images, m candidates) it times, in the same
process: (a) the naive implementation, one run at a time: an ``nn.Module``, autograd
training with torch.optim.Adadelta, autograd double backward through the surrogate
network (``reconstruction_loss``) and torch.optim.Adadelta for x and lambda; (b) the
batched implementation the workflow runs, R runs at once: ``train_target`` (closed-form
gradients, one batched update, fused when ``compile`` is on) and ``reconstruct``
(closed-form objective ``closed_form``). Times are medians over rounds that interleave the two implementations; a run's
time is extrapolated to the setting's epochs and iterations. FLOPs are counted by
torch's FLOP counter for each implementation's own work.
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from ..attack.model import TargetMLP, Weights, init_weights, phi
from ..attack.objective import candidate_labels, closed_form, reconstruction_loss
from ..attack.reconstruct import Hparams, ReconConfig, reconstruct
from ..attack.train import FlatWeights, loss_and_grads, train_target
from ..flops import count as _flops
from .timing import median_time


def bench_size(d: int, hidden: list[int], n: int, m: int, runs: int, epochs: int, iters: int, dev: torch.device,
               dtype: torch.dtype, repeat: int = 5, step_calls: int = 10) -> dict:
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

    # batched: the implementation the workflow runs, R runs at once. A step's cost is the
    # difference of two calls (k and 3k epochs or iterations), which cancels setup and the
    # initial draw; FLOPs are those of one epoch's closed-form gradient / one iteration's
    # closed-form objective (the optimiser updates do no matrix products).
    hp = Hparams(*(torch.full((runs,), v, dtype=dtype, device=dev) for v in (1.0, 1.0, 1e-3, 0.5, 20.0)))

    def train_k(k):
        train_target(w, x, y, "adadelta", 1.0, k)

    def recon_k(k):
        reconstruct(w, hp, ReconConfig(m // 2, k, [k], "adadelta"), d)

    grads = FlatWeights(w)

    def train_batched_flops():
        loss_and_grads(w, x, y, grads.weights)

    def recon_batched_flops():
        closed_form(w, cand, lam, yc, alpha, lmin)

    # naive: one run, module + autograd (double backward) + torch.optim.Adadelta
    model = TargetMLP.from_weights(w, 0).to(dev)
    nopt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    xr, yr = x[0], y[0]

    def train_naive():
        nopt.zero_grad(set_to_none=True)
        F.softplus(-yr * model(xr)).mean().backward()
        nopt.step()

    cr = cand[0].clone().requires_grad_(True)
    lr_ = lam[0].clone().requires_grad_(True)
    ropt = torch.optim.Adadelta([cr, lr_], lr=1.0)

    def recon_naive():
        ropt.zero_grad(set_to_none=True)
        total, _ = reconstruction_loss(model, cr, lr_, yc, 20.0, 0.5)
        cr.grad, lr_.grad = torch.autograd.grad(total, [cr, lr_])
        ropt.step()

    # interleaved rounds, so that drift in the machine's speed hits both implementations alike
    k = step_calls
    def loop(f):
        def many():
            for _ in range(2 * k):
                f()
        return many

    fns = {
        "naive_train": loop(train_naive), "naive_recon": loop(recon_naive),
        "train_k": lambda: train_k(k), "train_3k": lambda: train_k(3 * k),
        "recon_k": lambda: recon_k(k), "recon_3k": lambda: recon_k(3 * k),
    }
    for name, f in fns.items():  # warm-up (and compilation)
        with torch.enable_grad() if name.startswith("naive") else torch.no_grad():
            f()
    samples = {name: [] for name in fns}
    for _ in range(repeat):
        for name, f in fns.items():
            with torch.enable_grad() if name.startswith("naive") else torch.no_grad():
                samples[name].append(median_time(f, dev, 1, 0))
    med = {name: statistics.median(v) for name, v in samples.items()}
    t_tr_b = max(med["train_3k"] - med["train_k"], 0.0) / (2 * k)
    t_rc_b = max(med["recon_3k"] - med["recon_k"], 0.0) / (2 * k)
    timings = {
        "naive": (med["naive_train"] / (2 * k), med["naive_recon"] / (2 * k), _flops(train_naive), _flops(recon_naive), 1),
        "batched": (t_tr_b, t_rc_b, _flops(train_batched_flops), _flops(recon_batched_flops), runs),
    }
    out = {}
    for name, (t_tr, t_rc, f_tr, f_rc, batch) in timings.items():
        per_run = (epochs * t_tr + iters * t_rc) / batch
        out[name] = {
            "runs_in_batch": batch,
            "train_epoch_s": t_tr,
            "recon_iter_s": t_rc,
            "seconds_per_run": per_run,
            "runs_per_hour": 3600.0 / per_run,
            "gflops_per_s": (epochs * f_tr + iters * f_rc) / (epochs * t_tr + iters * t_rc) / 1e9,
        }
    out["ratio"] = out["batched"]["runs_per_hour"] / out["naive"]["runs_per_hour"]
    return out
