"""Tables (paper section 5.1.1): per-image best matches and the summary of good
reconstructions (best SSIM > 0.4, Buzaglo et al.'s rule), in CSV, Markdown and LaTeX."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import display


def per_image(matches: dict[str, pd.DataFrame]) -> pd.DataFrame:
    first = next(iter(matches.values()))
    out = first[["image", "id", "label"]].copy()
    for m, df in matches.items():
        out[f"ssim_{m}"] = df["ssim"].to_numpy()
        out[f"haarpsi_{m}"] = df["haarpsi"].to_numpy()
    return out


def summary(matches: dict[str, pd.DataFrame], threshold: float) -> pd.DataFrame:
    rows = []
    plain = matches.get("plain")
    for m, df in matches.items():
        s, h = df["ssim"].to_numpy(), df["haarpsi"].to_numpy()
        row = {
            "method": m,
            "name": display(m),
            "good": int((s > threshold).sum()),
            "images": len(s),
            "mean_ssim": float(np.mean(s)),
            "median_ssim": float(np.median(s)),
            "mean_haarpsi": float(np.mean(h)),
            "median_haarpsi": float(np.median(h)),
        }
        if plain is not None and m != "plain":
            row["better_than_plain"] = int((s > plain["ssim"].to_numpy()).sum())
            row["worse_than_plain"] = int((s < plain["ssim"].to_numpy()).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, threshold: float, variant: str) -> str:
    cols = ["name", "good", "images", "mean_ssim", "median_ssim", "mean_haarpsi"]
    head = f"| Method | Good (SSIM > {threshold}) | Images | Mean SSIM | Median SSIM | Mean HaarPSI |"
    lines = [head, "|---|---:|---:|---:|---:|---:|"]
    for _, r in df[cols].iterrows():
        lines.append(f"| {r['name']} | {r['good']} | {r['images']} | {r['mean_ssim']:.3f} | {r['median_ssim']:.3f} | {r['mean_haarpsi']:.3f} |")
    lines.append("")
    lines.append(f"SSIM variant: `{variant}`; best match per training image over all reconstructions of all runs.")
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, threshold: float, variant: str) -> str:
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")  # noqa: E731
    lines = [
        r"\begin{tabular}{lrrrr}",
        r"\toprule",
        rf"Method & Good (SSIM $>$ {threshold}) & Mean SSIM & Median SSIM & Mean HaarPSI \\",
        r"\midrule",
    ]
    for _, r in df.iterrows():
        lines.append(f"{esc(r['name'])} & {r['good']} / {r['images']} & {r['mean_ssim']:.3f} & {r['median_ssim']:.3f} & {r['mean_haarpsi']:.3f} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}", f"% SSIM variant: {variant}"]
    return "\n".join(lines) + "\n"


def sorted_curves(matches: dict[str, pd.DataFrame], column: str) -> pd.DataFrame:
    """Rank i -> the i-th best score of each method (Figure 2)."""
    n = len(next(iter(matches.values())))
    out = pd.DataFrame({"rank": np.arange(1, n + 1)})
    for m, df in matches.items():
        out[m] = np.sort(df[column].to_numpy())[::-1]
    return out
