"""Where the dataset's pairs come from, per unit of compute (paper section 2; reviewers
asked for this cost guidance).

A dataset run trains a target network for E epochs on n images, reconstructs m candidates
for I iterations and keeps every snapshot of every matched candidate. The study runs the
dataset setting itself (``generate.reconstruct_batch`` and ``pairs_of``: the same
augmentation, training, reconstruction and matching as a shard job) over a grid of E,
candidates and images per run, and evaluates each trained-and-reconstructed batch at every
iteration cutoff I of the grid by matching only the snapshots up to I (exactly what a run
stopped at I records: a snapshot does not depend on later iterations). Per setting it
reports matched pairs, matched candidates and their share of the candidates (near 1: a
saturated regime, where the study cannot see a fall in yield), unique images matched, the
pairs' SSIM (median, quartiles), the FLOPs of the runs, counted from the models (``flops``:
E epochs of training, I iterations, the snapshot matching) and pairs per PFLOP with a 95%
bootstrap interval over the runs, beside the paper's schedule (E = 50,000, I = 11,900 with
its 11 snapshots) at the same scale.

Scale (``dataset.cost_study``): the study must fit two CPU cores in an hour, and an epoch of
the full-width network costs 16-40 ms there (the optimiser's update of 4 M weights per run
dominates), so 50,000 epochs of one setting would take most of it. The default therefore
halves the width (3072-500-500-1, 1.8 M weights) and runs 8 runs of 10 images and 15
candidates per class (paper: 1000, 150, 200). What transfers: the network stays heavily
over-parameterised (90,000 weights per training image; paper 13,700), which is what the
reconstruction relies on; the compared quantity is a ratio between schedules at one scale;
and FLOPs per epoch and per iteration scale linearly with n and m, so a schedule's FLOP
ratio is the same at any size. What may not: how many epochs the max-margin convergence
needs can depend on n and width; ``hidden``, ``images_per_class`` and
``candidates_per_class`` take the paper's values for a GPU run.
"""

from __future__ import annotations

import copy
import itertools
import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..attack import attacks, flops
from ..data.store import ImageSet
from ..seeding import derive_seed
from .generate import pairs_of, reconstruct_batch
from .waves import sample_run

log = logging.getLogger(__name__)


@dataclass
class Row:
    setting: str
    epochs: int
    iterations: int
    snapshots: int
    images_per_class: int
    candidates_per_class: int
    runs: int
    runs_failed: int
    pairs: int
    candidates_matched: int
    images_matched: int
    ssim_median: float
    ssim_q25: float
    ssim_q75: float
    pflop: float
    pairs_per_pflop: float
    paper: bool = False
    matches_per_candidate: float = float("nan")  # candidates with a pair / candidates reconstructed (saturated near 1)
    pairs_per_pflop_lo: float = float("nan")  # 95% bootstrap interval over the runs
    pairs_per_pflop_hi: float = float("nan")


