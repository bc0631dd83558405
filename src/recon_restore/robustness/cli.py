"""``recon-restore robustness run|report``: adversarial attacks on one trained restorer, and
the study's table and figure (paper 004, section 4)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from ..cli_args import common
from ..errors import UserError
from ..io import atomic_path, check_writable
from ..methods import TRAINED
from ..methods import restorer_class
from ..runtime import device as get_device
from ..runtime import setup

log = logging.getLogger(__name__)


def label(restorer: str) -> str:
    """How tables name an attacked restorer (its class says; e.g. the diffusion restorer is
    attacked with fixed sampler noise)."""
    return restorer_class(restorer).robustness_label(restorer)


def register(sub) -> None:
    g = sub.add_parser("robustness", help="robustness stage: adversarial attacks on the trained restorers (paper 004)"
                       ).add_subparsers(dest="verb", required=True)
    p = g.add_parser("run", help="attack one trained restorer on plain reconstructions and on its training corruption")
    common(p, device=True)
    p.add_argument("--method", required=True, choices=TRAINED, metavar="RESTORER", help="a trained restorer (its checkpoint)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--target", required=True, help="evaluation target network (its training images: the references)")
    p.add_argument("--plain", required=True, help="plain reconstructions (evaluate collect --out)")
    p.add_argument("--match", required=True, help="the plain reconstructions' match file (evaluate match --method plain)")
    p.add_argument("--heldout", required=True, help="held-out images (clean references of the synthetic corruptions)")
    p.add_argument("--manifest", required=True, help="dataset manifest (training pairs of the restorers trained on reconstructions)")
    p.add_argument("--out", required=True, help="per-image CSV")
    p.add_argument("--noise-out", required=True, help="JSON: histograms of the noise and of paper 004's adversarial noise")
    p.set_defaults(func=run_cmd)
    p = g.add_parser("report", help="table (CSV, Markdown) and PSNR-ratio histograms of every attacked restorer")
    common(p)
    p.add_argument("--inputs", nargs="+", required=True, help="per-image CSVs (robustness run --out)")
    p.add_argument("--noise", nargs="+", required=True, help="noise histograms (robustness run --noise-out), one per CSV")
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=report_cmd)


def run_cmd(args) -> None:
    from ..attack.target_file import load_target
    from ..data.store import read_image_set
    from ..dataset.manifest import load_manifest
    from ..evaluate.match_file import read_match
    from ..evaluate.plain import read_plain
    from .. import methods
    from .inputs import plain_inputs, training_inputs
    from ..io import write_json
    from .study import NOISE_EDGES, attack_table

    prm = setup(args)
    dev = get_device(args, prm)
    cfg = prm.section("robustness")
    out = check_writable(args.out, args.overwrite)
    noise_out = check_writable(args.noise_out, args.overwrite)
    restorer = methods.restorer(args.method, prm.section("restorers"), prm.spec)
    restorer.load(dev, args.checkpoint)
    f = restorer.differentiable(restorer.model, prm.seed, cfg)
    plain, _ = read_plain(args.plain)
    m = read_match(args.match)
    tgt = load_target(args.target)
    inputs = {"plain": plain_inputs(plain, m.assigned, m.ssim, tgt["images"].double() / 255, cfg["images"]),
              "training": training_inputs(restorer, cfg["images"], prm.seed, read_image_set(args.heldout).images,
                                          load_manifest(args.manifest)[1])}
    tables, noise = [], {}
    for name, (x, ref) in inputs.items():
        t, noise[name] = attack_table(f, x.to(dev), ref.to(dev), cfg)
        t.insert(0, "input", name)
        t.insert(0, "method", args.method)
        tables.append(t)
        log.info("%s on %s (%d images): PSNR %s", args.method, name, len(x),
                 ", ".join(f"{a} {g.psnr.mean():.2f} dB" for a, g in t.groupby(["attack", "budget"], dropna=False, sort=False)))
    write_json(noise_out, {"method": args.method, "edges": NOISE_EDGES.tolist(), **noise}, overwrite=True)
    with atomic_path(out, overwrite=True) as tmp:
        pd.concat(tables).to_csv(tmp, index=False)


def report_cmd(args) -> None:
    from ..io import write_json
    import json

    from .study import figures, summarise, to_markdown

    prm = setup(args)
    cfg = prm.section("robustness")
    if len(args.noise) != len(args.inputs):
        raise UserError(f"--noise: {len(args.noise)} histogram files for {len(args.inputs)} tables; expected one per table")
    frames, noise = [], {}
    for p, q in zip(args.inputs, args.noise):
        for path in (p, q):
            if not Path(path).is_file():
                raise UserError(f"{path}: robustness output does not exist (robustness run)")
        t = pd.read_csv(p)
        if "attack" not in t.columns:
            raise UserError(f"{p}: no 'attack' column; a robustness table from an older version: rerun robustness run")
        frames.append(t)
        h = json.loads(Path(q).read_text())
        noise[h["method"]] = h
    per_image = pd.concat(frames)
    summ = summarise(per_image)
    d = Path(args.out_dir)
    for name, text in (("robustness.csv", summ.to_csv(index=False)), ("robustness.md", to_markdown(summ, label))):
        with atomic_path(d / name, overwrite=True) as tmp:
            Path(tmp).write_text(text)
    bounded = cfg["bounded"]["default_budget"] if "bounded" in cfg["attacks"] else None
    figures(per_image, noise, bounded, label, d)
    keep = summ[(summ.attack == "dag") | ((summ.attack == "bounded") & np.isclose(summ.budget.fillna(-1), bounded or -2))]
    write_json(d / "robustness.json", {f"{r.method}/{r.input}/{r.attack}": {"psnr_drop": round(float(r.psnr_drop), 4),
                                                                           "ssim_drop": round(float(r.ssim_drop), 4),
                                                                           "psnr_ratio": round(float(r.ratio_mean), 4),
                                                                           "hurt_share": round(float(r.hurt_share), 4)}
                                       for r in keep.itertuples()}, overwrite=True)
