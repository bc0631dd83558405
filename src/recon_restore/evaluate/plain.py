"""The plain reconstructions (paper section 5.1, method 1): every snapshot of every
successful evaluation run, postprocessed into [0, 1] (add the training mean, scale by the
largest constant that keeps pixels in [0, 1]).

File ``evaluate/plain.h5``::

    images     float32 (N, 3, 32, 32)
    run, snapshot, candidate  int64 (N,)   where each image comes from
    y          (N,)                         its candidate label
    runs/<column>                           one row per run (hyperparameters, status, abort score)
    attrs: runs_total, runs_ok, runs_aborted, runs_failed, abort_criterion, provenance

When every run aborted or failed the file holds no reconstructions (N = 0) and its run
table says why: the attack found nothing, so every method counts zero good images (a
defence that leaves no successful run, docs/results.md), not an error.
"""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import torch

from ..attack.runs_file import read_runs
from ..errors import UserError
from ..io import atomic_path, open_h5, require_datasets, set_attrs
from ..metrics import postprocess
from ..status import RunStatus


def collect(run_files: list[str], mean: torch.Tensor) -> tuple[dict[str, np.ndarray], pd.DataFrame, str]:
    """Postprocessed snapshots of every successful run (none when every run aborted or failed);
    the per-run table; the abort criteria."""
    imgs, run, snap, cand, yy = [], [], [], [], []
    table, criteria = [], set()
    for path in run_files:
        r = read_runs(path)
        criteria.add(r.abort_criterion)
        for i, st in enumerate(r.status):
            table.append({**{k: v[i].item() for k, v in r.hparams.items()}, "status": RunStatus(st).label,
                          **{k: r.per_run[k][i].item() for k in ("stopped_at", "stationarity", "abort_score")}})
            if st != RunStatus.OK:
                continue
            s = torch.from_numpy(r.snapshots[i]).double()  # (S, 2m, d)
            for k, it in enumerate(r.snapshot_iterations):
                x = s[k].view(-1, *mean.shape)  # the mean image carries the image spec (C, H, W)
                ok = ~torch.isnan(x).flatten(1).any(1)
                imgs.append(postprocess(x[ok], mean).float())
                n = int(ok.sum())
                run += [int(r.hparams["run"][i])] * n
                snap += [int(it)] * n
                cand += torch.nonzero(ok).flatten().tolist()
                yy.append(r.y[ok.numpy()])
    if not table:
        raise UserError(f"no reconstruction runs in {run_files}")
    if not imgs:  # every run aborted or failed
        imgs, yy = [torch.zeros(0, *mean.shape)], [r.y[:0]]
    arrays = {"images": torch.cat(imgs).numpy(), "run": np.asarray(run, dtype=np.int64), "snapshot": np.asarray(snap, dtype=np.int64),
              "candidate": np.asarray(cand, dtype=np.int64), "y": np.concatenate(yy)}
    return arrays, pd.DataFrame(table), ",".join(sorted(criteria))


def run_counts(table: pd.DataFrame) -> dict[str, int]:
    return {"runs_total": len(table), **{f"runs_{s.label}": int((table.status == s.label).sum()) for s in RunStatus}}


def write_plain(path, arrays: dict[str, np.ndarray], table: pd.DataFrame, attrs: dict, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v, compression="gzip" if k == "images" else None)
            g = f.create_group("runs")
            for c in table.columns:
                col = table[c].to_numpy()
                g.create_dataset(c, data=col.astype("S") if col.dtype == object else col)
            set_attrs(f, dict(attrs, **run_counts(table)))


def read_plain(path) -> tuple[torch.Tensor, np.ndarray]:
    """The plain reconstructions and the run each comes from."""
    with open_h5(path, "plain reconstructions") as f:
        require_datasets(f, ["images", "run"])
        return torch.from_numpy(f["images"][()]), f["run"][()]


def read_plain_summary(path) -> tuple[np.ndarray, dict[str, int], str]:
    """Images, run counts and abort criterion (for the report)."""
    with open_h5(path, "plain reconstructions") as f:
        require_datasets(f, ["images"])
        counts = {k: int(f.attrs[k]) for k in ("runs_total", "runs_ok", "runs_aborted", "runs_failed")}
        return f["images"][()], counts, str(f.attrs.get("abort_criterion", "unknown"))
