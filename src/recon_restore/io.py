"""Atomic outputs, provenance metadata and small HDF5 helpers (docs/conventions.md).

Outputs are written under a temporary name in the destination directory and renamed
into place only when complete, so a killed job never leaves a file that looks done.
Existing outputs are never overwritten silently: callers pass ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import h5py
import numpy as np

from . import __version__
from .errors import UserError

log = logging.getLogger(__name__)


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse to replace an existing output unless ``overwrite`` is set."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise UserError(f"{p}: output already exists; refusing to overwrite it (pass --overwrite to replace it)")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    final = check_writable(path, overwrite)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"{tmp}: writer produced no file")
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def run_resumable(parts_dir: Path, jobs: list[tuple[str, Callable[[], Any]]],
                  save: Callable[[Path, Any], None], load: Callable[[Path], Any], fingerprint: str | None = None) -> list[Any]:
    """Run each (name, compute) once, keeping its result as ``parts_dir/name`` (written
    atomically); a restarted job loads finished parts instead of recomputing them.

    ``fingerprint`` (settings and code, see ``fingerprint.py``) is kept in
    ``parts_dir/FINGERPRINT``: parts left by a run with another fingerprint are discarded
    with one log line, never merged into this result."""
    marker = parts_dir / "FINGERPRINT"
    if parts_dir.exists() and fingerprint is not None:
        old = marker.read_text().strip() if marker.exists() else "none"
        if old != fingerprint:
            log.warning("%s: discarding partial results made with other settings or code (%s; now %s)", parts_dir, old, fingerprint)
            shutil.rmtree(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    if fingerprint is not None:
        with atomic_path(marker, overwrite=True) as tmp:
            tmp.write_text(fingerprint + "\n")
    out = []
    for name, compute in jobs:
        part = parts_dir / name
        if part.exists():
            log.info("resuming: %s already done", name)
            out.append(load(part))
            continue
        value = compute()
        with atomic_path(part, overwrite=True) as tmp:
            save(tmp, value)
        out.append(value)
    return out


def write_json(path: str | os.PathLike, obj: Any, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def read_json(path: str | os.PathLike) -> Any:
    p = require_file(path)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON ({e})") from None


def require_file(path: str | os.PathLike, what: str = "input file") -> Path:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: {what} does not exist")
    return p


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_md5(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def params_hash(cfg: Any) -> str:
    """Stable short hash of a (nested) params mapping."""
    text = json.dumps(cfg, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def provenance(cfg: Any = None, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    """Metadata stored with every artifact: params hash, package version, seed."""
    import torch

    out: dict[str, Any] = {
        "package": "recon-restore",
        "package_version": __version__,
        "torch_version": str(torch.__version__),
        "python": platform.python_version(),
        "created_unix": int(time.time()),
    }
    if cfg is not None:
        out["params_hash"] = params_hash(cfg)
    if seed is not None:
        out["seed"] = int(seed)
    out.update(extra)
    return out


def set_attrs(obj: h5py.HLObject, attrs: dict[str, Any]) -> None:
    for k, v in attrs.items():
        if isinstance(v, (dict, list, tuple)):
            obj.attrs[k] = json.dumps(v, default=_json_default)
        elif v is None:
            obj.attrs[k] = "null"
        elif isinstance(v, str):
            obj.attrs[k] = str(v)  # plain str (e.g. torch.__version__ is a str subclass)
        else:
            obj.attrs[k] = v


def open_h5(path: str | os.PathLike, what: str = "HDF5 file") -> h5py.File:
    """Open an HDF5 file for reading with a clear error for missing or corrupt files."""
    p = require_file(path, what)
    try:
        return h5py.File(p, "r")
    except OSError as e:
        raise UserError(f"{p}: not a readable HDF5 file ({e})") from None


def require_datasets(f: h5py.File, names: list[str]) -> None:
    missing = [n for n in names if n not in f]
    if missing:
        raise UserError(f"{f.filename}: missing HDF5 dataset(s) {missing}; found {sorted(f.keys())}")
