"""Which pool images each dataset run trains on (paper section 2, "number of runs").

* Phase 1 (``uniform``): a uniformly random, class-balanced subset per run (150 + 150).
* Phase 2 (``least_seen``): per class, sample from the ``least_seen / 2`` images that
  appear least often in the dataset so far (ties broken at random). The paper updates the
  counts after every run, which a cluster cannot do; here counts are updated between
  waves of ``wave_runs`` runs (one plan per wave; a wave's jobs run in parallel).

Run ids are global and contiguous: phase 1 runs first, then phase 2 waves. Every run's
seed is derived from the preset seed and its id, so a run is reproducible on its own.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..seeding import derive_seed


def sample_run(labels: np.ndarray, per_class: int, rng: np.random.Generator, allowed: np.ndarray | None = None) -> np.ndarray:
    """``per_class`` images of every class of ``labels`` (the attack's training labels: -1/+1 for
    the binary attack, class indices for the multiclass one)."""
    out = []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        if allowed is not None:
            idx = np.intersect1d(idx, allowed)
        if len(idx) < per_class:
            raise UserError(f"dataset wave: only {len(idx)} pool images of class {int(c):+d} available, {per_class} per class needed")
        out.append(rng.choice(idx, size=per_class, replace=False))
    return np.sort(np.concatenate(out))


def least_seen(labels: np.ndarray, counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The n / C least-seen images of each of the C classes (random tie-break)."""
    keep = []
    classes = np.unique(labels)
    for c in classes:
        idx = np.nonzero(labels == c)[0]
        order = rng.permutation(len(idx))
        idx = idx[order]
        idx = idx[np.argsort(counts[idx], kind="stable")]
        keep.append(idx[: n // len(classes)])
    return np.sort(np.concatenate(keep))


def make_wave(
    labels: np.ndarray,
    run_ids: list[int],
    per_class: int,
    seed: int,
    phase: str = "uniform",
    counts: np.ndarray | None = None,
    least_seen_n: int | None = None,
) -> dict:
    allowed = None
    if phase == "least_seen":
        if counts is None or least_seen_n is None:
            raise ValueError("phase 'least_seen' needs counts and least_seen_n")
        allowed = least_seen(labels, counts, least_seen_n, np.random.default_rng(derive_seed(seed, "least-seen", run_ids[0])))
    elif phase != "uniform":
        raise ValueError(f"unknown phase {phase!r}")
    runs = []
    for r in run_ids:
        s = derive_seed(seed, "dataset-run", r)
        idx = sample_run(labels, per_class, np.random.default_rng(s), allowed)
        runs.append({"run": int(r), "seed": int(s), "indices": idx.tolist()})
    return {"phase": phase, "per_class": per_class, "least_seen": least_seen_n, "runs": runs}


def counts_from_shards(shard_paths, pool_size: int) -> np.ndarray:
    """Occurrences z of every pool image in the pairs of the given shards."""
    from .shards import open_shard

    z = np.zeros(pool_size, dtype=np.int64)
    for p in shard_paths:
        with open_shard(p) as f:
            src = f["targets/source_index"][()]
            rows = f["pairs/target_row"][()]
        np.add.at(z, src[rows], 1)
    return z


def layout(cfg: dict) -> dict:
    """Run, job and wave numbering of the dataset stage (shared with the Snakefile)."""
    d = cfg["dataset"]
    per_job = d["runs_per_job"]
    p1, p2, wave = d["phase1_runs"], d["phase2_runs"], d["wave_runs"]
    for name, v in (("phase1_runs", p1), ("phase2_runs", p2), ("wave_runs", wave)):
        if v % per_job:
            raise UserError(f"params: dataset.{name} = {v} must be a multiple of dataset.runs_per_job = {per_job}")
    waves = [("uniform", list(range(0, p1)))] if p1 else []
    for s in range(p1, p1 + p2, wave):
        waves.append(("least_seen", list(range(s, min(p1 + p2, s + wave)))))
    jobs = []
    for w, (_, runs) in enumerate(waves):
        for j in range(0, len(runs), per_job):
            jobs.append({"job": len(jobs), "wave": w, "runs": runs[j : j + per_job]})
    return {"waves": waves, "jobs": jobs}
