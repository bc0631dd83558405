"""The report (paper section 5 and appendix A): every table, figure and metric, from the
match files of the methods (``evaluate/match_file.py``) and the restored images.

* Tables: per-image best matches; the summary (good, 95% bootstrap interval over runs,
  null mean and range, excess over chance, the ``none`` rule's count, means of SSIM,
  HaarPSI and PSNR) in CSV, Markdown and LaTeX.
* Figures 1 and A (grids of best matches, black where nothing is assigned), 2 (sorted
  best matches with the null band), 3 (before/after scatter), 4 (hallucinations: plain
  reconstructions that resemble no training image, restored), 5 (two halves of the runs),
  the ROC of the diffusion samples' spread as a blind hallucination detector, coverage.
* ``metrics.json`` for ``dvc metrics show``; sorted curves for ``dvc plots show``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..evaluate.match import per_run_best, split_halves
from ..evaluate.match_file import MatchData
from ..io import atomic_path, provenance, read_json, write_json
from ..methods import in_figure, label, restorer_of
from ..metrics.roc import auroc, roc_curve
from ..seeding import derive_seed
from . import figures, tables

log = logging.getLogger(__name__)


@dataclass
class ReportInputs:
    matches: dict[str, MatchData]  # in the methods list's order
    restored: dict[str, np.ndarray]  # method -> (N, 3, 32, 32) images (plain included)
    spread: dict  # restorer -> (N,) per-reconstruction spread of its samples (the restorers that sample)
    target_images: np.ndarray  # (M, 3, 32, 32) uint8
    target_ids: np.ndarray
    target_labels: np.ndarray
    runs: dict  # runs_total, runs_ok, runs_aborted, runs_failed
    abort_criterion: str
    coverage: tuple[str, str] | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # optional methods that could not run: why
    calibration: dict[str, dict] = field(default_factory=dict)  # classical restorer -> its blind choice (classical.choose)


def _write_text(path: Path, text: str, overwrite: bool) -> None:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text)


def _write_csv(path: Path, df: pd.DataFrame, overwrite: bool) -> None:
    with atomic_path(path, overwrite) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def _best_rows(d: MatchData, images: np.ndarray) -> np.ndarray:
    """Each training image's best-match image among those assigned to it (also under the
    ``none`` rule, whose maximum over all is a count only); NaN (black) where none is assigned."""
    arg = d.best("ssim")[1]
    out = np.full((len(arg), *images.shape[1:]), np.nan, dtype=np.float32)
    out[arg >= 0] = images[arg[arg >= 0]]
    return out


def hallucination(inp: ReportInputs, threshold: float) -> dict[str, dict]:
    """Per method of a restorer that samples: AUROC of minus the samples' spread for "this
    restoration is a true match" (its SSIM to its assigned training image > threshold)."""
    out = {}
    for m, d in inp.matches.items():
        spread = inp.spread.get(restorer_of(m))
        if spread is None:
            continue
        pos = d.ssim > threshold
        fpr, tpr = roc_curve(-spread, pos)
        out[m] = {"auroc": auroc(-spread, pos), "positives": int(pos.sum()), "negatives": int((~pos).sum()),
                  "fpr": fpr, "tpr": tpr}
    return out


