"""Argument helpers shared by every stage's CLI module: one-line argparse errors,
range-checked integers, and the common options (params, preset, device, overwrite,
progress). Kept apart from ``cli.py``, which registers the stages, so that a stage's
command module never imports the other stages."""

from __future__ import annotations

import argparse


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: ``recon-restore: error: ...``, exit 2."""

    def error(self, message: str):
        self.exit(2, f"recon-restore: error: {self.prog}: {message}\n")


def int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (range-checked where it is parsed)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {v}")
        return v

    parse.__name__ = f"integer >= {low}"
    return parse


def common(p: argparse.ArgumentParser, params: bool = True, device: bool = False, seed: bool = False,
           attack: bool = False) -> None:
    if attack:  # checked against the attack registry where the command builds its attack
        p.add_argument("--attack", default=None, metavar="METHOD",
                       help="replaces params attack.method, e.g. kkt_multiclass (the cross-attack study, evaluate.cross_attack)")
    if params:
        p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
        p.add_argument("--preset", default=None, help="preset to use (default: the file's 'preset' key)")
    if seed:
        p.add_argument("--seed", type=int_at_least(0), default=None,
                       help="replaces the preset's seed (a learning curve's seeds; default: params 'seed')")
    if device:
        p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="default: params 'device'")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--progress", action="store_true", help="show progress bars")


def labelled_paths(items: list[str], option: str, key: str, what: str) -> dict[str, str]:
    """``KEY=PATH`` arguments (e.g. ``evaluate curve --manifest``, ``evaluate compare --same``) as
    {key: path}; one clear error for a malformed item or a missing file."""
    from pathlib import Path

    from .errors import UserError

    out = {}
    for t in items:
        label, sep, path = t.partition("=")
        if not sep or not label or not path:
            raise UserError(f"{option} {t!r}: expected {key}=PATH")
        if not Path(path).is_file():
            raise UserError(f"{path}: {what} ({option} {label}) does not exist")
        out[label] = path
    return out
