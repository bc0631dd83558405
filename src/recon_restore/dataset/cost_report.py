"""The dataset cost study's table (CSV, Markdown), JSON and figure (pairs per PFLOP against
the median pair SSIM), written where the report can include them."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..io import atomic_path, write_json

COLUMNS = ["setting", "epochs", "iterations", "snapshots", "images_per_class", "candidates_per_class", "runs", "runs_failed",
           "pairs", "candidates_matched", "matches_per_candidate", "images_matched", "ssim_q25", "ssim_median", "ssim_q75", "pflop",
           "pairs_per_pflop", "pairs_per_pflop_lo", "pairs_per_pflop_hi", "ratio_to_paper", "ssim_delta_same_snapshots",
           "yield_ratio_same_snapshots", "paper"]


def table(rows, verdict: dict) -> pd.DataFrame:
    df = pd.DataFrame([asdict(r) for r in rows])
    for col, key in (("ratio_to_paper", "ratio"), ("ssim_delta_same_snapshots", "ssim_delta_same_snapshots"),
                     ("yield_ratio_same_snapshots", "yield_ratio_same_snapshots")):
        df[col] = [verdict["settings"].get(r.setting, {}).get(key, math.nan) for r in rows]
    return df[COLUMNS]


def markdown(df: pd.DataFrame, saturated: bool | None = None) -> str:
    head = ("| setting | epochs | iterations | snapshots | pairs | matched / candidate | images matched | "
            "pair SSIM median (q25-q75) | PFLOP | pairs / PFLOP (95% over runs) | x paper | "
            "same snapshots as paper epochs: SSIM difference, yield ratio |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in df.itertuples():
        name = f"**{r.setting} (paper schedule)**" if r.paper else r.setting
        lines.append(f"| {name} | {r.epochs:,} | {r.iterations:,} | {r.snapshots} | {r.pairs:,} | {r.matches_per_candidate:.2f} | "
                     f"{r.images_matched} | {r.ssim_median:.3f} ({r.ssim_q25:.3f}-{r.ssim_q75:.3f}) | {r.pflop:.4f} | "
                     f"{r.pairs_per_pflop:,.0f} ({r.pairs_per_pflop_lo:,.0f}-{r.pairs_per_pflop_hi:,.0f}) | {r.ratio_to_paper:.2f} | "
                     f"{r.ssim_delta_same_snapshots:+.3f}, {r.yield_ratio_same_snapshots:.2f} |")
    if saturated is not None:
        lines += ["", ("**Saturated regime**: at least 90% of the candidates matched in every setting, so a ratio is only the "
                       "FLOP ratio times the snapshot ratio and cannot show a fall in yield; rerun with more images per run.")
                  if saturated else "Unsaturated regime: fewer than 90% of the candidates matched in some setting."]
    return "\n".join(lines) + "\n"


def figure(df: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for r in df.itertuples():
        ax.scatter(max(r.pairs_per_pflop, 1e-3), r.ssim_median, s=60 if r.paper else 30, marker="*" if r.paper else "o",
                   color="crimson" if r.paper else "tab:blue", zorder=3)
        ax.annotate(f"E{r.epochs // 1000}k I{r.iterations}", (max(r.pairs_per_pflop, 1e-3), r.ssim_median), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("matched pairs per PFLOP (counted)")
    ax.set_ylabel("median pair SSIM")
    ax.set_title("Dataset cost: pairs per compute against quality (star: paper schedule)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write_study(out: Path, rows, verdict: dict, provenance: dict, overwrite: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    df = table(rows, verdict)
    with atomic_path(out / "cost.csv", overwrite) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(out / "cost.md", overwrite) as tmp:
        tmp.write_text(markdown(df, verdict.get("saturated")))
    write_json(out / "cost.json", {"rows": df.to_dict("records"), "verdict": verdict, "provenance": provenance}, overwrite)
    figure(df, out / "cost.png")
