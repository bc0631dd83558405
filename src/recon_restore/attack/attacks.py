"""Attacks: the registry (paper section 1.2: Haim et al.'s binary KKT reconstruction; Buzaglo
et al. 2023: its multiclass form).

An attack is one module with an ``ATTACK`` object (``Attack``), one line in ``ATTACKS`` and
the params ``attack.method``. It owns what differs between attacks: the target network's
outputs and training loss, the labels it trains on, the candidates' labels and multipliers,
and the reconstruction objective. ``reconstruct.reconstruct`` (the optimisation loop, the
snapshots, aborting, resuming) and every stage that calls it (the dataset's runs, the
evaluation's runs, the plan, the bench) go through this interface and never ask which attack
runs.
"""

from __future__ import annotations

import difflib
import importlib

import numpy as np
import torch

from ..errors import UserError

ATTACKS = {
    "kkt_binary": "binary",  # Haim et al. 2022: one output, y in {-1, +1}, one multiplier per candidate
    "kkt_multiclass": "multiclass",  # Buzaglo et al. 2023: C outputs, cross-entropy, margins to the other classes
}


class Attack:
    """What an attack provides (``Weights`` hold R networks; see ``model.py``)."""

    name = ""

    def training_labels(self, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """The labels the target network trains on, from an image set's binary ``labels`` and
        source ``classes``."""
        raise NotImplementedError

    def outputs(self, train_labels: np.ndarray) -> int:
        """Outputs of the target network for these training labels."""
        raise NotImplementedError

    def classes(self, w) -> int:
        """Classes the candidates are spread over (binary: 2)."""
        raise NotImplementedError

    def plan_classes(self, source_classes: int) -> int:
        """Classes a run trains on, given the data source's number of classes (the plan)."""
        raise NotImplementedError

    def init(self, runs: int, in_dim: int, net: dict, outputs: int, generator, dtype, device):
        raise NotImplementedError

    def train(self, w, x, y, optimizer: str, lr: float, epochs: int, progress: bool = False, desc: str = "train targets",
              weight_decay: float = 0.0):
        """Full-batch training of R networks (``train.TrainResult``); x (R, n, d), y (R, n);
        ``weight_decay`` adds weight_decay / 2 ||theta||^2 to each run's loss."""
        raise NotImplementedError

    def predict(self, w, x) -> torch.Tensor:
        """The training labels R networks predict for inputs x (R or 1, n, d): (R, n)."""
        raise NotImplementedError

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean training loss of one network's outputs (n, outputs) for labels y (n,): what a
        minibatch trainer (DP-SGD, the defences study) differentiates."""
        raise NotImplementedError

    def candidate_labels(self, per_class: int, classes: int, dtype, device) -> torch.Tensor:
        raise NotImplementedError

    def lambda_shape(self, m: int, classes: int) -> tuple[int, ...]:
        """Shape of one run's multipliers."""
        raise NotImplementedError

    def cache(self, w):
        """What ``objective`` may reuse across iterations (constant during a reconstruction)."""
        return None

    def select_cache(self, cache, idx: torch.Tensor):
        return cache if cache is None or cache.shape[0] == 1 else cache[idx]

    def objective(self, w, x, lam, y, alpha, lambda_min, cache=None):
        """``objective.ObjectiveOut`` for R runs: parts, gradients in x and lambda, and the first
        layer's residual (the blind abort)."""
        raise NotImplementedError

    def first_layer_sq(self, w, cache=None) -> torch.Tensor:
        """||W1||^2 (+ ||b1||^2) per run: the blind abort's denominator."""
        sq = w.W1.flatten(1).pow(2).sum(1)
        return sq if w.b1 is None else sq + w.b1.pow(2).sum(1)

    def iteration_flops(self, d: int, hidden: list[int], m: int, classes: int) -> int:
        """One reconstruction iteration (counted from the implementation)."""
        raise NotImplementedError

    def epoch_flops(self, d: int, hidden: list[int], n: int, classes: int) -> int:
        """One training epoch on n images."""
        raise NotImplementedError


def module_of(cfg: dict | str) -> str:
    """The module implementing the attack of a params ``attack`` section (its code hash)."""
    name = cfg if isinstance(cfg, str) else cfg.get("method", "kkt_binary")
    get(name)
    return f"{__package__}.{ATTACKS[name]}"


def get(cfg: dict | str) -> Attack:
    """The attack of a params ``attack`` section (``method`` and its settings), or by name."""
    name = cfg if isinstance(cfg, str) else cfg.get("method", "kkt_binary")
    if name not in ATTACKS:
        hint = difflib.get_close_matches(str(name), list(ATTACKS), n=1)
        raise UserError(f"params: key 'attack.method': unknown attack {name!r}" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                        + f"; expected one of {', '.join(ATTACKS)}")
    return importlib.import_module(f".{ATTACKS[name]}", __package__).ATTACK(None if isinstance(cfg, str) else cfg)
