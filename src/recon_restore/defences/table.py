"""The defences study's table and figure: per setting (the undefended network first, as
``none``), the network's accuracy on its training images and on held-out images it never saw,
and per method the good count with its bootstrap interval, the null galleries' mean count, the
excess, AUROC and the TPR at 1% and 5% FPR (``evaluate.match_file.MatchData.counts``). The
summary names for each setting plain and its best restorer: the one of largest excess over its
null (choice: a count without its null is not a result)."""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..io import atomic_path
from .defences import parse

BASELINE = "none"


@dataclass
class Row:
    setting: str
    defence: str
    value: float
    method: str
    label: str
    good: int
    good_lo: float
    good_hi: float
    null: float
    excess: float
    auroc: float
    tpr_1: float
    tpr_1_lo: float
    tpr_1_hi: float
    tpr_5: float
    images: int
    train_accuracy: float
    test_accuracy: float
    test_images: int
    epsilon: float = float("nan")
    delta: float = float("nan")
    runs: int = 0  # successful attack runs (0: every run aborted or failed, so nothing leaked to this attack)
    extra: dict = field(default_factory=dict, repr=False)


def test_accuracy(attack, tgt: dict, held) -> tuple[float, int]:
    """Accuracy of a target network on the held-out images outside its training images' groups
    (the demo's crops of one cell share pixels), with the attack's labels."""
    rows = {int(i): k for k, i in enumerate(held.ids)}
    missing = [int(i) for i in tgt["ids"].tolist() if int(i) not in rows]
    if missing:
        raise UserError(f"the target network was trained on images {missing[:5]} that the held-out set does not hold")
    train_groups = set(held.groups[[rows[int(i)] for i in tgt["ids"].tolist()]].tolist())
    test = np.array([g not in train_groups for g in held.groups.tolist()])
    if not test.any():
        raise UserError("the held-out set holds no image outside the target network's training images")
    x = (torch.from_numpy(held.images[test]).double() / 255 - tgt["mean"].double()).flatten(1)[None]
    y = torch.from_numpy(attack.training_labels(held.labels, held.classes)[test]).double()
    w = tgt["w"]
    w = type(w)(*(None if t is None else t.double() for t in (w.W1, w.W2, w.w3, w.b1)))
    with torch.no_grad():
        pred = attack.predict(w, x)[0].double()
    return float((pred == y).double().mean()), int(test.sum())


def collect(targets: dict[str, str], matches: dict[str, str], method_names: list[str], held, attack, threshold: float,
            n_boot: int, seed: int) -> list[Row]:
    """One row per (setting, method); ``targets`` and ``matches`` (folders of ``<method>.h5``) by
    setting label, the undefended network as ``none``."""
    from .. import methods
    from ..attack.target_file import load_target
    from ..evaluate.match_file import read_match, read_skipped

    if set(targets) != set(matches):
        raise UserError(f"defences table: settings {sorted(set(targets) ^ set(matches))} have a target or a match folder only")
    if BASELINE not in targets:
        raise UserError(f"defences table: no '{BASELINE}=' target (the undefended network)")
    base_ids = None
    rows = []
    for s in [BASELINE] + [s for s in targets if s != BASELINE]:
        tgt = load_target(targets[s])
        ids = tgt["ids"].numpy()
        if base_ids is None:
            base_ids = ids
        elif not np.array_equal(np.sort(ids), np.sort(base_ids)):
            raise UserError(f"{targets[s]}: trained on other images than the undefended network {targets[BASELINE]}; "
                            "every setting must train on the same images (one set of null galleries)")
        defence, value = (BASELINE, float("nan")) if s == BASELINE else parse(s)
        acc, n_test = test_accuracy(attack, tgt, held)
        stats = dict(tgt["stats"])
        for m in methods.order(list(method_names)):
            f = Path(matches[s]) / f"{m}.h5"
            if not f.is_file():
                raise UserError(f"{f}: no match file of method {m} for setting {s}")
            if read_skipped(f):
                continue
            d = read_match(f)
            if d.method != m:
                raise UserError(f"{f}: a match file of {d.method}, expected {m}")
            c = d.counts(threshold, n_boot=n_boot, seed=seed)
            rows.append(Row(s, defence, value, m, methods.label(m), int(c["good"]), float(c["good_lo"]), float(c["good_hi"]),
                            round(float(c["null_mean"]), 2), round(float(c["excess"]), 2), round(c["auroc"], 3),
                            round(c["tpr_1"], 3), round(c["tpr_1_lo"], 3), round(c["tpr_1_hi"], 3), round(c["tpr_5"], 3),
                            int(d.images), round(float(stats.get("accuracy", float("nan"))), 4), round(acc, 4), n_test,
                            float(stats.get("epsilon", float("nan"))), float(stats.get("delta", float("nan"))), len(d.runs), stats))
    return rows