def build(inp: ReportInputs, cfg: dict, seed: int, preset: str, out: Path, overwrite: bool = False) -> dict:
    ev, rep = cfg["evaluate"], cfg["report"]
    thr, variant = ev["good_threshold"], ev["best_match"]["ssim_variant"]
    rule = ev["best_match"]["assignment"]
    matches = inp.matches
    k = next(iter(matches.values())).galleries
    counts = {m: d.counts(thr, ev["bootstrap"], derive_seed(seed, "bootstrap", m)) for m, d in matches.items()}
    per_img = tables.per_image(matches, inp.target_ids, inp.target_labels)
    summ = tables.summary(matches, counts, thr)
    halluc = hallucination(inp, thr)
    for m, h in halluc.items():
        summ.loc[summ.method == m, "spread_auroc"] = h["auroc"]
    _write_csv(out / "tables" / "per_image.csv", per_img, overwrite)
    _write_csv(out / "tables" / "summary.csv", summ, overwrite)
    _write_text(out / "tables" / "summary.md", tables.to_markdown(summ, thr, variant, rule, k, inp.skipped, inp.calibration),
                overwrite)
    _write_text(out / "tables" / "summary.tex", tables.to_latex(summ, thr, variant, rule, k), overwrite)
    names = list(matches)
    cs, ch = tables.sorted_curves(per_img, names, "ssim"), tables.sorted_curves(per_img, names, "haarpsi")
    _write_csv(out / "curves" / "sorted_ssim.csv", cs, overwrite)
    _write_csv(out / "curves" / "sorted_haarpsi.csv", ch, overwrite)

    metrics = {
        "preset": preset, "ssim_variant": variant, "assignment": rule, "good_threshold": thr, "null_galleries": k,
        "images": len(per_img), "plain_reconstructions": int(len(inp.restored["plain"])), "runs": inp.runs,
        "abort_criterion": inp.abort_criterion,
        "methods": {r["method"]: {c: (int(v) if c in ("good", "good_none", "images", "matched", "better_than_plain", "worse_than_plain")
                                      else round(float(v), 6))
                                  for c, v in r.items() if c not in ("method", "name") and pd.notna(v)}
                    for r in summ.to_dict("records")},
        "skipped": inp.skipped,
        "calibration": {m: {"param": c["param"], "value": c["kwargs"][c["param"]], "grid": sorted(float(v) for v in c["losses"]),
                            "position": c["position"], "masks": c.get("masks")} for m, c in inp.calibration.items()},
        "provenance": provenance(cfg, seed, preset=preset),
    }
    figdir = out / "figures"
    if inp.coverage:
        cov = read_json(inp.coverage[0])
        metrics["dataset"] = {c: cov[c] for c in ("pool_images", "images_seen", "fraction_seen", "pairs")}
        hist = pd.read_csv(inp.coverage[1])
        _write_csv(out / "tables" / "coverage.csv", hist, overwrite)
        figures.coverage_figure(hist, cov, figdir / "coverage.png")
    write_json(out / "metrics.json", metrics, overwrite)

    null_best = {m: np.stack([_null_best(d, g) for g in range(d.galleries)]) for m, d in matches.items()}
    figures.figure2(cs, ch, thr, figdir / "fig2_sorted.png", null_best)
    best = (in_figure("fig3", names) or names[-1:])[-1]  # the headline method (the paper: ours averaged)
    figures.figure3(per_img["ssim_plain"].to_numpy(), per_img[f"ssim_{best}"].to_numpy(), per_img["haarpsi_plain"].to_numpy(),
                    per_img[f"haarpsi_{best}"].to_numpy(), best, figdir / "fig3_scatter.png")
    figures.figure5(_halves(matches, in_figure("fig5", names), seed),
                    figdir / "fig5_halves.png")
    figures.roc_figure({m: (h["fpr"], h["tpr"], h["auroc"]) for m, h in halluc.items()}, figdir / "hallucination_roc.png")
    figures.roc_figure(_leakage_curves(matches, null_best, counts), figdir / "leakage_roc.png",
                       "training images against unseen images (best-match SSIM)", "false-positive rate (unseen images)",
                       "true-positive rate (training images)", log=True)
    _figure4(inp, thr, rep["grid_per_row"], seed, figdir / "fig4_hallucination.png")

    grid_methods = [m for m in names if m in inp.restored]
    best_imgs = {m: _best_rows(matches[m], inp.restored[m]) for m in grid_methods}
    timg = inp.target_images

    def rows(order: np.ndarray):
        return [(label(m), best_imgs[m][order]) for m in grid_methods] + [("Target", timg[order])]

    n = min(rep["grid_images"], len(timg))
    plain_best = np.nan_to_num(per_img["ssim_plain"].to_numpy(), nan=-np.inf)
    figures.grid(rows(np.argsort(-plain_best, kind="stable")[:n]), figdir / "fig1_grid.png", rep["grid_per_row"])
    order_all = np.argsort(-np.nan_to_num(per_img[f"ssim_{best}"].to_numpy(), nan=-np.inf), kind="stable")
    per_page = rep["appendix_per_page"]
    for page, s in enumerate(range(0, len(order_all), per_page)):
        figures.grid(rows(order_all[s : s + per_page]), figdir / f"appendix_{page + 1:02d}.png", rep["grid_per_row"])
    log.info("report: %s", json.dumps({m: {c: counts[m][c] for c in ("good", "null_mean", "excess", "good_none")} for m in names}))
    return metrics


def _null_best(d: MatchData, g: int) -> np.ndarray:
    return d.null_run_best(g).max(0, initial=-np.inf)  # -inf: no run, nothing assigned


def _halves(matches: dict[str, MatchData], methods: list[str], seed: int) -> dict:
    out = {}
    for m in methods:
        d = matches[m]
        h = split_halves(d.runs, derive_seed(seed, "figure5-halves"))
        sel = [np.array([h[int(r)] == i for r in d.runs]) for i in (0, 1)]
        rs = d.run_best("ssim")
        rh = per_run_best(d.haarpsi, d.assigned, d.run_index, len(d.runs), d.images)
        out[m] = tuple(x[s].max(0) if s.any() else np.full(d.images, -np.inf) for x in (rs, rh) for s in sel)
    return out


def _figure4(inp: ReportInputs, thr: float, k: int, seed: int, path: Path) -> None:
    """Plain reconstructions that resemble no training image (assigned SSIM below the
    threshold), restored by each method, above the training image closest to the single
    diffusion sample (paper Figure 4)."""
    plain = inp.matches["plain"]
    cand = np.nonzero(plain.ssim <= thr)[0]
    rows = []
    if len(cand):
        pick = np.sort(np.random.default_rng(derive_seed(seed, "figure4")).choice(cand, min(k, len(cand)), replace=False))
        rows.append((label("plain"), inp.restored["plain"][pick]))
        shown = [m for m in in_figure("fig4", inp.restored) if m != "plain"]
        for m in shown:
            rows.append((label(m), inp.restored[m][pick]))
        # the training image closest to the first sampled restoration shown (the paper: one diffusion sample)
        near_of = next((m for m in shown if restorer_of(m) in inp.spread and m in inp.matches), "plain")
        near = inp.matches[near_of].assigned[pick]
        rows.append(("Closest training image", inp.target_images[near]))
    else:
        rows.append(("(every plain reconstruction matches a training image)", np.full((1, *inp.target_images.shape[1:]), np.nan)))
    figures.grid(rows, path, k)


def _leakage_curves(matches, null_best: dict, counts: dict) -> dict:
    """Per method: the ROC of its training images' best-match scores against the null
    galleries' (``metrics.roc.leakage_roc``; unmatched images score below any SSIM)."""
    from ..metrics.roc import roc_curve

    out = {}
    for m, d in matches.items():
        pos = np.maximum(np.nan_to_num(d.best_ssim(), nan=-2.0, neginf=-2.0), -2.0)
        neg = np.maximum(np.nan_to_num(null_best[m], nan=-2.0, neginf=-2.0), -2.0).ravel()
        fpr, tpr = roc_curve(np.concatenate([pos, neg]), np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)])
        out[m] = (fpr, tpr, counts[m]["auroc"])
    return out
