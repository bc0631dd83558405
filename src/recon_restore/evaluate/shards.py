"""Restoration in shards (paper section 5.1.1 at the paper's scale: about a million plain
reconstructions, each restored 20 times with 35 network evaluations).

Shard ``j`` holds the plain reconstructions of the evaluation runs ``j * R .. (j + 1) * R - 1``
(``evaluate.restore_shard_runs``: R per restorer, e.g. ``{edm: 2}``; a restorer not named
is restored in one job; a restorer whose class is not ``shardable`` cannot be: a classical
denoiser's blind calibration reads every reconstruction). The shard count is known from the
params before any run exists, so the workflow plans one restoration job per shard. Every
restoration is seeded by the reconstruction's row in ``plain.h5`` (``restorers.restore``),
so the restored images do not depend on the shard size. A shard's file (a *part*) holds
its rows (``rows``) and the restorer's datasets; ``merge`` streams the parts, one at a
time, into the restored file that matching and the report read, after checking that they
cover every row exactly once.
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import torch

from ..errors import UserError
from ..io import atomic_path, open_h5, require_datasets, set_attrs


def _refuse_unshardable(restorer: str, where: str) -> None:
    from .. import methods

    if not methods.restorer_class(restorer).shardable:
        raise UserError(f"{where}: {restorer} cannot be restored in shards (a classical denoiser's blind calibration "
                        f"reads every reconstruction); restore {restorer} in one job")


def shard_runs(ev: dict, restorer: str) -> int:
    """R, the evaluation runs per restoration shard of ``restorer`` (0: one job)."""
    r = int((ev.get("restore_shard_runs") or {}).get(restorer, 0))
    if r:
        _refuse_unshardable(restorer, f"params evaluate.restore_shard_runs.{restorer}")
    return r


def restorer_rows(ev: dict, restorer: str, run: np.ndarray, shard: int | None) -> np.ndarray:
    """The plain reconstructions one restoration job of ``restorer`` restores: all of them, or
    those of ``shard``."""
    if shard is None:
        return np.arange(len(run))
    _refuse_unshardable(restorer, f"evaluate restore --restorer {restorer} --shard")
    return shard_rows(run, shard, shard_runs(ev, restorer), ev["runs"])


def restorer_shards(ev: dict, restorer: str) -> int:
    """Restoration jobs of ``restorer``."""
    return n_shards(ev["runs"], shard_runs(ev, restorer))


def n_shards(total_runs: int, runs_per_shard: int) -> int:
    return 1 if not runs_per_shard else max(1, math.ceil(total_runs / runs_per_shard))


def shard_rows(run: np.ndarray, shard: int, runs_per_shard: int, total_runs: int) -> np.ndarray:
    """Rows of the plain reconstructions (their ``run`` ids) that shard ``shard`` restores."""
    k = n_shards(total_runs, runs_per_shard)
    if not 0 <= shard < k:
        raise UserError(f"--shard {shard}: the plain reconstructions of {total_runs} runs make {k} shards of "
                        f"{runs_per_shard or total_runs} runs (params evaluate.restore_shard_runs); expected 0..{k - 1}")
    if k == 1:
        return np.arange(len(run))
    return np.nonzero(np.asarray(run) // runs_per_shard == shard)[0]


def read_rows(path, key: str, rows: np.ndarray, what: str = "plain reconstructions") -> torch.Tensor:
    """``key`` at ``rows`` (sorted) of an HDF5 file, without reading the others."""
    with open_h5(path, what) as f:
        require_datasets(f, [key])
        d = f[key]
        if len(rows) == d.shape[0]:
            return torch.from_numpy(d[()])
        if len(rows) == 0:
            return torch.from_numpy(np.zeros((0, *d.shape[1:]), d.dtype))
        return torch.from_numpy(d[np.asarray(rows)])


def merge(parts: list, n_rows: int, out, overwrite: bool = False) -> None:
    """Write the parts' datasets, in row order, to ``out`` (one part in memory at a time)."""
    seen = np.zeros(n_rows, dtype=np.int64)
    layout: dict[str, tuple] = {}
    for p in parts:
        with open_h5(p, "restoration part") as f:
            require_datasets(f, ["rows"])
            rows = f["rows"][()]
            if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
                raise UserError(f"{p}: rows outside 0..{n_rows - 1}; the part is of other plain reconstructions")
            np.add.at(seen, rows, 1)
            for k in f:
                if k != "rows":
                    layout.setdefault(k, (f[k].shape[1:], f[k].dtype, f[k].compression))
                    if f[k].shape[0] != len(rows):
                        raise UserError(f"{p}: dataset {k} has {f[k].shape[0]} rows, 'rows' has {len(rows)}")
    if (seen != 1).any():
        bad = np.nonzero(seen != 1)[0]
        raise UserError(f"{len(bad)} plain reconstructions (first: row {bad[0]}) are restored {seen[bad[0]]} times in the "
                        f"{len(parts)} parts; each must be in exactly one (parts of one shard size, all shards)")
    with atomic_path(out, overwrite) as tmp:
        with h5py.File(tmp, "w") as fo:
            for k, (shape, dtype, comp) in layout.items():
                fo.create_dataset(k, shape=(n_rows, *shape), dtype=dtype, compression=comp)
            for i, p in enumerate(parts):
                with h5py.File(p, "r") as f:
                    rows = f["rows"][()]
                    if i == 0:
                        set_attrs(fo, {k: v for k, v in f.attrs.items()})
                    if len(rows) == 0:
                        continue
                    at = slice(rows[0], rows[-1] + 1) if np.all(np.diff(rows) == 1) else rows  # contiguous: one slab
                    for k in layout:
                        fo[k][at] = f[k][()]
            fo.attrs["parts"] = len(parts)
