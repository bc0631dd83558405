"""The cross-attack study (issue "bring your own data and a second attack", item 4): restorers
trained on the dataset of one attack (the preset's ``attack.method``: its reconstructions
made the training pairs) are evaluated on the reconstructions of another attack
(``evaluate.cross_attack.method``), with the null control, beside the same methods on the
preset's own evaluation. None of the published code measures whether a restorer transfers
across attacks.

The workflow runs it (``evaluate.cross_attack.enabled``; rules ``evaluate_cross_*``): a target
network trained with the other attack on the held-out images, its runs, plain reconstructions,
null galleries, every method's restorations and match files under
``evaluate/cross/<attack>/``. This module turns the two sets of match files into the table:
per method, good / null / excess under both attacks, and the change in excess.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UserError
from ..io import atomic_path


@dataclass
class Row:
    method: str
    label: str
    same_good: int
    same_null: float
    same_excess: float
    cross_good: int
    cross_null: float
    cross_excess: float
    images: int
    cross_images: int

    @property
    def change(self) -> float:
        return round(self.cross_excess - self.same_excess, 2)


def parse(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for t in items:
        method, sep, path = t.partition("=")
        if not sep or not method or not path:
            raise UserError(f"evaluate cross {flag} {t!r}: expected METHOD=PATH")
        if not Path(path).is_file():
            raise UserError(f"{path}: match file ({flag} {method}) does not exist")
        out[method] = path
    return out


def collect(same: dict[str, str], cross: dict[str, str], threshold: float) -> list[Row]:
    """One row per method present in both (the preset's report order); a method skipped (an
    optional package or weights file absent) is left out."""
    from .. import methods
    from .match_file import read_match, read_skipped

    missing = sorted(set(same) ^ set(cross))
    if missing:
        raise UserError(f"evaluate cross: methods {', '.join(missing)} have a match file under one attack only")
    rows = []
    for m in methods.order(list(same)):
        if read_skipped(same[m]) or read_skipped(cross[m]):
            continue
        a, b = read_match(same[m]), read_match(cross[m])
        for f, mf in ((same[m], a), (cross[m], b)):
            if mf.method != m:
                raise UserError(f"{f}: a match file of {mf.method}, given as {m}")
        ca, cb = a.counts(threshold, n_boot=0), b.counts(threshold, n_boot=0)
        rows.append(Row(m, methods.label(m), int(ca["good"]), round(float(ca["null_mean"]), 2), round(float(ca["excess"]), 2),
                        int(cb["good"]), round(float(cb["null_mean"]), 2), round(float(cb["excess"]), 2),
                        int(a.images), int(b.images)))
    return rows


def write_rows(path, rows: list[Row], overwrite: bool = False) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(Row.__dataclass_fields__) + ["change"])
        w.writeheader()
        w.writerows(dict(asdict(r), change=r.change) for r in rows)


def table(rows: list[Row], same: str, cross: str) -> str:
    """Markdown: per method, good / null (excess) under the training attack and the other one."""
    lines = [f"Restorers trained on `{same}` reconstructions; evaluated on `{same}` ({rows[0].images if rows else 0} images) "
             f"and on `{cross}` ({rows[0].cross_images if rows else 0} images) reconstructions.", "",
             f"| Method | {same}: good / null (excess) | {cross}: good / null (excess) | Change in excess |",
             "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.label} | {r.same_good} / {r.same_null:.1f} ({r.same_excess:+.1f}) | "
                     f"{r.cross_good} / {r.cross_null:.1f} ({r.cross_excess:+.1f}) | {r.change:+.1f} |")
    return "\n".join(lines)
