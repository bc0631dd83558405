"""Batched KKT reconstruction (paper sections 1.2, 2 "reconstruction phase" and 5.1).

R independent runs (one network each, or one shared network with R hyperparameter
draws) are optimised together as batched tensors with the closed-form objective of
``objective.closed_form``. For every run: lambda ~ U[0, 1), x ~ N(0, sigma^2 I) in
mean-subtracted space, 2m candidates (m per class). Candidate snapshots are recorded
after the listed numbers of updates. A run whose loss becomes NaN/inf is marked
``failed`` without stopping the others; hopeless runs can be ``aborted`` at a given
iteration (``abort.py``). Finished or stopped runs leave the batch, so the remaining
ones run faster. The state can be checkpointed and a killed job resumes from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from ..io import atomic_path
from . import abort as abort_mod
from . import optim
from .model import Weights
from .attacks import Attack


@dataclass
class ReconConfig:
    candidates_per_class: int
    iterations: int
    snapshots: list[int]
    optimizer: str = "adadelta"  # adadelta | sgd
    momentum: float = 0.9
    abort_at: int | None = None
    abort_criterion: str = "none"  # none | blind | oracle
    abort_threshold: float = 0.0

    @classmethod
    def from_params(cls, rc: dict) -> "ReconConfig":
        """From a params ``reconstruct`` section (the dataset setting has no ``abort``)."""
        ab = rc.get("abort") or {}
        return cls(rc["candidates_per_class"], rc["iterations"], list(rc["snapshots"]), rc["optimizer"], rc["momentum"],
                   ab.get("at"), ab.get("criterion", "none"), ab.get("threshold", 0.0))

    def __post_init__(self):
        bad = [s for s in self.snapshots if not 0 < s <= self.iterations]
        if bad:
            raise ValueError(f"snapshots {bad} are outside 1..iterations={self.iterations}")
        if self.abort_criterion not in abort_mod.CRITERIA:
            raise ValueError(f"unknown abort criterion {self.abort_criterion!r}; expected one of {abort_mod.CRITERIA}")


@dataclass
class Hparams:
    """Per-run hyperparameters, each a (R,) tensor."""

    lr: torch.Tensor
    lambda_lr: torch.Tensor
    sigma: torch.Tensor
    lambda_min: torch.Tensor
    alpha: torch.Tensor

    def select(self, idx: torch.Tensor) -> "Hparams":
        return Hparams(*(getattr(self, k)[idx] for k in ("lr", "lambda_lr", "sigma", "lambda_min", "alpha")))


@dataclass
class ReconResult:
    snapshots: dict[int, torch.Tensor]  # iteration -> (R, 2m, d) float32 on CPU
    lam: torch.Tensor  # (R, 2m) final multipliers
    y: torch.Tensor  # (2m,) candidate labels
    status: list[str]  # "ok" | "aborted" | "failed" per run
    stopped_at: torch.Tensor  # (R,) iteration at which the run left the batch
    stationarity: torch.Tensor  # (R,) final (or at stop) objective parts
    box: torch.Tensor
    lam_penalty: torch.Tensor
    abort_score: torch.Tensor  # (R,) criterion value at abort_at (nan if not evaluated)
    extra: dict = field(default_factory=dict)


def reconstruct(
    w: Weights,
    hp: Hparams,
    cfg: ReconConfig,
    dims: int,
    generators: list[torch.Generator] | None = None,
    train_images: torch.Tensor | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    progress: bool = False,
    desc: str = "reconstruct",
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    attack: Attack | None = None,
) -> ReconResult:
    """Run R reconstructions. ``w`` has R runs or 1 (shared); ``hp`` fields are (R,).
    ``attack``: the objective and the candidates' labels (``attacks``; default Haim et al.'s binary one).

    ``generators``: one per run, so a run's initial draw does not depend on its batch.
    ``train_images`` (n, d), mean-subtracted, is needed only by the oracle abort criterion.
    """
    if attack is None:
        from .attacks import get

        attack = get("kkt_binary")
    R = hp.lr.shape[0]
    dev, dt = w.W1.device, w.W1.dtype
    C = attack.classes(w)
    y = attack.candidate_labels(cfg.candidates_per_class, C, dt, dev)
    m = len(y)
    lam_shape = attack.lambda_shape(m, C)
    hp = Hparams(*(t.to(device=dev, dtype=dt) for t in (hp.lr, hp.lambda_lr, hp.sigma, hp.lambda_min, hp.alpha)))
    if cfg.abort_criterion == "oracle" and train_images is None:
        raise ValueError("the oracle abort criterion needs the training images")

    state = _load_checkpoint(checkpoint, R, m, dims) if checkpoint else None
    if state is None:
        # initialisation (paper 2 / 5.1): lambda ~ U[0, 1), x ~ N(0, sigma^2 I); drawn in float64 on CPU
        gens = generators if generators is not None else [None] * R
        if len(gens) != R:
            raise ValueError(f"need one generator per run: {len(gens)} for {R} runs")
        lam0 = torch.stack([torch.rand(*lam_shape, generator=g, dtype=torch.float64) for g in gens])
        x0 = torch.stack([torch.randn(m, dims, generator=g, dtype=torch.float64) for g in gens])
        state = {
            "it": 0,
            "x": (x0 * hp.sigma.cpu().double().view(R, 1, 1)).to(device=dev, dtype=dt),
            "lam": lam0.to(device=dev, dtype=dt),
            "active": torch.arange(R),
            "status": ["ok"] * R,
            "stopped_at": torch.full((R,), cfg.iterations, dtype=torch.long),
            "snapshots": {},
            "parts": torch.full((3, R), float("nan"), dtype=torch.float64),
            "abort_score": torch.full((R,), float("nan"), dtype=torch.float64),
            "opt_x": None,
            "opt_lam": None,
        }
    active: torch.Tensor = state["active"]
    x, lam = state["x"], state["lam"]
    hp_a = hp.select(active.to(dev))
    w_a = w.select(active.to(dev))
    layer_sq = attack.cache(w_a)
    opt_x = optim.make(cfg.optimizer, hp_a.lr, cfg.momentum)
    opt_l = optim.make(cfg.optimizer, hp_a.lambda_lr, cfg.momentum)
    if state["opt_x"] is not None:
        opt_x.load(state["opt_x"])
        opt_l.load(state["opt_lam"])
    snaps: dict[int, torch.Tensor] = state["snapshots"]
    status: list[str] = state["status"]
    stopped_at: torch.Tensor = state["stopped_at"]
    parts, abort_score = state["parts"], state["abort_score"]
    snapshot_set = set(cfg.snapshots)

    def record(out, rows, mask=None):
        """Objective parts of the runs that leave the batch (mask) or finish; not every iteration."""
        vals = torch.stack([out.stationarity, out.box, out.lam]).detach().double().cpu()
        parts[:, rows] = vals if mask is None else vals[:, mask]

    bar = tqdm(total=cfg.iterations, initial=state["it"], desc=desc, disable=not progress, mininterval=5)
    it = state["it"]
    while it < cfg.iterations and len(active):
        out = attack.objective(w_a, x, lam, y, hp_a.alpha, hp_a.lambda_min, layer_sq)
        total = out.total
        # a NaN or inf anywhere in a run's gradients makes its sums non-finite (one pass, not four)
        keep = torch.isfinite(total + out.grad_x.flatten(1).sum(1) + out.grad_lam.flatten(1).sum(1))
        drop = ~keep
        if cfg.abort_at is not None and it == cfg.abort_at:
            if cfg.abort_criterion in ("blind", "none"):  # none: the blind score is recorded, nothing is aborted
                score = abort_mod.blind_score(out.stat_first, attack.first_layer_sq(w_a, layer_sq))
            else:
                score = abort_mod.ncc_extraction_score(x, train_images.to(device=dev, dtype=dt))
            abort_score[active] = score.detach().double().cpu()
            hopeless = (score > cfg.abort_threshold) & keep & (cfg.abort_criterion != "none")
            for r in active[hopeless.cpu()].tolist():
                status[r] = "aborted"
            drop = drop | hopeless
        if drop.any():
            for r in active[(~keep).cpu()].tolist():
                status[r] = "failed"
            dropped = drop.cpu()
            record(out, active[dropped], dropped)
            stopped_at[active[dropped]] = it
            sel = torch.nonzero(~drop).flatten()
            active = active[sel.cpu()]
            x, lam, out_gx, out_gl = x[sel], lam[sel], out.grad_x[sel], out.grad_lam[sel]
            hp_a, w_a = hp_a.select(sel), w_a.select(sel)
            layer_sq = attack.select_cache(layer_sq, sel)  # one shared network: kept
            opt_x.select(sel)
            opt_l.select(sel)
            if not len(active):
                break
        else:
            out_gx, out_gl = out.grad_x, out.grad_lam
        opt_x.step(x, out_gx)
        opt_l.step(lam, out_gl)
        it += 1
        if on_step is not None:
            on_step(it, active)
        if it in snapshot_set:
            snap = snaps.setdefault(it, torch.full((R, m, dims), float("nan"), dtype=torch.float32))
            snap[active] = x.detach().float().cpu()
        if checkpoint and checkpoint_every and it % checkpoint_every == 0 and it < cfg.iterations:
            _save_checkpoint(checkpoint, dict(
                it=it, x=x, lam=lam, active=active, status=status, stopped_at=stopped_at, snapshots=snaps,
                parts=parts, abort_score=abort_score, opt_x=opt_x.state(), opt_lam=opt_l.state(),
                R=R, m=m, dims=dims))
        bar.update(1)
    bar.close()
    if len(active):
        out = attack.objective(w_a, x, lam, y, hp_a.alpha, hp_a.lambda_min, layer_sq)
        record(out, active)
    lam_full = torch.full((R, *lam_shape), float("nan"), dtype=torch.float64)
    lam_full[active] = lam.detach().double().cpu()
    return ReconResult(
        snapshots={k: snaps[k] for k in sorted(snaps)},
        lam=lam_full,
        y=y.cpu(),
        status=status,
        stopped_at=stopped_at,
        stationarity=parts[0],
        box=parts[1],
        lam_penalty=parts[2],
        abort_score=abort_score,
    )


def _save_checkpoint(path, state: dict) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path, R: int, m: int, dims: int) -> dict | None:
    p = Path(path)
    if not p.exists():
        return None
    state = torch.load(p, weights_only=True)
    if (state.get("R"), state.get("m"), state.get("dims")) != (R, m, dims):
        raise ValueError(f"{p}: checkpoint is for a different job (R, m, d) = {(state.get('R'), state.get('m'), state.get('dims'))}")
    return state
