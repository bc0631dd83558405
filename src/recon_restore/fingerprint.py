"""What a result was made with: the hash of the package code a stage runs and of the
settings it read (docs/conventions.md).

``command_hash`` (the sources a command module imports) is declared as a rule param, so
Snakemake reruns a rule when its code changes. ``fingerprint`` is stored with every resumable state (training state, the
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


def fingerprint(settings: Any, stage: str) -> str:
    """Settings hash + the hash of the code the stage's commands run, e.g. ``params 1a2b... code 3c4d...``."""
    return f"params {params_hash(settings)} code {command_hash(f'recon_restore.{stage}.cli')}"


def _module_file(name: str) -> Path | None:
    rel = name.split(".")[1:]
    base = PACKAGE.joinpath(*rel)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    f = base.with_suffix(".py")
    return f if f.is_file() else None


@lru_cache(maxsize=None)
def import_closure(module: str) -> tuple[Path, ...]:
    """Every package source file that ``module`` (e.g. ``recon_restore.evaluate.cli``)
    imports, directly or not, at top level or inside functions (read from the source,
    nothing is imported)."""
    import ast

    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        f = _module_file(name)
        if f is None:
            continue
        seen[name] = f
        parts = name.split(".")
        pkg = parts if f.name == "__init__.py" else parts[:-1]
        for parent in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
            todo.append(".".join(parts[:parent]))
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("recon_restore")]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg[: len(pkg) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                elif node.module and node.module.startswith("recon_restore"):
                    mod = node.module
                else:
                    continue
                todo.append(mod)
                todo += [f"{mod}.{a.name}" for a in node.names]  # "from . import x" may name a module
    return tuple(sorted(set(seen.values())))


def closure_dirs(*modules: str) -> list[str]:
    """The closure of ``modules`` as repository paths: a subpackage's folder, or a top-level module file."""
    out = set()
    for m in modules:
        for f in import_closure(m):
            rel = f.relative_to(PACKAGE)
            out.add(f"src/recon_restore/{rel.parts[0]}" if len(rel.parts) > 1 else f"src/recon_restore/{rel}")
    return sorted(out)


@lru_cache(maxsize=None)
def command_hash(*modules: str) -> str:
    """SHA-256 of every source file the command modules import (their import closure).
    The rules declare it as a param, so Snakemake reruns a rule when its code changes; DVC
    tracks the same files (``closure_dirs``; a test keeps dvc.yaml in step)."""
    h = hashlib.sha256()
    files = sorted({f for m in modules for f in import_closure(m)})
    for f in files:
        h.update(str(f.relative_to(PACKAGE)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
