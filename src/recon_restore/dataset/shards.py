"""HDF5 shards of (noisy reconstruction, clean target) pairs (paper section 2).

One shard per dataset job. Schema (``schema_version`` 1)::

    /pairs/recon       uint8   (N, 3, 32, 32)  postprocessed snapshot x' (paper 5.1 scaling)
    /pairs/target_row  int32   (N,)            row in /targets of the pair's clean target
    /pairs/run         int64   (N,)            dataset run id
    /pairs/epoch       int32   (N,)            snapshot epoch (reconstruction iterations)
    /pairs/candidate   int32   (N,)            candidate index i of x'_i in the run
    /pairs/ssim        float32 (N,)            SSIM of this snapshot to its target
    /pairs/margin      float32 (N,)            best - runner-up SSIM at the accepting snapshot
    /targets/image     uint8   (T, 3, 32, 32)  augmented clean training image (every image of every run)
    /targets/aug_label float32 (T, 9)          augmentation label (augment.py)
    /targets/source_index int64 (T,)           index of the clean image in the pool (CIFAR-10 train)
    /targets/run       int64   (T,)            run id
    /runs/run, seed, status (``status.RunStatus``: 0 ok, 2 failed), mean (R, 3, 32, 32) float32 [0, 1],
          train_loss, min_margin, and the final objective parts stationarity, box,
          lam_penalty (hyperparameters: the preset's, hashed in the provenance), pairs

Targets are stored once per (run, image) and referenced by row, so the 11 snapshots of a
candidate share one copy. The root attributes hold provenance (params hash, package
version, seed), a SHA-256 of every dataset's bytes (``content_sha256``) and
``complete = 1``, written last. Files are written under a temporary name and renamed, so
a killed writer never leaves a shard that looks complete.

Storage (``dataset.compression``): ``null`` (default) writes every dataset contiguous and
uncompressed, which the sampler memory-maps for random access to single rows; ``gzip``
or ``lzf`` write chunks of ``CHUNK_ROWS`` rows with the shuffle filter. Measured on the
demo's shards, gzip saves only 8-9% on reconstructions (they are noise-like) and 23% on
targets, while every random read must then decompress a whole chunk.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import UserError
from ..io import atomic_path, set_attrs

SCHEMA = "recon-restore/shard"
SCHEMA_VERSION = 1
CHUNK_ROWS = 256
PAIR_FIELDS = {
    "recon": np.uint8,
    "target_row": np.int32,
    "run": np.int64,
    "epoch": np.int32,
    "candidate": np.int32,
    "ssim": np.float32,
    "margin": np.float32,
}
TARGET_FIELDS = {"image": np.uint8, "aug_label": np.float32, "source_index": np.int64, "run": np.int64}
RUN_FIELDS = {
    "run": np.int64,
    "seed": np.int64,
    "status": np.int8,
    "mean": np.float32,
    "train_loss": np.float32,
    "min_margin": np.float32,
    "stationarity": np.float32,
    "box": np.float32,
    "lam_penalty": np.float32,
    "pairs": np.int64,
}


@dataclass
class ShardData:
    pairs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    runs: dict[str, np.ndarray]

    @staticmethod
    def concat(parts: list["ShardData"]) -> "ShardData":
        """Concatenate parts, re-basing target rows."""
        pairs = {k: [] for k in PAIR_FIELDS}
        targets = {k: [] for k in TARGET_FIELDS}
        runs = {k: [] for k in RUN_FIELDS}
        offset = 0
        for p in parts:
            for k in PAIR_FIELDS:
                v = p.pairs[k]
                pairs[k].append(v + offset if k == "target_row" else v)
            for k in TARGET_FIELDS:
                targets[k].append(p.targets[k])
            for k in RUN_FIELDS:
                runs[k].append(p.runs[k])
            offset += len(p.targets["run"])
        cat = lambda d, spec: {k: np.concatenate(v).astype(spec[k]) for k, v in d.items()}  # noqa: E731
        return ShardData(cat(pairs, PAIR_FIELDS), cat(targets, TARGET_FIELDS), cat(runs, RUN_FIELDS))


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def write_shard(path: str | Path, data: ShardData, attrs: dict, overwrite: bool = False, compression: str | None = None) -> None:
    """Write a shard atomically with content checksums and ``complete = 1`` last."""
    digests = {}
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            for group, fields, values in (
                ("pairs", PAIR_FIELDS, data.pairs),
                ("targets", TARGET_FIELDS, data.targets),
                ("runs", RUN_FIELDS, data.runs),
            ):
                g = f.create_group(group)
                for name, dt in fields.items():
                    arr = np.ascontiguousarray(values[name], dtype=dt)
                    if compression and len(arr):
                        g.create_dataset(name, data=arr, chunks=(min(len(arr), CHUNK_ROWS),) + arr.shape[1:],
                                         compression=compression, shuffle=True)
                    else:
                        g.create_dataset(name, data=arr)  # contiguous: memory-mappable
                    digests[f"{group}/{name}"] = _digest(arr)
            set_attrs(f, dict(attrs, schema=SCHEMA, schema_version=SCHEMA_VERSION, content_sha256=digests))
            f.attrs["pairs"] = len(data.pairs["run"])
            f.attrs["targets"] = len(data.targets["run"])
            f.attrs["complete"] = 1


def open_shard(path: str | Path) -> h5py.File:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: shard does not exist")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise UserError(f"{p}: shard is truncated or not an HDF5 file ({e})") from None
    if f.attrs.get("schema") != SCHEMA or int(f.attrs.get("complete", 0)) != 1:
        f.close()
        raise UserError(f"{p}: not a complete recon-restore shard (schema/complete attributes missing)")
    return f


def memmap_or_dataset(f: h5py.File, name: str):
    """A read-only numpy memmap of a contiguous, uncompressed dataset (fast random access
    to single rows), or the h5py dataset itself for chunked or compressed storage."""
    d = f[name]
    if d.chunks is None and d.compression is None and d.size:
        offset = d.id.get_offset()
        if offset is not None:
            return np.memmap(f.filename, dtype=d.dtype, mode="r", offset=offset, shape=d.shape)
    return d


def read_shard(path: str | Path, with_recon: bool = True) -> ShardData:
    with open_shard(path) as f:
        pairs = {k: f["pairs"][k][()] for k in PAIR_FIELDS if with_recon or k != "recon"}
        targets = {k: f["targets"][k][()] for k in TARGET_FIELDS}
        runs = {k: f["runs"][k][()] for k in RUN_FIELDS}
    return ShardData(pairs, targets, runs)


def verify_shard(path: str | Path) -> dict:
    """Re-read every dataset and compare with the stored SHA-256; raise UserError naming the shard."""
    p = Path(path)
    try:
        with open_shard(p) as f:
            expected = json.loads(f.attrs["content_sha256"])
            for name, digest in expected.items():
                try:
                    arr = f[name][()]
                except (OSError, KeyError) as e:
                    raise UserError(f"{p}: dataset '{name}' is unreadable ({e}); the shard is corrupt") from None
                if _digest(arr) != digest:
                    raise UserError(f"{p}: dataset '{name}' does not match its checksum; the shard was altered or is corrupt")
            return {"pairs": int(f.attrs["pairs"]), "targets": int(f.attrs["targets"])}
    except UserError:
        raise
    except Exception as e:  # h5py raises assorted errors on damaged files
        raise UserError(f"{p}: shard is corrupt ({type(e).__name__}: {e})") from None