def summary(rows: list[Row]) -> list[dict]:
    """Per setting: plain and the restorer of largest excess (first in the methods' order on ties)."""
    out = []
    for s in dict.fromkeys(r.setting for r in rows):
        rs = [r for r in rows if r.setting == s]
        plain = next((r for r in rs if r.method == "plain"), None)
        if plain is None:
            raise UserError(f"defences table: setting {s} has no plain match file")
        others = [r for r in rs if r.method != "plain"]
        best = max(others, key=lambda r: r.excess, default=None)
        out.append({"setting": s, "defence": plain.defence, "value": plain.value, "epsilon": plain.epsilon, "delta": plain.delta,
                    "train_accuracy": plain.train_accuracy, "test_accuracy": plain.test_accuracy, "images": plain.images,
                    "runs": plain.runs,
                    "plain_good": plain.good, "plain_null": plain.null, "plain_tpr_1": plain.tpr_1,
                    "plain_tpr_1_lo": plain.tpr_1_lo, "plain_tpr_1_hi": plain.tpr_1_hi,
                    "best": best.method if best else "", "best_label": best.label if best else "",
                    "best_good": best.good if best else float("nan"), "best_null": best.null if best else float("nan"),
                    "best_tpr_1": best.tpr_1 if best else float("nan")})
    return out


def setting_text(r: dict) -> str:
    if r["defence"] == BASELINE:
        return "none (evaluate.train)"
    if r["defence"] == "dp_sgd":
        return f"epsilon {r['value']:g} (accounted {r['epsilon']:.2f}), delta {r['delta']:g}"
    if r["defence"] == "length":
        return f"{r['value']:g} x epochs"
    return f"{r['value']:g}"


def markdown(rows: list[Row], note: str = "") -> str:
    """The summary (defence, setting, accuracy, successful attack runs, plain good / null, best
    restorer good / null, TPR at 1% FPR), then every method's counts per setting."""
    summ = summary(rows)
    lines = ([note, ""] if note else []) + [
        "| Defence | Setting | Test accuracy | Train accuracy | Successful runs | Plain good / null | Plain TPR at 1% FPR | "
        "Best restorer | Best good / null | Best TPR at 1% FPR |", "|---|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in summ:
        lines.append(f"| {r['defence']} | {setting_text(r)} | {r['test_accuracy']:.3f} | {r['train_accuracy']:.2f} | {r['runs']} | "
                     f"{r['plain_good']} / {r['plain_null']:.1f} of {r['images']} | {r['plain_tpr_1']:.2f} "
                     f"({r['plain_tpr_1_lo']:.2f}-{r['plain_tpr_1_hi']:.2f}) | {r['best_label'] or '-'} | "
                     + (f"{r['best_good']} / {r['best_null']:.1f} | {r['best_tpr_1']:.2f} |" if r["best"] else "- | - |"))
    lines += ["", "Every method (good with its 95% interval over runs / null mean, excess, AUROC, TPR at 1% FPR):", "",
              "| Setting | Method | Good (95%) | Null | Excess | AUROC | TPR at 1% FPR |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.setting} | {r.label} | {r.good} ({r.good_lo:.0f}-{r.good_hi:.0f}) | {r.null:.1f} | {r.excess:+.1f} | "
                     f"{r.auroc:.2f} | {r.tpr_1:.2f} |")
    return "\n".join(lines)


def write_csv(path, rows: list[Row], overwrite: bool = False) -> None:
    names = [k for k in Row.__dataclass_fields__ if k != "extra"]
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        w.writerows({k: v for k, v in asdict(r).items() if k != "extra"} for r in rows)


def figure(rows: list[Row], path, overwrite: bool = False) -> None:
    """Leakage against test accuracy, one line per defence through its settings (the undefended
    network a star): the plain excess good count and plain's TPR at 1% FPR, and the best
    restorer's (hollow markers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summ = summary(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    markers = {"weight_decay": "o", "length": "s", "dp_sgd": "^"}
    for ax, key, best, title in ((axes[0], "plain_good", "best_good", "good count minus null mean"),
                                 (axes[1], "plain_tpr_1", "best_tpr_1", "TPR at 1% FPR")):
        for j, d in enumerate(dict.fromkeys(r["defence"] for r in summ)):
            rs = [r for r in summ if r["defence"] == d]
            acc = [r["test_accuracy"] for r in rs]
            if key == "plain_good":
                ys, yb = [r["plain_good"] - r["plain_null"] for r in rs], [r["best_good"] - r["best_null"] for r in rs]
            else:
                ys, yb = [r[key] for r in rs], [r[best] for r in rs]
            color = f"C{j}"
            mk = "*" if d == BASELINE else markers.get(d, "D")
            ax.plot(acc, ys, marker=mk, color=color, ms=10 if d == BASELINE else 6, label=f"{d} (plain)")
            if any(not (isinstance(v, float) and math.isnan(v)) for v in yb):
                ax.plot(acc, yb, marker=mk, color=color, ls="--", mfc="none", label=f"{d} (best restorer)")
            for r, a, v in zip(rs, acc, ys):
                if d != BASELINE:
                    ax.annotate(f"{r['value']:g}", (a, v), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel("test accuracy of the released network")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle("Defences: leakage against accuracy")
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
