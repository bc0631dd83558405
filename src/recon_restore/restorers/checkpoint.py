"""Restorer checkpoints: a plain ``state_dict`` plus the config that rebuilds the network.

Format (``torch.save`` of a dict; loaded with ``weights_only=True``)::

    {"format": "recon-restore/restorer", "version": 1, "kind": <the restorer's network_kind>,
     "config": {...}, "state_dict": {...}, "provenance": {"method": <the restorer>, ...}}

The restorer named in the provenance builds the network (``methods.restorer_class``).

For EDM the state dict is the EMA copy (used for sampling).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from ..io import atomic_path

FORMAT = "recon-restore/restorer"


def save(path: str | Path, kind: str, config: dict, state_dict: dict, provenance: dict, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite) as tmp:
        torch.save({"format": FORMAT, "version": 1, "kind": kind, "config": config,
                    "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "provenance": provenance}, tmp)


def spec_of(ck: dict, channels: int | None = None):
    """The image spec a checkpoint's restorer was trained on (its provenance's ``image_shape``;
    a checkpoint without one: the paper's 32x32 with the network's ``channels``)."""
    from ..data.spec import CIFAR, ImageSpec

    shape = (ck.get("provenance") or {}).get("image_shape")
    if shape:
        return ImageSpec(*(int(v) for v in shape))
    return ImageSpec(channels or CIFAR.channels, CIFAR.height, CIFAR.width)


def read(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """The checkpoint's dict (``weights_only``), checked to be a restorer checkpoint."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: checkpoint does not exist")
    try:
        ck = torch.load(p, map_location=device, weights_only=True)
    except Exception as e:
        raise UserError(f"{p}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise UserError(f"{p}: not a recon-restore restorer checkpoint (key 'format' != {FORMAT!r})")
    return ck


def method_of(ck: dict) -> str:
    """The method a checkpoint was made for (older checkpoints: named by their kind)."""
    return ck.get("provenance", {}).get("method", ck.get("kind"))


def model_from(ck: dict, path: str | Path, build, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The network of a checkpoint, built by ``build(config)`` (its restorer's)."""
    model = build(ck["config"])
    try:
        model.load_state_dict(ck["state_dict"])
    except RuntimeError as e:
        raise UserError(f"{path}: state_dict does not match its config ({e})") from None
    return model.to(device).eval()


def load(path: str | Path, device: str | torch.device = "cpu") -> tuple[object, torch.nn.Module, dict]:
    """The restorer a checkpoint was made for (``methods.restorer_class``), its network and the dict."""
    from .. import methods

    ck = read(path, device)
    made_for = method_of(ck)
    try:
        cls = methods.restorer_class(made_for)
    except KeyError:
        raise UserError(f"{path}: made for {made_for!r}, which is not a restorer of the methods list") from None
    return cls, model_from(ck, path, cls.build, device), ck


def require_method(ck: dict, path: str | Path, method: str) -> None:
    """Refuse a checkpoint made for another method (its provenance names the method; older
    checkpoints without it are named by their kind)."""
    made_for = method_of(ck)
    if made_for != method:
        raise UserError(f"{path}: is a {made_for} checkpoint, expected {method}")
