"""Defences: the registry. A defence is one module with a ``DEFENCE`` object, one line in
``DEFENCES`` and its params under ``defences.<name>``; a setting is one value of its grid and is
named ``<defence>-<value>`` (a folder of ``results/<preset>/defences/``)."""

from __future__ import annotations

import difflib
import importlib
import math

from ..errors import UserError

DEFENCES = {
    "weight_decay": "weight_decay",  # lambda / 2 ||theta||^2 in the training loss (Buzaglo et al. 2023)
    "length": "length",  # training stopped at a fraction of evaluate.train.epochs
    "dp_sgd": "dp_sgd",  # DP-SGD (Abadi et al. 2016) through Opacus at a privacy budget epsilon
    "minibatch": "minibatch",  # DP-SGD's non-private control: its optimizer and batches, no clipping or noise
}


class Defence:
    """What a defence provides."""

    name = ""

    def values(self, cfg: dict) -> list[float]:
        """Its grid, from the params ``defences`` section."""
        raise NotImplementedError

    def epochs(self, train: dict, value: float, cfg: dict) -> float:
        """Epochs (passes over the training images) its training makes at ``value``, for the
        compute plan; ``train`` is ``evaluate.train``. Default: the undefended training's."""
        return float(train["epochs"])

    def train(self, attack, w, ts, train: dict, value: float, cfg: dict, seed: int, progress: bool = False):
        """Train the evaluation network ``w`` (one run) on ``ts`` (``attack.evaluation.TrainingSet``)
        under this defence at ``value``: (``attack.train.TrainResult``, extra statistics)."""
        raise NotImplementedError


def positive(cfg: dict, key: str, what: str) -> list[float]:
    """The grid ``defences.<key>`` as floats; one clear error unless every value is positive."""
    vals = [float(v) for v in cfg[key]]
    if any(v <= 0 for v in vals):
        raise UserError(f"params: key 'defences.{key}': {vals}; expected {what}")
    return vals


def get(name: str) -> Defence:
    if name not in DEFENCES:
        hint = difflib.get_close_matches(str(name), list(DEFENCES), n=1)
        raise UserError(f"unknown defence {name!r}" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                        + f"; expected one of {', '.join(DEFENCES)}")
    module, _, obj = DEFENCES[name].partition(":")
    return getattr(importlib.import_module(f".{module}", __package__), obj or "DEFENCE")()


def module_of(label: str) -> str:
    """The module implementing a setting's defence (its rules' code hash)."""
    name, _ = parse(label)
    return f"{__package__}.{DEFENCES[name].partition(':')[0]}"


def label(name: str, value: float) -> str:
    return f"{name}-{float(value):g}"


def parse(label: str) -> tuple[str, float]:
    """``weight_decay-0.001`` -> ('weight_decay', 0.001); one clear error otherwise."""
    name, sep, value = str(label).partition("-")
    try:
        v = float(value)
    except ValueError:
        v = float("nan")
    if not sep or not math.isfinite(v):
        raise UserError(f"defence setting {label!r}: expected <defence>-<value>, e.g. weight_decay-0.001")
    get(name)
    return name, v


def settings(cfg: dict) -> list[str]:
    """Every setting of the params ``defences`` section, registry order then grid order."""
    out = []
    for name in DEFENCES:
        if name in cfg:
            out += [label(name, v) for v in get(name).values(cfg)]
    return out


def setting_params(cfg: dict, label_: str) -> dict:
    """What one setting's network reads of the ``defences`` section (its rerun trigger)."""
    name, value = parse(label_)
    sub = cfg.get(name)
    return {"defence": name, "value": value, **({"params": {k: v for k, v in sub.items() if k != "epsilon"}}
                                                if isinstance(sub, dict) else {})}
