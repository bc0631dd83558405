"""Figures 1, 2, 3 and 5 and the appendix grids (paper section 5 and appendix A)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from . import display  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    plt.close(fig)


def figure2(curves_ssim: pd.DataFrame, curves_haarpsi: pd.DataFrame, threshold: float, path: Path,
            null_ssim: dict[str, np.ndarray] | None = None) -> None:
    """Sorted best-match SSIM and HaarPSI, one line per method; ``null_ssim[m]`` (K, M) best
    SSIM per image on each null gallery draws the chance band (min to max of the K sorted curves)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = list(curves_ssim.columns[1:])
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")  # one colour per method, up to 20
    colors = {m: cmap(i % cmap.N) for i, m in enumerate(names)}
    for ax, df, name in ((axes[0], curves_ssim, "SSIM"), (axes[1], curves_haarpsi, "HaarPSI")):
        for m in df.columns[1:]:
            ax.plot(df["rank"], df[m], label=display(m), lw=1.6, color=colors[m])
        ax.set_xlabel("i-th best reconstructed training image")
        ax.set_ylabel(f"best-match {name}")
        ax.grid(alpha=0.3)
    for m, null in (null_ssim or {}).items():
        curves = -np.sort(-np.where(np.isfinite(null), null, np.nan), axis=1)
        r = np.arange(1, curves.shape[1] + 1)
        axes[0].fill_between(r, np.nanmin(curves, 0), np.nanmax(curves, 0), color=colors.get(m, "gray"), alpha=0.15, lw=0)
    axes[0].axhline(threshold, color="k", ls=":", lw=1)
    axes[0].legend(fontsize=8 if len(names) <= 10 else 6, title="shaded: null galleries", title_fontsize=7,
                   ncol=1 if len(names) <= 10 else 2)
    _save(fig, path)


def figure3(plain: np.ndarray, restored: np.ndarray, plain_h: np.ndarray, restored_h: np.ndarray, method: str, path: Path) -> None:
    """Per training image: best match before (plain) vs after restoration (images matched by both)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, x, y, name in ((axes[0], plain, restored, "SSIM"), (axes[1], plain_h, restored_h, "HaarPSI")):
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        ax.scatter(x, y, s=10, alpha=0.7)
        if len(x):
            lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
            ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        ax.set_xlabel(f"{name}, plain")
        ax.set_ylabel(f"{name}, {display(method)}")
        ax.grid(alpha=0.3)
    _save(fig, path)


def figure5(halves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], path: Path) -> None:
    """Runs split into two random halves: the band between the halves' sorted curves.
    halves[m] = (ssim half 0, ssim half 1, haarpsi half 0, haarpsi half 1), each (M,)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m, (s0, s1, h0, h1) in halves.items():
        for ax, a, b in ((axes[0], s0, s1), (axes[1], h0, h1)):
            a = -np.sort(-np.where(np.isfinite(a), a, np.nan))
            b = -np.sort(-np.where(np.isfinite(b), b, np.nan))
            r = np.arange(1, len(a) + 1)
            ax.fill_between(r, np.fmin(a, b), np.fmax(a, b), alpha=0.4, label=display(m))
    for ax, name in ((axes[0], "SSIM"), (axes[1], "HaarPSI")):
        ax.set_xlabel("i-th best reconstructed training image")
        ax.set_ylabel(f"best-match {name}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    _save(fig, path)


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: Path,
               title: str = "low sample spread predicts a true match", xlabel: str = "false-match rate",
               ylabel: str = "true-match rate", log: bool = False) -> None:
    """ROC curves per method: by default the samples' spread as a blind detector of a false
    restoration (paper Figure 4's argument); ``leakage_roc.png``: training images against unseen
    ones (a log false-positive axis shows the 1% and 5% rates)."""
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for m, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, lw=1.6, label=f"{display(m)} (AUROC {auc:.2f})")
    ax.plot([1e-3 if log else 0, 1], [1e-3 if log else 0, 1], "k:", lw=1)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(1e-3, 1)
        for f in (0.01, 0.05):
            ax.axvline(f, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, path)


def grid(rows: list[tuple[str, np.ndarray]], path: Path, per_row: int = 15) -> None:
    """Image grid: for each block of ``per_row`` images, one row per method then the target.
    rows: [(label, (K, C, H, W) uint8 or float in [0, 1], C = 1 or 3)]; positions past the end stay white,
    NaN images (no reconstruction assigned to that training image) are black."""
    k = rows[0][1].shape[0]
    h, w = rows[0][1].shape[-2:]
    blocks = int(np.ceil(k / per_row))
    nrow = blocks * len(rows)
    fig, axes = plt.subplots(nrow, 1, figsize=(per_row * 0.55 + 1.6, nrow * 0.62))
    axes = np.atleast_1d(axes)
    for b in range(blocks):
        for j, (label, imgs) in enumerate(rows):
            ax = axes[b * len(rows) + j]
            strip = np.ones((h, per_row * (w + 2) - 2, 3))
            for i in range(per_row):
                idx = b * per_row + i
                if idx >= k:
                    break
                im = imgs[idx]
                im = np.nan_to_num(im.astype(np.float64) / (255.0 if im.dtype == np.uint8 else 1.0), nan=0.0)
                strip[:, i * (w + 2) : i * (w + 2) + w] = np.clip(im.transpose(1, 2, 0), 0, 1)  # one channel: broadcast grey
            ax.imshow(strip, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            for s in ax.spines.values():
                s.set_visible(False)
    _save(fig, path)


def coverage_figure(hist: pd.DataFrame, summary: dict, path: Path) -> None:
    """Histogram of pairs per pool image (coverage of the pool by the dataset)."""
    labels = [f"{a}" if (b is None or pd.isna(b) or a == b) else f"{a}-{int(b)}" for a, b in zip(hist["pairs_from"], hist["pairs_to"])]
    labels = [f"{a}+" if (b is None or pd.isna(b)) else lab for lab, a, b in zip(labels, hist["pairs_from"], hist["pairs_to"])]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar(range(len(hist)), hist["images"], color="tab:blue")
    ax.set_xticks(range(len(hist)), labels, rotation=45)
    ax.set_xlabel("pairs per pool image")
    ax.set_ylabel("pool images")
    ax.set_title(f"{summary['images_seen']} of {summary['pool_images']} pool images appear at least once")
    ax.grid(alpha=0.3, axis="y")
    _save(fig, path)
