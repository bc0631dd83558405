"""``params.yaml``: the single source of tunables, validated against one JSON schema.

The file holds a ``preset`` switch and a ``presets`` mapping (``paper``, ``cifar-small``,
``demo``, or a user's own). A preset may name a ``base`` preset and state only its
differences: mappings merge key by key, anything else (numbers, strings, lists) replaces
the base's value. ``resolve`` writes every preset out in full; that resolved document is
what the stages read, what validation checks and what DVC tracks (``params.resolved.yaml``,
written by ``recon-restore params resolve``). Validation turns schema violations into one
clear line naming the file, the key path and what was expected (with a "did you mean" for
mistyped keys).
"""

from __future__ import annotations

import copy
import difflib
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

DEFAULT_PARAMS = "params.yaml"
BASE_KEY = "base"
RESOLVED_HEADER = (
    "# Generated from params.yaml by `recon-restore params resolve` (also the first DVC stage):\n"
    "# every preset written out in full, its `base` merged in. Do not edit; DVC tracks these values.\n"
)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = resources.files("recon_restore").joinpath("schemas/params.schema.yaml").read_text()
    return yaml.safe_load(text)


def _path_str(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(error, source: str) -> str:
    """One clear line for a jsonschema ValidationError."""
    where = _path_str(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted((error.schema.get("properties") or {}).keys())
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        parts = []
        for key in extra:
            full = f"{where}.{key}" if error.absolute_path else key
            hint = difflib.get_close_matches(key, allowed, n=1)
            msg = f"unknown key '{full}'"
            if hint:
                msg += f" (did you mean '{hint[0]}'?)"
            parts.append(msg)
        return f"{source}: " + "; ".join(parts) + f"; expected keys: {', '.join(allowed)}"
    if error.validator == "required":
        return f"{source}: key '{where}' is missing a required entry: {error.message}"
    if error.validator == "enum":
        return f"{source}: key '{where}': value {error.instance!r} is not one of {error.validator_value}"
    return f"{source}: key '{where}': {error.message}"


def merge(base: Any, delta: Any) -> Any:
    """``delta`` over ``base``: mappings merge key by key; any other value replaces."""
    if isinstance(base, dict) and isinstance(delta, dict):
        out = {k: copy.deepcopy(v) for k, v in base.items() if k not in delta}
        out.update({k: merge(base.get(k), v) for k, v in delta.items()})
        return {k: out[k] for k in list(base) + [k for k in delta if k not in base]}  # the base's key order
    return copy.deepcopy(delta)


def _chains(doc: dict, source: str) -> dict[str, list[str]]:
    """Each preset's chain of bases, the preset itself last (one clear error for an unknown
    base, a cycle or a malformed ``presets``)."""
    presets = doc.get("presets")
    if not isinstance(presets, dict) or not presets:
        raise UserError(f"{source}: key 'presets': expected a mapping of preset names to presets")
    chains = {}
    for name in presets:
        chain, node = [], name
        while True:
            if not isinstance(presets[node], dict):
                raise UserError(f"{source}: key 'presets.{node}': expected a mapping, got {type(presets[node]).__name__}")
            chain.insert(0, node)
            base = presets[node].get(BASE_KEY)
            if base is None:
                break
            if base not in presets:
                hint = difflib.get_close_matches(str(base), list(presets), n=1)
                raise UserError(f"{source}: key 'presets.{node}.{BASE_KEY}': {base!r} is not a preset"
                                + (f" (did you mean '{hint[0]}'?)" if hint else "") + f"; defined: {', '.join(presets)}")
            if base in chain:
                raise UserError(f"{source}: key 'presets.{node}.{BASE_KEY}': {' -> '.join(chain[::-1] + [base])} is a cycle")
            node = base
        chains[name] = chain
    return chains


def resolve(doc: dict, source: str = DEFAULT_PARAMS) -> dict:
    """The document with every preset written out in full (``base`` merged in and removed)."""
    presets = doc["presets"]
    out = {}
    for name, chain in _chains(doc, source).items():
        cfg: dict = {}
        for node in chain:
            cfg = merge(cfg, {k: v for k, v in presets[node].items() if k != BASE_KEY})
        out[name] = cfg
    return dict(doc, presets=out)


def resolved_text(doc: dict, source: str = DEFAULT_PARAMS) -> str:
    """``params.resolved.yaml``'s text: the validated document, every preset in full."""
    validate_params(doc, source)
    return RESOLVED_HEADER + yaml.safe_dump(resolve(doc, source), sort_keys=False, width=120, default_flow_style=None)


def resolved_path(path: str | os.PathLike = DEFAULT_PARAMS) -> Path:
    p = Path(path)
    return p.with_name(p.stem + ".resolved" + p.suffix)


def write_resolved(doc: dict, source: str = DEFAULT_PARAMS, check: bool = False) -> tuple[Path, bool]:
    """Write ``<params>.resolved.yaml`` beside ``source`` if its text differs (atomically);
    with ``check``, write nothing. Returns the path and whether it was out of date."""
    path = resolved_path(source)
    text = resolved_text(doc, source)
    stale = not path.is_file() or path.read_text() != text
    if stale and not check:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path, stale


def validate_params(doc: Any, source: str = DEFAULT_PARAMS) -> None:
    """Raise UserError with one clear line if ``doc`` does not match the params schema.

    Each preset is checked as resolved, bases first, so that a mistake in ``paper`` is
    reported at ``paper`` and not at a preset that inherits it."""
    import jsonschema

    if not isinstance(doc, dict):
        raise UserError(f"{source}: expected a YAML mapping at the top level, got {type(doc).__name__}")
    chains = _chains(doc, source)
    full = resolve(doc, source)
    validator = jsonschema.Draft202012Validator(schema())

    def check(d: dict) -> None:
        errors = sorted(validator.iter_errors(d), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
        if errors:
            # Prefer errors about keys (most common: typos) and the shallowest location.
            first = next((e for e in errors if e.validator == "additionalProperties"), errors[0])
            raise UserError(_describe(first, source))

    for name in sorted(full["presets"], key=lambda n: len(chains[n])):
        check(dict(full, presets={name: full["presets"][name]}))
        _check_cross_fields(full["presets"][name], f"presets.{name}", source)
    preset = doc.get("preset")
    if preset not in doc.get("presets", {}):
        raise UserError(
            f"{source}: key 'preset': {preset!r} is not defined under 'presets' "
            f"(defined: {', '.join(doc.get('presets', {}))})"
        )


def _check_cross_fields(cfg: dict, where: str, source: str) -> None:
    """Rules that tie one key to another (the schema checks each key alone)."""
    def fail(key: str, msg: str) -> None:
        raise UserError(f"{source}: key '{where}.{key}': {msg}")

    src = cfg["data"]["source"]
    if src not in cfg["data"] or (src == "cifar10" and "cifair" not in cfg["data"]):
        fail("data", f"source {src!r} needs the section 'data.{src}'" + (" and 'data.cifair'" if src == "cifar10" else ""))
    for sec in ("attack.reconstruct", "evaluate.reconstruct"):
        a, b = sec.split(".")
        rc = cfg[a][b]
        snaps, it = list(rc["snapshots"]), rc["iterations"]
        if any(not 1 <= s <= it for s in snaps):
            fail(f"{sec}.snapshots", f"{[s for s in snaps if not 1 <= s <= it]} outside 1..iterations ({it})")
        if snaps != sorted(set(snaps)):
            fail(f"{sec}.snapshots", f"{snaps} must be sorted and without repeats")
    if cfg["evaluate"]["cross_attack"]["enabled"] and cfg["evaluate"]["cross_attack"]["method"] == cfg["attack"].get("method", "kkt_binary"):
        fail("evaluate.cross_attack.method", f"{cfg['attack'].get('method', 'kkt_binary')!r} is the preset's own attack (attack.method); "
             "the study needs another")
    ab = cfg["evaluate"]["reconstruct"]["abort"]
    it = cfg["evaluate"]["reconstruct"]["iterations"]
    if ab["criterion"] != "none" and not 1 <= ab["at"] <= it:
        fail("evaluate.reconstruct.abort.at", f"{ab['at']} outside 1..iterations ({it})")
    for sec in ("dataset", "evaluate"):
        c = cfg[sec]
        if c["runs_per_batch"] > c["runs_per_job"]:
            fail(f"{sec}.runs_per_batch", f"{c['runs_per_batch']} is more than runs_per_job ({c['runs_per_job']})")
    d = cfg["dataset"]
    for k in ("phase1_runs", "phase2_runs", "wave_runs"):
        if d[k] % d["runs_per_job"]:
            fail(f"dataset.{k}", f"{d[k]} is not a multiple of runs_per_job ({d['runs_per_job']})")
    rb = cfg["robustness"]["bounded"]
    if list(rb["budgets"]) != sorted(set(rb["budgets"])):
        fail("robustness.bounded.budgets", f"{rb['budgets']} must be increasing, without repeats")
    if rb["default_budget"] not in rb["budgets"]:
        fail("robustness.bounded.default_budget", f"{rb['default_budget']} is not one of the budgets {rb['budgets']}")
    for name, c in cfg["restorers"].items():
        if isinstance(c, dict) and "block" in c and c["stride"] % c["block"]:
            fail(f"restorers.{name}.block", f"{c['block']}: the stride ({c['stride']}) must be a multiple of it")
    for kind, c in cfg["restorers"]["n2n"]["corruptions"].items():
        for k, v in c.items():
            if isinstance(v, list) and v[0] > v[1]:
                fail(f"restorers.n2n.corruptions.{kind}.{k}", f"range {v} must be [low, high] with low <= high")


def load_doc(path: str | os.PathLike = DEFAULT_PARAMS) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: params file does not exist")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML ({e})") from None
    return doc


def load_params(path: str | os.PathLike = DEFAULT_PARAMS, preset: str | None = None) -> "Params":
    doc = load_doc(path)
    if preset is not None and isinstance(doc, dict):
        doc = dict(doc, preset=preset)
    validate_params(doc, str(path))
    return Params(doc, str(path))


class Params:
    """The selected preset of a validated params document."""

    def __init__(self, doc: dict[str, Any], source: str = DEFAULT_PARAMS):
        self.doc = doc
        self.source = source
        self.preset = doc["preset"]
        self.cfg: dict[str, Any] = resolve(doc, source)["presets"][self.preset]

    @property
    def seed(self) -> int:
        return int(self.cfg["seed"])

    @property
    def spec(self):
        """The image spec of this preset's data source (``data.sources``)."""
        from .data.sources import spec_of

        return spec_of(self.cfg["data"])

    def section(self, *keys: str) -> dict[str, Any]:
        node: Any = self.cfg
        for i, k in enumerate(keys):
            if not isinstance(node, dict) or k not in node:
                where = ".".join(("presets", self.preset) + keys[: i + 1])
                raise UserError(f"{self.source}: key '{where}' is missing")
            node = node[k]
        return node
