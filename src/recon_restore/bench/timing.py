"""Timing helpers for the benchmarks: device synchronisation and median of repeats."""

from __future__ import annotations

import statistics
import time

import torch


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def median_time(fn, dev: torch.device, repeat: int, warmup: int = 2) -> float:
    """Median wall time of ``fn`` over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(dev)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync(dev)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)
