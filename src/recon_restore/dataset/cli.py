"""``recon-restore dataset wave|shard|manifest|verify`` (paper sections 2 and 3)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..cli_args import common, int_at_least
from ..fingerprint import fingerprint
from .waves import layout
from ..data.store import read_image_set
from ..errors import UserError
from ..io import check_writable, file_sha256, provenance, read_json, write_json
from ..runtime import device as get_device
from ..runtime import setup

log = logging.getLogger(__name__)


def register(sub) -> None:
    g = sub.add_parser("dataset", help="dataset stage: waves, shards, manifest").add_subparsers(dest="verb", required=True)
    p = g.add_parser("wave", help="which pool images every run of a wave trains on (the wave file)")
    common(p)
    p.add_argument("--pool", required=True)
    p.add_argument("--wave", type=int_at_least(0), required=True)
    p.add_argument("--shards", nargs="*", default=[], help="shards of all earlier waves (phase 2 counts)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=wave_cmd)
    p = g.add_parser("shard", help="one job: train targets, reconstruct, match, write a shard")
    common(p, device=True)
    p.add_argument("--pool", required=True)
    p.add_argument("--wave-file", required=True, help="the wave file of the job's wave (dataset wave --out)")
    p.add_argument("--job", type=int_at_least(0), required=True, help="global job index")
    p.add_argument("--out", required=True)
    p.set_defaults(func=shard_cmd)
    p = g.add_parser("manifest", help="verify shards and write the manifest")
    common(p)
    p.add_argument("--shards", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=manifest_cmd)
    p = g.add_parser("coverage", help="how much of the pool the dataset covers (table and JSON)")
    common(p)
    p.add_argument("--pool", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--out-json", required=True)
    p.add_argument("--out-csv", required=True)
    p.set_defaults(func=coverage_cmd)
    p = g.add_parser("cost-study", help="pairs per PFLOP over a grid of epochs, iterations, candidates and images (dataset.cost_study)")
    common(p, device=True)
    p.add_argument("--pool", required=True)
    p.add_argument("--out-dir", required=True, help="folder for cost.csv, cost.md, cost.json and cost.png")
    p.set_defaults(func=cost_study_cmd)
    p = g.add_parser("verify", help="check shards (or a manifest's shards) for truncation or alteration")
    p.add_argument("paths", nargs="*", help="shard files")
    p.add_argument("--manifest", default=None)
    p.set_defaults(func=verify_cmd)


def wave_cmd(args) -> None:
    from ..attack import attacks
    from .waves import counts_from_shards, make_wave

    prm = setup(args)
    cfg = prm.cfg
    lay = layout(cfg)
    if not 0 <= args.wave < len(lay["waves"]):
        raise UserError(f"--wave {args.wave}: the preset has {len(lay['waves'])} waves")
    phase, runs = lay["waves"][args.wave]
    pool = read_image_set(args.pool, prm.spec)
    counts = counts_from_shards(args.shards, len(pool)) if phase == "least_seen" else None
    labels = attacks.get(cfg["attack"]).training_labels(pool.labels, pool.classes)
    plan = make_wave(labels, runs, cfg["attack"]["train"]["images_per_class"], prm.seed, phase, counts,
                     cfg["dataset"]["least_seen"])
    plan["wave"] = args.wave
    plan["provenance"] = provenance(cfg, prm.seed, preset=prm.preset)
    write_json(args.out, plan, args.overwrite)


def shard_cmd(args) -> None:
    from .generate import generate_job, remove_parts
    from .schedule import effective
    from .shards import write_shard

    prm = setup(args)
    dev = get_device(args, prm)
    lay = layout(prm.cfg)
    if not 0 <= args.job < len(lay["jobs"]):
        raise UserError(f"--job {args.job}: the preset has {len(lay['jobs'])} dataset jobs")
    job = lay["jobs"][args.job]
    plan = read_json(args.wave_file)
    by_run = {r["run"]: r for r in plan.get("runs", [])}
    missing = [r for r in job["runs"] if r not in by_run]
    if missing:
        raise UserError(f"{args.wave_file}: plan lacks runs {missing[:5]} of job {args.job} (wrong wave?)")
    out = check_writable(args.out, args.overwrite)
    pool = read_image_set(args.pool)
    parts = out.with_name(out.name + ".parts")
    runs = [by_run[r] for r in job["runs"]]
    cfg = effective(prm.cfg)  # dataset.schedule: paper | fast
    fp = fingerprint({"attack": cfg["attack"], "dataset": cfg["dataset"], "seed": prm.seed, "runs": runs,
                      "pool": file_sha256(args.pool)}, "dataset", "shard")
    data = generate_job(pool, runs, cfg, parts, dev, args.progress, fp)
    attrs = provenance(prm.cfg, prm.seed, preset=prm.preset, job=args.job, wave=job["wave"], runs=job["runs"])
    write_shard(out, data, attrs, args.overwrite, prm.cfg["dataset"]["compression"])
    remove_parts(parts)
    log.info("shard %s: %d pairs from %d runs", out, len(data.pairs["run"]), len(job["runs"]))


def cost_study_cmd(args) -> None:
    from .cost import compare, measure
    from .cost_report import write_study

    prm = setup(args)
    dev = get_device(args, prm)
    study = prm.section("dataset", "cost_study")
    out = Path(args.out_dir)
    for f in ("cost.csv", "cost.md", "cost.json", "cost.png"):
        check_writable(out / f, args.overwrite)
    rows = measure(read_image_set(args.pool), prm.cfg, study, prm.seed, dev, args.progress)
    verdict = compare(rows, study["min_ratio"])
    write_study(out, rows, verdict, provenance(prm.cfg, prm.seed, preset=prm.preset, pool=file_sha256(args.pool)), args.overwrite)
    best = verdict["best"]
    log.info("cost study: %d settings; best at >= %gx the paper's pairs per PFLOP with its median SSIM: %s", len(rows),
             study["min_ratio"], best["setting"] if best else "none")


def manifest_cmd(args) -> None:
    from .manifest import build_manifest

    prm = setup(args)
    doc = build_manifest(args.shards, args.out, prm.cfg, args.overwrite)
    log.info("manifest: %d shards, %d pairs", len(doc["shards"]), doc["pairs"])


def coverage_cmd(args) -> None:
    import pandas as pd

    from ..io import atomic_path
    from .coverage import coverage
    from .manifest import load_manifest

    prm = setup(args)
    pool = read_image_set(args.pool)
    _, shards = load_manifest(args.manifest)
    summary, hist = coverage(shards, pool.labels)
    summary["provenance"] = provenance(prm.cfg, prm.seed, preset=prm.preset)
    write_json(args.out_json, summary, args.overwrite)
    with atomic_path(args.out_csv, args.overwrite) as tmp:
        pd.DataFrame(hist).to_csv(tmp, index=False)
    log.info("coverage: %d of %d pool images seen at least once", summary["images_seen"], summary["pool_images"])


def verify_cmd(args) -> None:
    from .manifest import load_manifest
    from .shards import verify_shard

    paths = [Path(p) for p in args.paths]
    if args.manifest:
        _, mp = load_manifest(args.manifest, check=True)
        paths += mp
    if not paths:
        raise UserError("dataset verify: give shard paths or --manifest")
    for p in paths:
        counts = verify_shard(p)
        print(f"{p}: ok ({counts['pairs']} pairs, {counts['targets']} targets)")
