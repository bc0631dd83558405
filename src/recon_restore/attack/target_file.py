"""The evaluation target network on disk: weights, the images it was trained on, their
mean, training statistics and provenance (``torch.save``; ``weights_only=True`` loads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..io import atomic_path
from .model import Weights

FORMAT = "recon-restore/target"


def save_target(path, w: Weights, images: np.ndarray, labels: np.ndarray, ids: np.ndarray, mean: torch.Tensor,
                stats: dict, prov: dict, overwrite: bool = False) -> None:
    state = {"W1": w.W1[0].cpu(), "W2": w.W2[0].cpu(), "w3": w.w3[0].cpu()}
    if w.b1 is not None:
        state["b1"] = w.b1[0].cpu()
    with atomic_path(path, overwrite) as tmp:
        torch.save({"format": FORMAT, "weights": state, "images": torch.from_numpy(images), "labels": torch.from_numpy(labels),
                    "ids": torch.from_numpy(ids), "mean": mean.cpu(), "stats": stats, "provenance": prov}, tmp)


def load_target(path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: target network file does not exist")
    try:
        d = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{p}: unreadable target network file ({e})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise UserError(f"{p}: not a recon-restore target network file")
    wt = d["weights"]
    d["w"] = Weights(wt["W1"][None], wt["W2"][None], wt["w3"][None], wt["b1"][None] if "b1" in wt else None)
    return d
