"""The evaluation's attack runs file, ``attack/runs/batch-<b>.h5`` (paper section 5.1):
one batch of reconstruction runs with random hyperparameters against the evaluation
network.

Schema (R runs, S snapshots, 2m candidates, d = 3072)::

    snapshots            float32 (R, S, 2m, d)  mean-subtracted candidates (NaN: run stopped earlier)
    snapshot_iterations  int64 (S,)
    lam                  float64 (R, 2m)        final multipliers
    y                    (2m,)                  candidate labels
    status               int8 (R,)              ``status.RunStatus`` codes
    stopped_at, stationarity, box, lam_penalty, abort_score   (R,)
    hparams/{run, seed, lr, lambda_lr, sigma, lambda_min, alpha}   (R,)
    attrs: status_codes, abort_criterion, batch, provenance
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import torch

from ..errors import UserError
from ..io import atomic_path, open_h5, require_datasets, set_attrs
from ..status import RunStatus

HPARAMS = ("run", "seed", "lr", "lambda_lr", "sigma", "lambda_min", "alpha")
PER_RUN = ("stopped_at", "stationarity", "box", "lam_penalty", "abort_score")


@dataclass
class RunsFile:
    snapshots: np.ndarray
    snapshot_iterations: np.ndarray
    status: np.ndarray
    y: np.ndarray
    hparams: dict[str, np.ndarray]
    per_run: dict[str, np.ndarray]
    abort_criterion: str


def write_runs(path, parts: list[dict], hparams: list[dict], snapshot_iterations: list[int], attrs: dict,
               overwrite: bool = False) -> None:
    """``parts``: per batch of runs, tensors keyed like the schema (``status`` as codes)."""
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("snapshots", data=torch.cat([r["snapshots"] for r in parts]).numpy(), compression="gzip")
            f.create_dataset("snapshot_iterations", data=np.asarray(snapshot_iterations, dtype=np.int64))
            f.create_dataset("lam", data=torch.cat([r["lam"] for r in parts]).numpy())
            f.create_dataset("y", data=parts[0]["y"].numpy())
            f.create_dataset("status", data=np.concatenate([np.asarray(r["status"], dtype=np.int8) for r in parts]))
            for k in PER_RUN:
                f.create_dataset(k, data=torch.cat([r[k] for r in parts]).numpy())
            g = f.create_group("hparams")
            for k in HPARAMS:
                g.create_dataset(k, data=np.asarray([h[k] for h in hparams]))
            set_attrs(f, dict(attrs, kind="recon-restore/attack-runs", status_codes=RunStatus.codes()))


def read_runs(path) -> RunsFile:
    with open_h5(path, "attack runs file") as f:
        require_datasets(f, ["snapshots", "snapshot_iterations", "status", "y", "hparams", *PER_RUN])
        missing = [k for k in HPARAMS if k not in f["hparams"]]
        if missing:
            raise UserError(f"{path}: hparams lacks {missing}")
        r = RunsFile(f["snapshots"][()], f["snapshot_iterations"][()], f["status"][()], f["y"][()],
                     {k: f["hparams"][k][()] for k in f["hparams"]}, {k: f[k][()] for k in PER_RUN},
                     str(f.attrs.get("abort_criterion", "unknown")))
    if r.snapshots.ndim != 4 or r.snapshots.shape[0] != len(r.status) or r.snapshots.shape[1] != len(r.snapshot_iterations):
        raise UserError(f"{path}: snapshots of shape {r.snapshots.shape} do not fit {len(r.status)} runs and "
                        f"{len(r.snapshot_iterations)} snapshot iterations")
    return r
