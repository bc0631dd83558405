"""Random hyperparameters per reconstruction run (paper section 5.1).

lr ~ logU[0.01, 1], sigma ~ logU[1e-6, 0.1], lambda_min ~ U[0.01, 0.5],
alpha ~ U[10, 500]. Each run's draw comes from its own seed and is recorded. The paper
does not give lambda's learning rate; it is a parameter (Haim et al.'s code: 1e-4).
"""

from __future__ import annotations

import math

import numpy as np

from ..seeding import derive_seed


def _draw(rng: np.random.Generator, spec: dict) -> float:
    dist, lo, hi = spec["dist"], float(spec["low"]), float(spec["high"])
    if dist == "loguniform":
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    if dist == "uniform":
        return float(rng.uniform(lo, hi))
    if dist == "fixed":
        return lo
    raise ValueError(f"unknown distribution {dist!r}")


def draw_run(seed: int, run: int, ranges: dict, lambda_lr: float | None) -> dict:
    rng = np.random.default_rng(derive_seed(seed, "eval-run", run))
    hp = {k: _draw(rng, ranges[k]) for k in ("lr", "sigma", "lambda_min", "alpha")}
    hp["lambda_lr"] = hp["lr"] if lambda_lr is None else float(lambda_lr)
    hp["seed"] = derive_seed(seed, "eval-run-init", run)
    hp["run"] = run
    return hp
