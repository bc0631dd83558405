"""The robustness study (paper 004, section 4): each trained restorer f attacked on pairs
(noisy input y, clean reference x_c).

Per image it records the restoration of y unattacked (``none``), and the restoration of
each attack's adversarial input: paper 004's ``dag`` (from x_c towards f(.) = y, ``dag``)
and the bounded L-inf PGD (``bounded``, per budget, ``pgd``). For every row: PSNR and SSIM
of the output to x_c, and the PSNR of the input itself to x_c. Paper 004's PSNR ratio is
unattacked over attacked, PSNR(f(y), x_c) / PSNR(f(x_adv), x_c): above 1 when the attacked
output's error is higher, exactly 1 when an attack changes nothing. Figures as in paper 004:
histograms of the ratio, of the inputs' and restorations' PSNR, and of the noise y - x_c
against the adversarial noise r. Budgets are in units of 1/255 in tables (the attacks work
in [0, 1] pixel units).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..metrics import psnr, ssim
from .dag import attacked, dag
from .pgd import pgd

NOISE_EDGES = np.linspace(-0.25, 0.25, 101)  # pixel values; outside values count in the end bins
ATTACKS = ("dag", "bounded")


def _scores(f, x_in: torch.Tensor, ref: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = f(x_in).clamp(0, 1).double()
    r = ref.double()
    return psnr(out, r).cpu().numpy(), ssim(out, r).cpu().numpy(), psnr(x_in.double(), r).cpu().numpy()


def noise_histogram(values: torch.Tensor) -> np.ndarray:
    v = values.detach().double().cpu().numpy().ravel().clip(NOISE_EDGES[0], NOISE_EDGES[-1])
    return np.histogram(v, NOISE_EDGES)[0]


def attack_table(f, noisy: torch.Tensor, clean: torch.Tensor, cfg: dict, batch: int = 64) -> tuple[pd.DataFrame, dict]:
    """Per image: the unattacked row and one row per attack (and budget); and the histograms
    of the noise and of the dag's adversarial noise (counts over ``NOISE_EDGES``)."""
    rows, hist = [], {"noise": np.zeros(len(NOISE_EDGES) - 1, np.int64), "adversarial": np.zeros(len(NOISE_EDGES) - 1, np.int64)}
    attacks = cfg["attacks"]
    for s in range(0, len(noisy), batch):
        y, xc = noisy[s : s + batch], clean[s : s + batch]
        found = [("none", np.nan, y)]
        if "dag" in attacks:
            d = cfg["dag"]
            r = dag(f, xc, y, d["iterations"], d["gamma"], d["tolerance"], d.get("norm", "linf"))
            found.append(("dag", np.nan, attacked(xc, r)))
            hist["adversarial"] += noise_histogram(r)
        if "bounded" in attacks:
            b = cfg["bounded"]
            res = pgd(f, y, xc, [e / 255 for e in b["budgets"]], b["steps"], b["step_frac"])
            found += [("bounded", e, res[e / 255][0]) for e in b["budgets"]]
        hist["noise"] += noise_histogram(y - xc)
        for attack, budget, x_in in found:
            p, q, pin = _scores(f, x_in, xc)
            rows += [{"attack": attack, "budget": budget, "image": s + i, "psnr": float(p[i]), "ssim": float(q[i]),
                      "psnr_input": float(pin[i])} for i in range(len(p))]
    return pd.DataFrame(rows), {k: v.tolist() for k, v in hist.items()}


def psnr_ratios(per_image: pd.DataFrame) -> pd.DataFrame:
    """Paper 004's ratio per attacked row: unattacked PSNR over attacked PSNR (> 1: the attack hurt)."""
    key = ["method", "input", "image"]
    base = per_image[per_image.attack == "none"].set_index(key)["psnr"]
    att = per_image[per_image.attack != "none"].copy()
    att["psnr_ratio"] = base.reindex(pd.MultiIndex.from_frame(att[key])).to_numpy() / att["psnr"].to_numpy()
    return att


