"""What a result was made with: the hash of the package code a stage runs and of the
settings it read (docs/conventions.md).

``code_hash`` is declared as a rule param, so Snakemake reruns a rule when its code
changes. ``fingerprint`` is stored with every resumable state (training state, the
``.parts`` of shard and attack jobs): a state made with other settings or code is never
resumed into a result that claims the new ones.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from .io import params_hash

PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def code_hash(*subpackages: str) -> str:
    """SHA-256 of the package sources a stage runs (its subpackages plus the shared
    top-level modules and the params schema)."""
    h = hashlib.sha256()
    files = sorted(PACKAGE.glob("*.py")) + sorted(PACKAGE.glob("schemas/*.yaml"))
    for sub in subpackages:
        files += sorted((PACKAGE / sub).rglob("*.py"))
    for f in files:
        h.update(str(f.relative_to(PACKAGE)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def fingerprint(settings: Any, *subpackages: str) -> str:
    """Settings hash + code hash, e.g. ``params 1a2b... code 3c4d...``."""
    return f"params {params_hash(settings)} code {code_hash(*subpackages)}"
