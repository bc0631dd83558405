"""Restorer checkpoints: a plain ``state_dict`` plus the config that rebuilds the network.

Format (``torch.save`` of a dict; loaded with ``weights_only=True``)::

    {"format": "recon-restore/restorer", "version": 1, "kind": "edm" | "bfdncnn" | "n2n",
     "config": {...}, "state_dict": {...}, "provenance": {...}}

For EDM the state dict is the EMA copy (used for sampling).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from ..io import atomic_path

FORMAT = "recon-restore/restorer"


def build(kind: str, config: dict) -> torch.nn.Module:
    if kind == "edm":
        from .edm import EDMPrecond

        return EDMPrecond(config["network"], config.get("sigma_data", 0.5))
    if kind == "bfdncnn":
        from .bfdncnn import BFDnCNN

        return BFDnCNN(**config)
    if kind == "n2n":
        from .n2n.network import N2NUNet

        return N2NUNet(**config)
    raise UserError(f"unknown restorer kind {kind!r}; expected 'edm', 'bfdncnn' or 'n2n'")


def save(path: str | Path, kind: str, config: dict, state_dict: dict, provenance: dict, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite) as tmp:
        torch.save({"format": FORMAT, "version": 1, "kind": kind, "config": config,
                    "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "provenance": provenance}, tmp)


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[str, torch.nn.Module, dict]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: checkpoint does not exist")
    try:
        ck = torch.load(p, map_location=device, weights_only=True)
    except Exception as e:
        raise UserError(f"{p}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise UserError(f"{p}: not a recon-restore restorer checkpoint (key 'format' != {FORMAT!r})")
    model = build(ck["kind"], ck["config"])
    try:
        model.load_state_dict(ck["state_dict"])
    except RuntimeError as e:
        raise UserError(f"{p}: state_dict does not match its config ({e})") from None
    return ck["kind"], model.to(device).eval(), ck


def require_method(ck: dict, path: str | Path, method: str) -> None:
    """Refuse a checkpoint made for another method (its provenance names the method; older
    checkpoints without it are named by their kind)."""
    made_for = ck.get("provenance", {}).get("method", ck.get("kind"))
    if made_for != method:
        raise UserError(f"{path}: is a {made_for} checkpoint, expected {method}")
