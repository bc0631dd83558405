"""``recon-restore report build``: tables, figures, metrics JSON and DVC plot curves."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from ..attack.target_file import load_target
from ..cli import common
from ..errors import UserError
from ..io import atomic_path, open_h5, provenance, write_json
from ..runtime import setup
from . import figures, tables

log = logging.getLogger(__name__)
ORDER = ["plain", "tv", "bfdncnn", "edm_single", "edm_averaged"]


def register(sub) -> None:
    g = sub.add_parser("report", help="report stage: tables and figures").add_subparsers(dest="verb", required=True)
    p = g.add_parser("build", help="write every table, figure and metric of the report")
    common(p)
    p.add_argument("--target", required=True)
    p.add_argument("--plain", required=True)
    p.add_argument("--restored", nargs="*", default=[], help="restored HDF5 files (for the image grids)")
    p.add_argument("--matches", nargs="+", required=True, help="match CSVs named <method>.csv")
    p.add_argument("--coverage", nargs=2, default=None, metavar=("JSON", "CSV"), help="dataset coverage (dataset coverage --out-json --out-csv)")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=build_cmd)


def _write_text(path: Path, text: str, overwrite: bool) -> None:
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text)


def _write_csv(path: Path, df: pd.DataFrame, overwrite: bool) -> None:
    with atomic_path(path, overwrite) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def build_cmd(args) -> None:
    prm = setup(args)
    ev = prm.section("evaluate")
    rep = prm.section("report")
    thr, variant = ev["good_threshold"], ev["best_match"]["ssim_variant"]
    matches = {}
    for p in args.matches:
        m = Path(p).stem
        try:
            matches[m] = pd.read_csv(p)
        except (OSError, pd.errors.ParserError) as e:
            raise UserError(f"{p}: unreadable match table ({e})") from None
    matches = {m: matches[m] for m in sorted(matches, key=lambda k: ORDER.index(k) if k in ORDER else 99)}
    if "plain" not in matches:
        raise UserError("report build: the match table of the plain reconstructions (plain.csv) is required")
    out = Path(args.out_dir)
    ow = args.overwrite
    summ = tables.summary(matches, thr)
    _write_csv(out / "tables" / "per_image.csv", tables.per_image(matches), ow)
    _write_csv(out / "tables" / "summary.csv", summ, ow)
    _write_text(out / "tables" / "summary.md", tables.to_markdown(summ, thr, variant), ow)
    _write_text(out / "tables" / "summary.tex", tables.to_latex(summ, thr, variant), ow)
    cs, ch = tables.sorted_curves(matches, "ssim"), tables.sorted_curves(matches, "haarpsi")
    _write_csv(out / "curves" / "sorted_ssim.csv", cs, ow)
    _write_csv(out / "curves" / "sorted_haarpsi.csv", ch, ow)

    with open_h5(args.plain, "plain reconstructions") as f:
        plain = f["images"][()]
        runs = {k: int(f.attrs[k]) for k in ("runs_total", "runs_ok", "runs_aborted", "runs_failed")}
        criterion = str(f.attrs.get("abort_criterion", "unknown"))
    restored = {"plain": plain}
    for p in args.restored:
        with open_h5(p, "restored reconstructions") as f:
            for k in f:
                if f[k].ndim == 4:
                    restored[k] = f[k][()]
    metrics = {
        "preset": prm.preset,
        "ssim_variant": variant,
        "good_threshold": thr,
        "images": int(len(matches["plain"])),
        "plain_reconstructions": int(len(plain)),
        "runs": runs,
        "abort_criterion": criterion,
        "methods": {r["method"]: {k: (int(v) if k in ("good", "images") else round(float(v), 6))
                                  for k, v in r.items() if k not in ("method", "name") and pd.notna(v)}
                    for r in summ.to_dict("records")},
        "provenance": provenance(prm.cfg, prm.seed, preset=prm.preset),
    }
    figdir = out / "figures"
    if args.coverage:
        from ..io import read_json

        cov = read_json(args.coverage[0])
        metrics["dataset"] = {k: cov[k] for k in ("pool_images", "images_seen", "fraction_seen", "pairs")}
        hist = pd.read_csv(args.coverage[1])
        _write_csv(out / "tables" / "coverage.csv", hist, ow)
        figures.coverage_figure(hist, cov, figdir / "coverage.png")
    write_json(out / "metrics.json", metrics, ow)

    figures.figure2(cs, ch, thr, figdir / "fig2_sorted.png")
    best = "edm_averaged" if "edm_averaged" in matches else list(matches)[-1]
    figures.figure3(matches["plain"], matches[best], best, figdir / "fig3_scatter.png")
    f5 = [m for m in ("plain", "edm_single", "edm_averaged") if m in matches]
    figures.figure5(matches, f5, figdir / "fig5_halves.png")
    tgt = load_target(args.target)
    timg = tgt["images"].numpy()

    def rows(order: np.ndarray, methods: list[str]):
        out_rows = []
        for m in methods:
            if m not in restored:
                continue
            arg = matches[m]["ssim_arg"].to_numpy()[order]
            out_rows.append((f"{figures_label(m)}", restored[m][arg]))
        out_rows.append(("Target", timg[order]))
        return out_rows

    k = min(rep["grid_images"], len(timg))
    order = np.argsort(-matches["plain"]["ssim"].to_numpy(), kind="stable")[:k]
    figures.grid(rows(order, list(matches)), figdir / "fig1_grid.png", rep["grid_per_row"])
    order_all = np.argsort(-matches[best]["ssim"].to_numpy(), kind="stable")
    per_page = rep["appendix_per_page"]
    for page, s in enumerate(range(0, len(order_all), per_page)):
        figures.grid(rows(order_all[s : s + per_page], list(matches)), figdir / f"appendix_{page + 1:02d}.png", rep["grid_per_row"])
    log.info("report: %s", json.dumps({m: v["good"] for m, v in metrics["methods"].items()}))


def figures_label(m: str) -> str:
    from . import display

    return display(m)
