"""Training loop for the restorers (paper sections 3 and 4; EDM training details).

Shared by both learned restorers: Adam, a learning-rate schedule, optional EMA (EDM:
half-life 0.5 Mimg with ramp-up ratio 0.05), gradient sanitising (NaN -> 0, +-inf ->
+-1e5), batches from the balanced sampler, and a training state saved atomically every
``checkpoint_every`` steps so a killed job resumes where it stopped (same sampler
position, optimiser, EMA and random state).

Schedules: EDM ramps the learning rate up linearly over ``lr_rampup_images`` and keeps
it constant; BF-DnCNN halves it after ``halve_after`` batches and every ``halve_every``
batches after that; the Noise2Noise U-Net ramps it down over the last
``rampdown_fraction`` of the steps by a raised cosine, squared (Lehtinen et al.).

Data parallel (``distributed``): with G processes each trains on its rows of every global
batch of ``batch`` examples and DistributedDataParallel averages the gradients; the
schedules, the EMA and the saved states are those of the global batch, whatever G is, and
only the first process writes.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from ..precision import dtype_of, matmul_mode
from . import distributed
from ..dataset.sampler import BalancedSampler, Batch
from ..errors import UserError
from ..io import atomic_path

log = logging.getLogger(__name__)


@dataclass
class TrainSpec:
    steps: int
    batch: int
    lr: float
    precision: str = "fp32"
    lr_rampup_images: float = 0.0
    rampdown_fraction: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    halve_after: int | None = None
    halve_every: int | None = None
    ema_halflife_images: float | None = None
    ema_rampup_ratio: float | None = None
    checkpoint_every: int = 0
    log_every: int = 50
    gpus: int = 1  # data-parallel processes (one per GPU); the batch above is the global batch


def learning_rate(spec: TrainSpec, step: int) -> float:
    lr = spec.lr
    if spec.lr_rampup_images:
        lr *= min(step * spec.batch / spec.lr_rampup_images, 1.0)
    if spec.halve_after is not None and step >= spec.halve_after:
        lr *= 0.5 ** (1 + (step - spec.halve_after) // max(1, spec.halve_every or 10**12))
    if spec.rampdown_fraction:
        t = (step - (1 - spec.rampdown_fraction) * spec.steps) / (spec.rampdown_fraction * spec.steps)
        if t > 0:
            lr *= ((1 + math.cos(math.pi * min(t, 1.0))) / 2) ** 2
    return lr


def ema_beta(spec: TrainSpec, step: int) -> float:
    half = spec.ema_halflife_images
    if spec.ema_rampup_ratio is not None:
        half = min(half, step * spec.batch * spec.ema_rampup_ratio)
    return 0.5 ** (spec.batch / max(half, 1e-8))


def train(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Batch, torch.Generator, int], torch.Tensor],
    sampler: BalancedSampler,  # or any stream with ``batches(batch_size, start)`` (restorers.n2n.data)
    spec: TrainSpec,
    device: torch.device,
    state_path: Path,
    seed: int,
    progress: bool = False,
    desc: str = "train",
    fingerprint: str = "",
) -> tuple[torch.nn.Module, list[dict]]:
    """Train ``model``; returns the model to save (EMA copy if enabled) and the loss log.

    A saved training state is resumed only if it was made with the same ``fingerprint``
    (settings, dataset and code); otherwise the command stops and says how to proceed,
    since discarding it could lose hours of training."""
    dt = dtype_of(spec.precision)
    group = distributed.current()
    lo, hi = group.part(spec.batch)
    scale = (hi - lo) * group.world / spec.batch  # local mean -> this process's share of the global mean, times G
    model = model.to(device=device, dtype=dt, memory_format=torch.channels_last).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False) if spec.ema_halflife_images else None
    opt = torch.optim.Adam(model.parameters(), lr=spec.lr, betas=tuple(spec.betas), eps=1e-8)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    step, history = 0, []
    if state_path.exists():
        st = torch.load(state_path, map_location=device, weights_only=True)
        if st.get("fingerprint", "none") != fingerprint:
            raise UserError(f"{state_path}: training state was made with other settings, data or code "
                            f"({st.get('fingerprint', 'none')}; now {fingerprint}); delete it to train from scratch, "
                            "or restore the settings it was made with to resume it")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        if ema is not None:
            ema.load_state_dict(st["ema"])
        gen.set_state(st["gen"].cpu() if device.type == "cpu" else st["gen"])
        step, history = int(st["step"]), list(st["history"])
        log.info("resuming %s at step %d", desc, step)
    net = distributed.wrap(model)
    stream = sampler.batches(spec.batch, start=step * spec.batch, part=(lo, hi))
    bar = tqdm(total=spec.steps, initial=step, desc=desc, disable=not progress, mininterval=5)
    running, t0 = 0.0, time.time()
    with matmul_mode(spec.precision):
        while step < spec.steps:
            b = next(stream).to(device, dt)
            b.part = (lo, hi, spec.batch)
            for g in opt.param_groups:
                g["lr"] = learning_rate(spec, step)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net, b, gen, step) * scale
            loss.backward()
            for p in model.parameters():
                if p.grad is not None:
                    torch.nan_to_num(p.grad, nan=0.0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
            step += 1
            if ema is not None:
                beta = ema_beta(spec, step)
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters()):
                        pe.lerp_(pm.detach(), 1 - beta)
                    for be, bm in zip(ema.buffers(), model.buffers()):
                        be.copy_(bm)
            running = running + loss.detach().double() / group.world
            if step % spec.log_every == 0 or step == spec.steps:
                k = spec.log_every if step % spec.log_every == 0 else step % spec.log_every
                running = float(distributed.total(running))
                history.append({"step": step, "loss": running / k, "lr": learning_rate(spec, step - 1),
                                "images_per_s": k * spec.batch / max(time.time() - t0, 1e-9)})
                bar.set_postfix(loss=f"{running / k:.4g}")
                log.info("%s step %d loss %.5g", desc, step, running / k)
                running, t0 = 0.0, time.time()
            if spec.checkpoint_every and step % spec.checkpoint_every == 0 and step < spec.steps and group.main:
                _save_state(state_path, model, opt, ema, gen, step, history, fingerprint)
            bar.update(1)
    bar.close()
    return (ema if ema is not None else model).eval(), history


def _save_state(path: Path, model, opt, ema, gen, step, history, fingerprint: str = "") -> None:
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "step": step, "history": history,
             "fingerprint": fingerprint}
    if ema is not None:
        state["ema"] = ema.state_dict()
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(state, tmp)
