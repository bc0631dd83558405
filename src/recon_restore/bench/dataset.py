"""``recon-restore bench dataset``: the restoration dataset at scale (paper sections 2, 3).

Writes a synthetic dataset of ``pairs`` pairs in ``shards`` shards with the real shard
schema and writer: runs of 300 targets drawn from a 50,000-image pool, each run's pairs
spread over its images with a heavy-tailed (log-normal) reconstructability so the
per-image counts z are as skewed as the paper describes; reconstructions are random
bytes (real ones are noise-like: gzip saves 8-9%). Then it measures, in a fresh process
so that the peak memory is the sampler's own: the balanced sampler's throughput (pairs/s
including the 10% noise examples, one process), its peak memory (anonymous resident
memory, sampled while it runs; the total RSS also counts memory-mapped shard pages, which
are reclaimable page cache), and the bytes per pair on disk, extrapolated to the
paper's ~60 million pairs.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from ..data.spec import CIFAR  # the benchmarks time the paper's images
from ..dataset.shards import ShardData, write_shard

PAPER_PAIRS = 60e6


def make_synthetic(folder: Path, pairs: int, shards: int, compression: str | None, seed: int = 0,
                   pool: int = 50_000, per_run: int = 300, pairs_per_run: int = 400) -> list[Path]:
    rng = np.random.default_rng(seed)
    weight = rng.lognormal(0.0, 1.5, pool)
    folder.mkdir(parents=True, exist_ok=True)
    per_shard = pairs // shards
    paths, run_id = [], 0
    for s in range(shards):
        n_runs = max(1, per_shard // pairs_per_run)
        counts = np.full(n_runs, per_shard // n_runs)
        counts[: per_shard - counts.sum()] += 1
        p = {k: [] for k in ("target_row", "run", "epoch", "candidate", "ssim", "margin")}
        t = {k: [] for k in ("source_index", "run")}
        for j, k in enumerate(counts):
            imgs = rng.choice(pool, per_run, replace=False)
            w = weight[imgs] / weight[imgs].sum()
            p["target_row"].append(j * per_run + rng.choice(per_run, size=k, p=w))
            p["run"].append(np.full(k, run_id))
            p["epoch"].append(rng.choice([100, 200, 300, 500, 800, 1400, 2400, 4100, 7000, 10000, 11900], size=k))
            p["candidate"].append(rng.integers(0, 400, k))
            p["ssim"].append(rng.uniform(0.2, 0.9, k))
            p["margin"].append(rng.uniform(0.05, 0.5, k))
            t["source_index"].append(imgs)
            t["run"].append(np.full(per_run, run_id))
            run_id += 1
        n_t = n_runs * per_run
        data = ShardData(
            dict({k: np.concatenate(v) for k, v in p.items()}, recon=rng.integers(0, 256, (per_shard, 3, 32, 32), dtype=np.uint8)),
            dict({k: np.concatenate(v) for k, v in t.items()}, image=rng.integers(0, 256, (n_t, 3, 32, 32), dtype=np.uint8),
                 aug_label=rng.standard_normal((n_t, 9)).astype(np.float32)),
            {"run": np.arange(run_id - n_runs, run_id), "seed": np.zeros(n_runs), "status": np.zeros(n_runs),
             "mean": rng.random((n_runs, 3, 32, 32), dtype=np.float32), "train_loss": np.zeros(n_runs),
             "min_margin": np.zeros(n_runs), "stationarity": np.zeros(n_runs), "box": np.zeros(n_runs),
             "lam_penalty": np.zeros(n_runs), "pairs": counts},
        )
        path = folder / f"shard-{s}.h5"
        write_shard(path, data, {"synthetic": True}, overwrite=True, compression=compression)
        paths.append(path)
    return paths


def _rss_anon_mb() -> float:
    """Anonymous resident memory of this process (excludes memory-mapped file pages)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(paths: list[Path], examples: int, batch: int, window: int) -> dict:
    """Run in a fresh process: sampler set-up time, throughput, peak memory."""
    from ..dataset.sampler import BalancedSampler

    t0 = time.perf_counter()
    s = BalancedSampler(paths, K=11, repeats=140, noise_fraction=0.1, seed=0, window=window)
    setup = time.perf_counter() - t0
    n, t1, anon = 0, time.perf_counter(), _rss_anon_mb()
    for i, b in enumerate(s.batches(batch)):
        n += b.recon.shape[0]
        if i % 16 == 0:
            anon = max(anon, _rss_anon_mb())
        if n >= examples:
            break
    dt = time.perf_counter() - t1
    return {
        "pairs": s.n_pairs,
        "images_seen": int((s.z > 0).sum()),
        "max_z": int(s.z.max()),
        "expected_examples_per_repeat": s.expected_per_repeat(),
        "setup_s": setup,
        "examples": n,
        "pairs_per_s": n / dt,
        "peak_anon_mb": anon,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run(folder: Path, pairs: int, shards: int, compression: str | None, examples: int, batch: int, window: int) -> dict:
    t0 = time.perf_counter()
    paths = make_synthetic(folder, pairs, shards, compression)
    gen = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in paths)
    cmd = [sys.executable, "-c", "import json, sys; from pathlib import Path; from recon_restore.bench.dataset import measure; "
           f"print(json.dumps(measure([Path(p) for p in {[str(p) for p in paths]!r}], {examples}, {batch}, {window})))"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    m = json.loads(out)
    m.update(shards=shards, compression=compression or "none", generate_s=gen, bytes=size, bytes_per_pair=size / m["pairs"],
             paper_gb=size / m["pairs"] * PAPER_PAIRS / 1e9)
    return m
