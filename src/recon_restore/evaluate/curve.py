"""Learning curves of a restorer's excess good count (paper section 5.1.1's count, set
against the null control): how much data and training a learned restorer needs.

The workflow runs the study (``evaluate.curve``; rules ``evaluate_curve_*`` in
``workflow/rules/evaluate.smk``): for every (dataset, steps, seed) it trains the restorer
with ``restorers train --steps --seed`` on a manifest of part of the preset's shards
(``subset``), restores the plain reconstructions and matches them, each one job with
tracked outputs. This module picks the shards and turns the match files into the table.
The plain reconstructions' own counts are the first row (the bar to beat). Rows: data
label, pairs, distinct pool images with a pair, steps, seed, method, good, null mean, excess.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import atomic_path, open_h5, read_json

log = logging.getLogger(__name__)


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


def subset(shards: list, fraction: float) -> list:
    """``round(fraction x n)`` of the dataset's ``n`` shards (at least one), spread evenly over
    the list, so that both phases of the dataset (paper section 2) keep their proportion."""
    k = max(1, min(len(shards), round(fraction * len(shards))))
    return [shards[i] for i in np.linspace(0, len(shards) - 1, k).round().astype(int)]


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


@dataclass(frozen=True)
class Setting:
    """One match file of the study: ``LABEL:STEPS:SEED:METHOD=PATH`` on the command line."""
    data: str
    steps: int
    seed: int
    method: str
    path: str

    @classmethod
    def parse(cls, text: str) -> "Setting":
        key, sep, path = text.partition("=")
        parts = key.split(":")
        if not sep or not path or len(parts) != 4 or not all(parts) or not parts[1].isdigit() or not parts[2].isdigit():
            raise UserError(f"evaluate curve --match {text!r}: expected LABEL:STEPS:SEED:METHOD=PATH")
        return cls(parts[0], int(parts[1]), int(parts[2]), parts[3], path)


def collect(plain_match: str, manifests: dict[str, str], settings: list[Setting], threshold: float) -> list[Row]:
    """The table's rows: plain first, then every setting in (data, steps, seed, method) order."""
    from .match_file import read_match

    unknown = sorted({s.data for s in settings} - set(manifests))
    if unknown:
        raise UserError(f"evaluate curve: no --manifest for the data label(s) {', '.join(unknown)}")
    c = read_match(plain_match).counts(threshold, n_boot=0)
    rows = [Row("-", 0, 0, 0, 0, "plain", int(c["good"]), round(float(c["null_mean"]), 2), round(float(c["excess"]), 2))]
    sizes = {label: dataset_size(m) for label, m in manifests.items()}
    for s in sorted(settings, key=lambda s: (sizes[s.data][0], s.data, s.steps, s.seed, s.method)):
        m = read_match(s.path)
        if m.method != s.method:
            raise UserError(f"{s.path}: a match file of {m.method}, given as {s.method}")
        c = m.counts(threshold, n_boot=0)
        pairs, images = sizes[s.data]
        rows.append(Row(s.data, pairs, images, s.steps, s.seed, s.method, int(c["good"]), round(float(c["null_mean"]), 2),
                        round(float(c["excess"]), 2)))
        log.info("curve %s", asdict(rows[-1]))
    return rows


def write_rows(path: str | Path, rows: list[Row], overwrite: bool = False) -> None:
    """``curve.csv``, written atomically."""
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w", newline="") as f:
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
