"""Per-command runtime setup shared by the stage CLIs: params, device, threads, and the
process-wide switch ``compile`` (params key) that the attack's fused optimiser updates read."""

from __future__ import annotations

import os

import torch

from .precision import resolve_device
from .config import Params, load_params
from .errors import UserError


_SWITCHES = {"compile": False}


def set_compile(on: bool) -> None:
    """Fuse the attack's optimiser updates with torch.compile from now on (process-wide)."""
    _SWITCHES["compile"] = bool(on)


def compile_enabled() -> bool:
    return _SWITCHES["compile"]


def setup(args) -> Params:
    prm = load_params(args.params, args.preset)
    if getattr(args, "seed", None) is not None:
        prm.cfg["seed"] = int(args.seed)  # --seed: the setting of a learning curve (evaluate.curve)
    if getattr(args, "attack", None) is not None:
        prm.cfg["attack"]["method"] = args.attack  # --attack: the cross-attack study (evaluate.cross_attack)
    threads = os.environ.get("RECON_RESTORE_THREADS") or os.environ.get("SNAKEMAKE_THREADS")
    if threads:
        torch.set_num_threads(max(1, int(threads)))
    set_compile(prm.cfg["compile"])
    return prm


def device(args, prm: Params) -> torch.device:
    want = getattr(args, "device", None) or prm.cfg.get("device", "auto")
    try:
        return resolve_device(want)
    except ValueError as e:
        raise UserError(str(e)) from None
