"""Robustness tables and figures (paper 004, section 4): per restorer, input kind and
budget, the mean PSNR and SSIM of the attacked outputs to their references and their drop
from the unattacked ones (budget 0); the PSNR ratio (attacked / unattacked, per image) at
the default budget as histograms. Budgets are in units of 1/255 here (the attack itself works in [0, 1]
pixel units)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..metrics import psnr, ssim
from .pgd import pgd


def attack_table(f, x: torch.Tensor, ref: torch.Tensor, budgets: list[float], steps: int, step_frac: float,
                 batch: int = 64) -> pd.DataFrame:
    """Per image and budget: PSNR and SSIM of the best attacked output to the reference."""
    rows = []
    for s in range(0, len(x), batch):
        res = pgd(f, x[s : s + batch], ref[s : s + batch], budgets, steps, step_frac)
        for eps, (xa, _) in res.items():
            with torch.no_grad():
                out = f(xa).clamp(0, 1).double()
            r = ref[s : s + batch].double()
            p, q = psnr(out, r).numpy(), ssim(out, r).numpy()
            rows += [{"image": s + i, "budget": eps, "psnr": float(p[i]), "ssim": float(q[i])} for i in range(len(p))]
    return pd.DataFrame(rows)


def summarise(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR/SSIM per (restorer, input, budget) and the drop from budget 0."""
    g = per_image.groupby(["method", "input", "budget"], sort=False)[["psnr", "ssim"]].mean().reset_index()
    base = g[g.budget == 0].set_index(["method", "input"])
    g["psnr_drop"] = [base.loc[(m, i), "psnr"] - p for m, i, p in zip(g.method, g.input, g.psnr)]
    g["ssim_drop"] = [base.loc[(m, i), "ssim"] - q for m, i, q in zip(g.method, g.input, g.ssim)]
    return g


def psnr_ratios(per_image: pd.DataFrame, budget: float) -> pd.DataFrame:
    """Per image: PSNR at ``budget`` over PSNR unattacked (paper 004's ratio; < 1: the attack hurt)."""
    key = ["method", "input", "image"]
    a = per_image[per_image.budget == budget].set_index(key)["psnr"]
    b = per_image[per_image.budget == 0].set_index(key)["psnr"]
    return (a / b).rename("psnr_ratio").reset_index()


def to_markdown(summary: pd.DataFrame, label) -> str:
    lines = ["| Restorer | Input | Budget (x 1/255) | PSNR | PSNR drop | SSIM | SSIM drop |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in summary.itertuples():
        lines.append(f"| {label(r.method)} | {r.input} | {r.budget:g} | {r.psnr:.2f} | {r.psnr_drop:.2f} | {r.ssim:.3f} | {r.ssim_drop:.3f} |")
    return "\n".join(lines) + "\n"


def histogram_figure(ratios: pd.DataFrame, budget: float, label, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    methods = list(dict.fromkeys(ratios.method))
    inputs = ["plain", "training"]
    fig, axes = plt.subplots(len(inputs), max(len(methods), 1), figsize=(2.6 * max(len(methods), 1), 4.6), squeeze=False)
    for j, m in enumerate(methods):
        for i, kind in enumerate(inputs):
            ax = axes[i][j]
            v = ratios[(ratios.method == m) & (ratios.input == kind)].psnr_ratio.to_numpy()
            v = v[np.isfinite(v)]
            ax.hist(v, bins=20, color="C3" if kind == "plain" else "C0")
            ax.axvline(1.0, color="k", lw=0.8, ls=":")
            ax.set_title(f"{label(m)}\n{kind}", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.suptitle(f"PSNR ratio, attacked / unattacked, budget {budget:g}/255", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
