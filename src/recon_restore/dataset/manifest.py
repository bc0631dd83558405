"""The dataset manifest (DVC-tracked): every shard with its SHA-256 and counts."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UserError
from ..io import file_sha256, provenance, read_json, write_json
from .shards import verify_shard


def build_manifest(shards: list[str | Path], out: str | Path, cfg: dict | None = None, overwrite: bool = False) -> dict:
    """Verify every shard and write the manifest JSON (paths relative to the manifest)."""
    out = Path(out)
    entries = []
    for s in sorted(Path(p) for p in shards):
        counts = verify_shard(s)
        entries.append(
            {
                "path": os.path.relpath(s, out.parent),
                "sha256": file_sha256(s),
                "bytes": s.stat().st_size,
                **counts,
            }
        )
    doc = {
        "kind": "recon-restore/dataset-manifest",
        "shards": entries,
        "pairs": sum(e["pairs"] for e in entries),
        "targets": sum(e["targets"] for e in entries),
        "provenance": provenance(cfg),
    }
    write_json(out, doc, overwrite=overwrite)
    return doc


def load_manifest(path: str | Path, check: bool = True) -> tuple[dict, list[Path]]:
    """The manifest and its shard paths; with ``check`` the shard files' SHA-256 are compared."""
    path = Path(path)
    doc = read_json(path)
    if doc.get("kind") != "recon-restore/dataset-manifest":
        raise UserError(f"{path}: not a recon-restore dataset manifest (key 'kind' missing or wrong)")
    paths = []
    for e in doc["shards"]:
        p = (path.parent / e["path"]).resolve()
        if not p.is_file():
            raise UserError(f"{path}: shard {e['path']} listed in the manifest does not exist")
        if check and file_sha256(p) != e["sha256"]:
            raise UserError(f"{p}: shard does not match the SHA-256 in {path}; it was altered or is corrupt")
        paths.append(p)
    return doc, paths
