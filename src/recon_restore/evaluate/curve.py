"""Learning curves of a restorer's excess good count (issue: restorers that learn within the
demo's budget; paper section 5.1.1's count, set against the null control).

For every (dataset manifest, training steps, seed) the study runs the commands the workflow
runs: ``restorers train`` on that manifest with ``train.steps`` (and BF-DnCNN's halving
schedule scaled with it: halve after 80%, then every 10%), ``evaluate restore`` of the plain
reconstructions and ``evaluate match`` against the target and the null galleries. Each
setting's params file is written next to its outputs, so every row is traceable; a setting
whose match files exist is not run again (a killed study resumes); one whose params file
differs from the new one is an error, never silently reused or overwritten.

The plain reconstructions' own counts are the first row (the bar to beat). Rows: data
label, pairs, distinct pool images with a pair, steps, seed, method, good, null mean, excess.
"""

from __future__ import annotations

import copy
import csv
import logging
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import yaml

from ..errors import UserError
from ..io import atomic_path, open_h5, read_json
from .. import methods
from ..methods import section_of

log = logging.getLogger(__name__)

CHOICES = [r for r in methods.TRAINED if not methods.adapted_from(r)]  # restorers trained by `restorers train`


@dataclass
class Row:
    data: str
    pairs: int
    images: int
    steps: int
    seed: int
    method: str
    good: int
    null: float
    excess: float


def dataset_size(manifest: str | Path) -> tuple[int, int]:
    """Pairs and distinct pool images (``targets/source_index``) with at least one pair."""
    doc = read_json(manifest)
    if doc.get("kind") != "recon-restore/dataset-manifest":
        raise UserError(f"{manifest}: not a recon-restore dataset manifest (key 'kind' missing or wrong)")
    seen: set[int] = set()
    for e in doc["shards"]:
        with open_h5(Path(manifest).parent / e["path"], "dataset shard") as f:
            rows = np.unique(f["pairs/target_row"][()])
            seen |= set(f["targets/source_index"][()][rows].tolist())
    return int(doc["pairs"]), len(seen)


def setting_params(doc: dict, preset: str, restorer: str, steps: int, seed: int) -> dict:
    """The params document with the restorer's training length and the preset's seed replaced."""
    d = copy.deepcopy(doc)
    p = d["presets"][preset]
    p["seed"] = int(seed)
    train = p["restorers"][section_of(restorer)]["train"]
    train["steps"] = int(steps)
    train["checkpoint_every"] = 0
    if "halve_after" in train:
        train["halve_after"], train["halve_every"] = int(0.8 * steps), max(1, int(0.1 * steps))
    return d


def _run(*argv) -> None:
    """One workflow command in its own process (as Snakemake runs it)."""
    argv = [str(a) for a in argv]
    if subprocess.run([sys.executable, "-m", "recon_restore", *argv]).returncode != 0:
        raise UserError(f"evaluate curve: `recon-restore {' '.join(argv[:2])}` failed (arguments {argv[2:]})")


def run_curve(params: str | Path, preset: str | None, restorer: str, manifests: dict[str, str], steps: list[int],
              seeds: list[int], plain: str, target: str, galleries: str, out_dir: str | Path) -> list[Row]:
    from .match_file import read_match

    if restorer not in CHOICES:
        raise UserError(f"evaluate curve --method {restorer!r}: expected one of {', '.join(CHOICES)}")
    doc = yaml.safe_load(Path(params).read_text())
    preset = preset or doc.get("preset")
    if preset not in doc.get("presets", {}):
        raise UserError(f"{params}: no preset {preset!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    threshold = doc["presets"][preset]["evaluate"]["good_threshold"]
    rows: list[Row] = []
    pm = out / "match-plain.h5"
    if not pm.is_file():
        _run("evaluate", "match", "--params", params, "--preset", preset, "--method", "plain", "--target", target,
             "--plain", plain, "--galleries", galleries, "--out", pm)
    c = read_match(pm).counts(threshold, n_boot=0)
    rows.append(Row("-", 0, 0, 0, 0, "plain", int(c["good"]), round(float(c["null_mean"]), 2), round(float(c["excess"]), 2)))
    for label, manifest in manifests.items():
        pairs, images = dataset_size(manifest)
        for n in steps:
            for seed in seeds:
                tag = f"{restorer}-{label}-{n}-s{seed}"
                pf = out / f"params-{tag}.yaml"
                text = yaml.safe_dump(setting_params(doc, preset, restorer, n, seed), sort_keys=False)
                if pf.is_file() and pf.read_text() != text:
                    raise UserError(f"{pf}: this setting was run with other params; nothing was overwritten "
                                    f"(use another --out-dir, or remove {out} to start again)")
                pf.write_text(text)
                ck, restored = out / f"{tag}.pt", out / f"restored-{tag}.h5"
                matches = {m: out / f"match-{m}-{label}-{n}-s{seed}.h5" for m in methods.methods_of(restorer)}
                if not all(p.is_file() for p in matches.values()):
                    if not ck.is_file():
                        _run("restorers", "train", "--params", pf, "--preset", preset, "--method", restorer,
                             "--manifest", manifest, "--out", ck, "--history", out / f"{tag}-history.csv", "--overwrite")
                    _run("evaluate", "restore", "--params", pf, "--preset", preset, "--method", restorer, "--plain", plain,
                         "--checkpoint", ck, "--out", restored, "--overwrite")
                    for m, mf in matches.items():
                        _run("evaluate", "match", "--params", pf, "--preset", preset, "--method", m, "--target", target,
                             "--plain", plain, "--galleries", galleries, "--restored", restored, "--out", mf, "--overwrite")
                for m, mf in matches.items():
                    c = read_match(mf).counts(threshold, n_boot=0)
                    rows.append(Row(label, pairs, images, n, seed, m, int(c["good"]), round(float(c["null_mean"]), 2),
                                    round(float(c["excess"]), 2)))
                    log.info("curve %s", asdict(rows[-1]))
                write_rows(out / "curve.csv", rows)
    return rows


def write_rows(path: Path, rows: list[Row]) -> None:
    """``curve.csv``, replaced atomically after every setting (it only ever gains rows)."""
    with atomic_path(path, overwrite=True) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(Row.__dataclass_fields__))
        w.writeheader()
        w.writerows(asdict(r) for r in rows)


def table(rows: list[Row]) -> str:
    """Markdown: per data size, steps and method, the mean and range over seeds."""
    keys = sorted({(r.pairs, r.data, r.images, r.steps, r.method) for r in rows})
    lines = ["| Data | Pairs (images) | Steps | Method | Seeds | Good | Null | Excess: mean (range) |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for pairs, data, images, steps, method in keys:
        sel = [r for r in rows if (r.data, r.steps, r.method) == (data, steps, method)]
        ex = np.array([r.excess for r in sel])
        lines.append(f"| {data} | {pairs} ({images}) | {steps} | {method} | {len(sel)} | "
                     f"{np.mean([r.good for r in sel]):.1f} | {np.mean([r.null for r in sel]):.1f} | "
                     f"{ex.mean():+.1f} ({ex.min():+.1f} to {ex.max():+.1f}) |")
    return "\n".join(lines)
