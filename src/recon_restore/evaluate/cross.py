"""Two evaluations of the same methods side by side (``recon-restore evaluate compare``):

* the cross-attack study (issue "bring your own data and a second attack", item 4): restorers
  trained on the dataset of one attack (the preset's ``attack.method``) evaluated on the
  reconstructions of another (``evaluate.cross_attack.method``), with the null control, beside
  the preset's own evaluation; rules ``evaluate_cross_*`` make a target network trained with
  the other attack, its runs, plain reconstructions, null galleries, restorations and match
  files under ``evaluate/cross/<attack>/``. None of the published code measures whether a
  restorer transfers across attacks.
* the wrong-release control (issue "what protects training data", item 2): the whole
  evaluation on a network trained on *other* images of the same distribution (paper 001's
  adaptation network: pool images, the same hyperparameter draws), scored against the
  released network's training set; whatever a restorer "recovers" there is hallucination by
  construction. Rules ``evaluate_wrong_*`` under ``evaluate/wrong_release/``.

Per method: good / null / excess, AUROC and TPR at 1% FPR under both, and the change in excess.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass

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
    same_auroc: float = float("nan")
    same_tpr_1: float = float("nan")
    cross_auroc: float = float("nan")
    cross_tpr_1: float = float("nan")

    @property
    def change(self) -> float:
        return round(self.cross_excess - self.same_excess, 2)


def collect(same: dict[str, str], cross: dict[str, str], threshold: float) -> list[Row]:
    """One row per method present in both (the preset's report order); a method skipped (an
    optional package or weights file absent) is left out."""
    from .. import methods
    from .match_file import read_match, read_skipped

    missing = sorted(set(same) ^ set(cross))
    if missing:
        raise UserError(f"evaluate compare: methods {', '.join(missing)} have a match file in one evaluation only")
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
                        int(a.images), int(b.images), round(ca["auroc"], 3), round(ca["tpr_1"], 3), round(cb["auroc"], 3),
                        round(cb["tpr_1"], 3)))
    return rows


def write_rows(path, rows: list[Row], overwrite: bool = False) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(Row.__dataclass_fields__) + ["change"])
        w.writeheader()
        w.writerows(dict(asdict(r), change=r.change) for r in rows)


def table(rows: list[Row], same: str, other: str, note: str = "") -> str:
    """Markdown: per method, good / null (excess) and AUROC / TPR at 1% FPR in both evaluations."""
    lines = ([note, ""] if note else []) + [
        f"| Method | {same}: good / null (excess) | AUROC, TPR at 1% FPR | {other}: good / null (excess) | AUROC, TPR at 1% FPR "
        "| Change in excess |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.label} | {r.same_good} / {r.same_null:.1f} ({r.same_excess:+.1f}) | {r.same_auroc:.2f}, {r.same_tpr_1:.2f} | "
                     f"{r.cross_good} / {r.cross_null:.1f} ({r.cross_excess:+.1f}) | {r.cross_auroc:.2f}, {r.cross_tpr_1:.2f} | "
                     f"{r.change:+.1f} |")
    return "\n".join(lines)
