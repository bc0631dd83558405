"""``recon-restore report build``: tables, figures, metrics JSON and DVC plot curves."""

from __future__ import annotations

from pathlib import Path

from ..attack.target_file import load_target
from ..cli_args import common
from ..errors import UserError
from ..evaluate.match_file import read_match, read_skipped
from ..evaluate.plain import read_plain_summary
from ..io import open_h5
from ..methods import order
from ..runtime import setup


def register(sub) -> None:
    g = sub.add_parser("report", help="report stage: tables and figures").add_subparsers(dest="verb", required=True)
    p = g.add_parser("build", help="write every table, figure and metric of the report")
    common(p)
    p.add_argument("--target", required=True)
    p.add_argument("--plain", required=True)
    p.add_argument("--restored", nargs="*", default=[], help="restored HDF5 files (for the image grids)")
    p.add_argument("--matches", nargs="+", required=True, help="match files (evaluate match --out), one per method")
    p.add_argument("--coverage", nargs=2, default=None, metavar=("JSON", "CSV"), help="dataset coverage (dataset coverage --out-json --out-csv)")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=build_cmd)


def _read_restored(paths: list[str], plain) -> tuple[dict, dict, dict]:
    """Every method's restorations, the per-reconstruction spread (``<restorer>_std``) of
    the restorers that draw samples, and the classical restorers' calibrated choices."""
    import json

    images, spread, calibration = {"plain": plain}, {}, {}
    for p in paths:
        with open_h5(p, "restored reconstructions") as f:
            chosen = json.loads(f.attrs.get("chosen", "null") or "null")
            if isinstance(chosen, str):
                chosen = json.loads(chosen)
            if chosen and chosen.get("position"):
                calibration[Path(p).stem] = chosen
            for k in f:
                if f[k].ndim == 4:
                    images[k] = f[k][()]
                elif f[k].ndim == 1 and k.endswith("_std"):
                    spread[k.removesuffix("_std")] = f[k][()]
    return images, spread, calibration


def build_cmd(args) -> None:
    from .build import ReportInputs, build

    prm = setup(args)
    matches, skipped = {}, {}
    for p in args.matches:
        s = read_skipped(p)
        if s:
            skipped[s[0]] = s[1]
            continue
        d = read_match(p)
        matches[d.method] = d
    if "plain" not in matches:
        raise UserError("report build: the match file of the plain reconstructions is required")
    plain, runs, criterion = read_plain_summary(args.plain)
    restored, spread, calibration = _read_restored(args.restored, plain)
    tgt = load_target(args.target)
    inp = ReportInputs({m: matches[m] for m in order(matches)}, restored, spread, tgt["images"].numpy(), tgt["ids"].numpy(),
                       tgt["labels"].numpy(), runs, criterion, tuple(args.coverage) if args.coverage else None,
                       {m: skipped[m] for m in order(skipped)}, {m: calibration[m] for m in order(calibration)})
    build(inp, prm.cfg, prm.seed, prm.preset, Path(args.out_dir), args.overwrite)
