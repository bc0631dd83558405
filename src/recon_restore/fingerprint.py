"""What a result was made with: the hash of the package code a stage runs and of the
settings it read (docs/conventions.md).

``command_hash`` (the sources one command runs: its function's imports and the restorer's
module) is declared as a rule param, so Snakemake reruns a rule when the code it runs
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


def fingerprint(settings: Any, stage: str, verb: str, module: str | None = None) -> str:
    """Settings hash + the hash of the code the command runs (with ``module``: the restorer's
    implementation, ``methods.kind_module``), e.g. ``params 1a2b... code 3c4d...``."""
    return f"params {params_hash(settings)} code {command_hash(stage, verb, module)}"


def _module_file(name: str, root: Path = PACKAGE) -> Path | None:
    rel = name.split(".")[1:]
    base = root.joinpath(*rel)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    f = base.with_suffix(".py")
    return f if f.is_file() else None


def _imports(nodes, name: str, is_pkg: bool) -> list[str]:
    """The package modules that the import statements among ``nodes`` (AST nodes of module
    ``name``) name, and the parents whose ``__init__`` importing them runs."""
    import ast

    parts = name.split(".")
    pkg = parts if is_pkg else parts[:-1]
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.startswith("recon_restore")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("recon_restore"):
                mod = node.module
            else:
                continue
            out.append(mod)
            out += [f"{mod}.{a.name}" for a in node.names]  # "from . import x" may name a module
    return out


def _closure(start: list[str], root: Path) -> tuple[Path, ...]:
    import ast

    seen: dict[str, Path] = {}
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        f = _module_file(name, root)
        if f is None:
            continue
        seen[name] = f
        parts = name.split(".")
        for parent in range(1, len(parts)):  # importing a.b.c runs a/__init__ and a/b/__init__
            todo.append(".".join(parts[:parent]))
        todo += _imports(ast.walk(ast.parse(f.read_text())), name, f.name == "__init__.py")
    return tuple(sorted(set(seen.values())))


@lru_cache(maxsize=None)
def import_closure(module: str, root: Path = PACKAGE) -> tuple[Path, ...]:
    """Every package source file that ``module`` (e.g. ``recon_restore.evaluate.cli``)
    imports, directly or not, at top level or inside functions (read from the source,
    nothing is imported)."""
    return _closure([module], root)


def _command_functions(tree) -> dict[str, str]:
    """verb -> the function its parser runs, read from ``add_parser("verb")`` followed by
    ``set_defaults(func=name)`` in the CLI module."""
    import ast

    out, verb = {}, None
    calls = sorted((n for n in ast.walk(tree) if isinstance(n, ast.Call)), key=lambda n: (n.lineno, n.col_offset))
    for node in calls:  # in source order
        if isinstance(node.func, ast.Attribute):
            if node.func.attr == "add_parser" and node.args and isinstance(node.args[0], ast.Constant):
                verb = node.args[0].value
            elif node.func.attr == "set_defaults" and verb:
                for kw in node.keywords:
                    if kw.arg == "func" and isinstance(kw.value, ast.Name):
                        out[verb] = kw.value.id
    return out


@lru_cache(maxsize=None)
def command_closure(stage: str, verb: str, module: str | None = None, root: Path = PACKAGE) -> tuple[Path, ...]:
    """The source files one command runs: ``recon-restore <stage> <verb>``'s function (the
    ``func`` its parser in ``<stage>/cli.py`` sets) with the module-level imports of its CLI module,
    the imports inside the function and inside the module's functions it calls, and what
    those import in turn; with ``module``, also that module's closure (a restorer's
    implementation, ``methods.kind_module``; an attack's or a data source's, ``attacks.module_of``
    and ``sources.module_of``: a registry names it by a string, so no import statement does;
    a tuple names several)."""
    import ast

    cli = f"recon_restore.{stage}.cli"
    f = _module_file(cli, root)
    if f is None:
        raise KeyError(f"no command module {cli}")
    tree = ast.parse(f.read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    entry = _command_functions(tree).get(verb)
    if entry not in funcs:
        raise KeyError(f"{f}: no function for `recon-restore {stage} {verb}`")
    done, todo, nodes = set(), [entry], list(top)
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        for node in ast.walk(funcs[name]):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                nodes.append(node)
            elif isinstance(node, ast.Name) and node.id in funcs:
                todo.append(node.id)
    start = [cli.rsplit(".", 1)[0]] + _imports(nodes, cli, False)
    files = set(_closure(start, root)) | {f}
    for m in (module,) if isinstance(module, str) else (module or ()):
        files |= set(_closure([m], root))
    return tuple(sorted(files))


def closure_dirs(files, root: Path = PACKAGE) -> list[str]:
    """Source files as repository paths: a subpackage's folder, or a top-level module file."""
    out = set()
    for f in files:
        rel = f.relative_to(root)
        out.add(f"src/recon_restore/{rel.parts[0]}" if len(rel.parts) > 1 else f"src/recon_restore/{rel}")
    return sorted(out)


def hash_files(files, root: Path = PACKAGE) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=None)
def command_hash(stage: str, verb: str, module: str | None = None, root: Path = PACKAGE) -> str:
    """SHA-256 of every source file one command runs (``command_closure``). Each rule declares
    it as a param, so Snakemake reruns a rule when the code its command runs changes, and no
    other; DVC tracks the union over a stage's commands (``closure_dirs``; a test keeps
    dvc.yaml in step)."""
    return hash_files(command_closure(stage, verb, module, root), root)
