"""Tables (paper section 5.1.1): per-image best matches and the summary of good
reconstructions (best-match SSIM > 0.4, Buzaglo et al.'s rule) beside their null control,
in CSV, Markdown and LaTeX."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluate.match_file import MatchData
from . import display


def _finite(x: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(x), x, np.nan)


def per_image(matches: dict[str, MatchData], ids: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One row per training image: each method's best-match SSIM, HaarPSI and PSNR (empty: unmatched)."""
    out = pd.DataFrame({"image": np.arange(len(ids)), "id": ids, "label": labels})
    for m, d in matches.items():
        out[f"ssim_{m}"] = _finite(d.best_ssim())
        out[f"haarpsi_{m}"] = _finite(d.best("haarpsi")[0])
        out[f"psnr_{m}"] = _finite(d.best("psnr")[0])
    return out


def summary(matches: dict[str, MatchData], counts: dict[str, dict], threshold: float) -> pd.DataFrame:
    rows = []
    plain = _finite(matches["plain"].best_ssim()) if "plain" in matches else None
    for m, d in matches.items():
        s = _finite(d.best_ssim())
        h, p = _finite(d.best("haarpsi")[0]), _finite(d.best("psnr")[0])
        p = np.where(np.isinf(p), np.nan, p)
        c = counts[m]
        row = {"method": m, "name": display(m), "good": c["good"], "good_lo": c["good_lo"], "good_hi": c["good_hi"],
               "good_none": c["good_none"], "null_mean": c["null_mean"], "null_min": c["null_min"], "null_max": c["null_max"],
               "excess": c["excess"], "null_none_mean": c["null_none_mean"], "matched": int(np.isfinite(s).sum()), "images": len(s),
               **{k: c[k] for k in ROC_KEYS if k in c},
               "mean_ssim": np.nanmean(s) if np.isfinite(s).any() else np.nan,
               "median_ssim": np.nanmedian(s) if np.isfinite(s).any() else np.nan,
               "mean_haarpsi": np.nanmean(h) if np.isfinite(h).any() else np.nan,
               "mean_psnr": np.nanmean(p) if np.isfinite(p).any() else np.nan}
        if plain is not None and m != "plain":
            both = np.isfinite(s) & np.isfinite(plain)
            row["better_than_plain"] = int((s[both] > plain[both]).sum())
            row["worse_than_plain"] = int((s[both] < plain[both]).sum())
        rows.append(row)
    return pd.DataFrame(rows)


ROC_KEYS = ("auroc", "auroc_lo", "auroc_hi", "tpr_1", "tpr_1_lo", "tpr_1_hi", "threshold_1", "tpr_5", "tpr_5_lo", "tpr_5_hi",
            "threshold_5")
"""The ROC of training images against unseen ones (``metrics.roc.leakage_roc``), per method."""


def _rate(r, key: str, digits: int = 2) -> str:
    """'0.41 (0.30-0.52)' for a rate and its interval."""
    if key not in r or pd.isna(r[key]):
        return "-"
    return f"{r[key]:.{digits}f} ({r[key + '_lo']:.{digits}f}-{r[key + '_hi']:.{digits}f})"


def _null_cell(r) -> tuple[str, str]:
    return f"{r['null_mean']:.1f} ({r['null_min']:.0f}-{r['null_max']:.0f})", f"{r['excess']:+.1f}"


def to_markdown(df: pd.DataFrame, threshold: float, variant: str, assignment: str, galleries: int,
                skipped: dict[str, str] | None = None, calibration: dict[str, dict] | None = None) -> str:
    head = (f"| Method | Good (SSIM > {threshold}) | 95% interval | Null: mean (range) | Excess | AUROC | TPR at 1% FPR | "
            "TPR at 5% FPR | Good, max over all | Matched | Mean SSIM | Mean HaarPSI | Mean PSNR |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in df.iterrows():
        null, exc = _null_cell(r)
        lines.append(f"| {r['name']} | {r['good']} / {r['images']} | {r['good_lo']:.0f}-{r['good_hi']:.0f} | {null} | {exc} | "
                     f"{_rate(r, 'auroc')} | {_rate(r, 'tpr_1')} | {_rate(r, 'tpr_5')} | "
                     f"{r['good_none']} | {r['matched']} | {r['mean_ssim']:.3f} | {r['mean_haarpsi']:.3f} | {r['mean_psnr']:.2f} |")
    lines += ["", f"SSIM variant `{variant}`. Best match: each reconstruction is assigned to its nearest training image "
              f"(`{assignment}`), and a training image's best match is the best among those assigned to it (paper 5.1.1); "
              f"unmatched images are never good. Null: the same protocol against {galleries} galleries of unseen images of "
              "the same distribution (chance level); excess = good - mean null. AUROC and TPR: the training images' best-match "
              "scores against the null galleries' (the threshold of a TPR is chosen on the null scores alone, so that at most "
              "1% or 5% of unseen images pass it). Intervals: 95% bootstrap over runs. "
              "'Max over all' is the looser rule without assignment, for comparison. Means are over matched images."]
    lines += [f"\nNot evaluated: {display(m)}: {why}." for m, why in (skipped or {}).items()]
    cal = calibration or {}
    if cal:
        lines += ["", "Blind calibration (J-invariance on the reconstructions): " + "; ".join(
            f"{display(m)} {c['param']} {c['kwargs'][c['param']]:g} of {', '.join(f'{float(v):g}' for v in sorted(c['losses'], key=float))}"
            for m, c in cal.items()) + "."]
        lines += [f"\n**Warning:** {display(m)}'s calibrated {c['param']} is on the {c['position']} of its grid: "
                  "the best value may lie outside it; extend the grid." for m, c in cal.items() if c["position"] != "inside"]
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, threshold: float, variant: str, assignment: str, galleries: int) -> str:
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")  # noqa: E731
    lines = [
        r"\begin{tabular}{lrrrrrrr}",
        r"\toprule",
        rf"Method & Good (SSIM $>$ {threshold}) & 95\% CI & Null & Excess & TPR at 1\% FPR & Mean SSIM & Mean HaarPSI \\",
        r"\midrule",
    ]
    for _, r in df.iterrows():
        null, exc = _null_cell(r)
        lines.append(f"{esc(r['name'])} & {r['good']} / {r['images']} & {r['good_lo']:.0f}--{r['good_hi']:.0f} & {null.replace('-', '--')} & "
                     f"${exc}$ & {_rate(r, 'tpr_1').replace('-', '--')} & {r['mean_ssim']:.3f} & {r['mean_haarpsi']:.3f} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}",
              f"% SSIM variant: {variant}; assignment: {assignment}; null: mean (range) over {galleries} galleries of unseen images"]
    return "\n".join(lines) + "\n"


def sorted_curves(per_img: pd.DataFrame, methods: list[str], column: str) -> pd.DataFrame:
    """Rank i -> the i-th best score of each method (Figure 2); unmatched images last (empty)."""
    n = len(per_img)
    out = pd.DataFrame({"rank": np.arange(1, n + 1)})
    for m in methods:
        v = per_img[f"{column}_{m}"].to_numpy()
        out[m] = -np.sort(-v)  # NaN sorts last
    return out