def summarise(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per (restorer, input, attack, budget): mean input PSNR, output PSNR and SSIM, their drop
    from the unattacked restoration, the mean PSNR ratio and the share of images it hurt (ratio > 1)."""
    keys = ["method", "input", "attack", "budget"]
    pi = per_image.assign(budget=per_image.budget.fillna(-1))
    g = pi.groupby(keys, sort=False)[["psnr_input", "psnr", "ssim"]].mean().reset_index()
    base = g[g.attack == "none"].set_index(["method", "input"])
    g["psnr_drop"] = [base.loc[(m, i), "psnr"] - p for m, i, p in zip(g.method, g.input, g.psnr)]
    g["ssim_drop"] = [base.loc[(m, i), "ssim"] - q for m, i, q in zip(g.method, g.input, g.ssim)]
    rat = psnr_ratios(pi).groupby(keys, sort=False)["psnr_ratio"]
    g = g.merge(rat.mean().rename("ratio_mean").reset_index(), on=keys, how="left")
    g = g.merge(rat.apply(lambda v: float((v > 1).mean())).rename("hurt_share").reset_index(), on=keys, how="left")
    g.loc[g.attack == "none", ["ratio_mean", "hurt_share"]] = [1.0, 0.0]
    g["budget"] = g.budget.where(g.budget >= 0)
    return g


def to_markdown(summary: pd.DataFrame, label) -> str:
    lines = ["| Restorer | Input | Attack | PSNR in | PSNR out | PSNR drop | SSIM out | SSIM drop | PSNR ratio | hurt |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary.itertuples():
        attack = {"none": "none", "dag": "paper 004 (DAG)"}.get(r.attack, f"L-inf {r.budget:g}/255")
        lines.append(f"| {label(r.method)} | {r.input} | {attack} | {r.psnr_input:.2f} | {r.psnr:.2f} | {r.psnr_drop:.2f} | "
                     f"{r.ssim:.3f} | {r.ssim_drop:.3f} | {r.ratio_mean:.3f} | {r.hurt_share:.0%} |")
    return "\n".join(lines) + "\n"


def _grid(methods, label, path: Path, title: str, draw) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    inputs = ["plain", "training"]
    fig, axes = plt.subplots(len(inputs), max(len(methods), 1), figsize=(2.6 * max(len(methods), 1), 4.8), squeeze=False)
    for j, m in enumerate(methods):
        for i, kind in enumerate(inputs):
            ax = axes[i][j]
            draw(ax, m, kind)
            ax.set_title(f"{label(m)}\n{kind}", fontsize=7)
            ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def figures(per_image: pd.DataFrame, noise: dict, default_budget: float | None, label, out_dir: Path) -> list[Path]:
    """Paper 004's histograms: PSNR ratio (Figure 34), PSNR of inputs and restorations (Figures
    19, 24, 27 (a)), noise against adversarial noise (Figures 31, 33)."""
    methods = list(dict.fromkeys(per_image.method))
    rat = psnr_ratios(per_image)
    sel = lambda d, m, k: d[(d.method == m) & (d.input == k)]  # noqa: E731
    paths = [out_dir / "robustness_psnr_ratio.png", out_dir / "robustness_psnr.png", out_dir / "robustness_noise.png"]

    def ratio(ax, m, k):
        d = sel(rat, m, k)
        for attack, budget, colour, name in (("dag", None, "C3", "paper 004 (DAG)"), ("bounded", default_budget, "C0", f"L-inf {default_budget}/255")):
            v = d[(d.attack == attack) & ((d.budget == budget) if budget is not None else True)].psnr_ratio.to_numpy()
            v = v[np.isfinite(v)]
            if len(v):
                ax.hist(v, bins=20, color=colour, alpha=0.6, label=name)
        ax.axvline(1.0, color="k", lw=0.8, ls=":")

    def levels(ax, m, k):
        d = sel(per_image, m, k)
        none, dg = d[d.attack == "none"], d[d.attack == "dag"]
        for v, colour, name in ((none.psnr_input, "0.6", "noisy input"), (none.psnr, "C0", "restored"), (dg.psnr, "C3", "restored, attacked")):
            v = v.to_numpy()
            v = v[np.isfinite(v)]
            if len(v):
                ax.hist(v, bins=20, color=colour, alpha=0.6, label=name)
        ax.set_xlabel("PSNR to the clean image (dB)", fontsize=6)

    def noise_hist(ax, m, k):
        h = noise[m][k]
        centres = (NOISE_EDGES[1:] + NOISE_EDGES[:-1]) / 2
        for key, colour, name in (("noise", "0.5", "noise y - x"), ("adversarial", "C3", "adversarial noise r")):
            c = np.asarray(h[key], dtype=float)
            if c.sum():
                ax.plot(centres * 255, c / c.sum(), color=colour, lw=1, label=name)
        ax.set_xlabel("pixel value (x 1/255)", fontsize=6)

    _grid(methods, label, paths[0], "PSNR ratio, unattacked / attacked (> 1: the attack hurt)", ratio)
    _grid(methods, label, paths[1], "PSNR of noisy inputs and restorations", levels)
    _grid(methods, label, paths[2], "Noise and adversarial noise (paper 004's attack), share of pixels", noise_hist)
    return paths