def run_interval(per_run: np.ndarray, pflop_per_run: float, seed: int = 0, n_boot: int = 2000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of pairs per PFLOP from the runs' own pair counts."""
    per_run = np.asarray(per_run, dtype=np.float64)
    if len(per_run) < 2 or pflop_per_run <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = per_run[rng.integers(0, len(per_run), (n_boot, len(per_run)))].mean(1) / pflop_per_run
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


run_flops = flops.dataset_run_flops  # FLOPs of one dataset run: training, reconstruction, snapshot matching


def settings(study: dict) -> list[tuple[int, int, int]]:
    """(epochs, candidates_per_class, images_per_class) of every batch the study trains."""
    return list(itertools.product(study["epochs"], study["candidates_per_class"], study["images_per_class"]))


def measure(pool: ImageSet, cfg: dict, study: dict, seed: int, device: torch.device, progress: bool = False) -> list[Row]:
    """Run the grid; one row per (epochs, iterations, candidates, images) setting."""
    paper_snaps = list(study["paper_snapshots"])
    rows: list[Row] = []
    for epochs, cand, imgs in settings(study):
        c = copy.deepcopy(cfg)
        last = max(study["iterations"])
        c["attack"]["target"]["hidden"] = list(study["hidden"])
        c["attack"]["train"].update(images_per_class=imgs, epochs=epochs)
        snaps = sorted({s for s in paper_snaps if s <= last} | set(study["iterations"]))
        c["attack"]["reconstruct"].update(candidates_per_class=cand, iterations=last, snapshots=snaps)
        runs = []
        for k in range(study["runs"]):
            s = derive_seed(seed, "cost-study", k)  # the same images and seeds for every setting
            idx = sample_run(attacks.get(c["attack"]).training_labels(pool.labels, pool.classes), imgs, np.random.default_rng(s))
            runs.append({"run": k, "seed": int(s), "indices": idx.tolist()})
        log.info("cost study: %d runs, %d epochs, %d iterations, %d candidates and %d images per class", len(runs), epochs,
                 last, cand, imgs)
        rb = reconstruct_batch(pool, runs, c, device, progress)
        for it in study["iterations"]:
            keep = {s for s in paper_snaps if s <= it} | {it}  # the paper's snapshots of a run stopped at it
            d = pairs_of(rb, c["dataset"]["match"], keep)
            kept = len(keep)
            ss = d.pairs["ssim"].astype(np.float64)
            matched = {(int(r), int(cc)) for r, cc in zip(d.pairs["run"], d.pairs["candidate"])}
            images = set(d.targets["source_index"][d.pairs["target_row"]].tolist()) if len(ss) else set()
            f = len(runs) * run_flops(c["attack"]["target"]["hidden"], 2 * imgs, 2 * cand, epochs, it, kept,
                                      c["dataset"]["match"]["ssim_variant"], tuple(rb.X.shape[2:]))
            q = np.quantile(ss, [0.25, 0.5, 0.75]) if len(ss) else [float("nan")] * 3
            paper = epochs == study["paper_epochs"] and it == study["paper_iterations"]
            per_run = np.bincount(np.asarray(d.pairs["run"], dtype=np.int64), minlength=len(runs))[: len(runs)]
            lo, hi = run_interval(per_run, f / 1e15 / len(runs), derive_seed(seed, "cost-interval", epochs, it, cand, imgs))
            rows.append(Row(f"E{epochs}-I{it}-m{cand}-n{imgs}", epochs, it, kept, imgs, cand, len(runs), int(sum(rb.failed)),
                            len(ss), len(matched), len(images), float(q[1]), float(q[0]), float(q[2]), f / 1e15,
                            len(ss) / (f / 1e15), paper, len(matched) / (len(runs) * 2 * cand), lo, hi))
    return rows


def compare(rows: list[Row], min_ratio: float = 3.0) -> dict:
    """Each setting against the paper schedule at the same candidates and images: the ratio of
    pairs per PFLOP and whether its median pair SSIM is at least the paper's; and against the
    paper's epochs at the same iteration cutoff, i.e. on the same snapshot set (quality and
    yield that fewer epochs cost, free of the snapshots kept): the median SSIM difference and
    the ratio of matches per candidate. The cheapest setting (fewest PFLOP per run) that reaches
    ``min_ratio`` with a median SSIM at least the paper schedule's and at least the paper
    epochs' on the same snapshots is the pick (None: no setting qualifies).
    ``saturated``: whether at least 90% of the candidates matched in every setting, where the
    ratio is only the FLOP ratio times the snapshot ratio and cannot show a fall in yield."""
    out = {}
    paper_epochs = {r.epochs for r in rows if r.paper}
    for r in rows:
        def same(p, iterations=None):
            return p.candidates_per_class == r.candidates_per_class and p.images_per_class == r.images_per_class and (
                iterations is None or p.iterations == iterations)
        ref = next((p for p in rows if p.paper and same(p)), None)
        if ref is None or ref.pairs_per_pflop == 0:
            continue
        snap = next((p for p in rows if p.epochs in paper_epochs and same(p, r.iterations)), None)
        out[r.setting] = {"ratio": r.pairs_per_pflop / ref.pairs_per_pflop, "ssim_ok": r.ssim_median >= ref.ssim_median,
                          "reference": ref.setting, "same_snapshots": None if snap is None else snap.setting,
                          "ssim_delta_same_snapshots": float("nan") if snap is None else r.ssim_median - snap.ssim_median,
                          "yield_ratio_same_snapshots": float("nan") if snap is None or not snap.matches_per_candidate
                          else r.matches_per_candidate / snap.matches_per_candidate}
    ok = [r for r in rows if r.setting in out and not r.paper and out[r.setting]["ssim_ok"] and out[r.setting]["ratio"] >= min_ratio
          and not out[r.setting]["ssim_delta_same_snapshots"] < 0]
    best = min(ok, key=lambda r: r.pflop / max(r.runs, 1), default=None)
    saturated = bool(rows) and all(r.matches_per_candidate >= 0.9 for r in rows)
    return {"settings": out, "best": None if best is None else asdict(best), "min_ratio": min_ratio, "saturated": saturated}
