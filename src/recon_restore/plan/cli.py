"""``recon-restore plan``: print a preset's compute plan (``plan.compute``) and flag every
job whose estimated hours exceed the runtime its SLURM profile gives it."""

from __future__ import annotations

import logging
import math

import yaml

from ..cli_args import common
from ..errors import UserError
from ..io import write_json
from ..runtime import setup

log = logging.getLogger(__name__)
KINDS = ("a100", "h100")


def register(sub) -> None:
    p = sub.add_parser("plan", help="compute plan of a preset: jobs, FLOPs per job, GPU-hours, jobs over their runtime")
    common(p)
    p.add_argument("--profile", default="workflow/profiles/slurm/profile.yaml", help="the SLURM profile (runtime limits)")
    p.add_argument("--utilisation", type=float, default=0.4, help="share of the GPU's peak throughput reached (default 0.4)")
    p.add_argument("--json", default=None, help="also write the plan as JSON")
    p.add_argument("--defences", action="store_true",
                   help="also the defences study's jobs (`snakemake defences_all`, not part of the default target)")
    p.set_defaults(func=plan_cmd)


def _fmt(h: float) -> str:
    return f"{h:,.1f}" if h >= 0.1 else f"{h * 60:.1f} min"


def plan_cmd(args) -> None:
    from .compute import PEAK_TFLOPS, plan, precision_options

    prm = setup(args)
    if not 0 < args.utilisation <= 1:
        raise UserError(f"--utilisation {args.utilisation}: expected a share in (0, 1]")
    try:
        with open(args.profile) as f:
            profile = yaml.safe_load(f)
    except OSError as e:
        raise UserError(f"{args.profile}: cannot read the SLURM profile ({e.strerror})") from None
    jobs = plan(prm.cfg, profile, args.utilisation, KINDS, args.defences)
    print(f"# Compute plan: preset {prm.preset}, {args.utilisation:.0%} of peak "
          f"(TFLOP/s: " + "; ".join(f"{k.upper()} " + ", ".join(f"{p} {v:g}" for p, v in PEAK_TFLOPS[k].items()) for k in KINDS) + ")\n")
    print("| rule | job | jobs | TFLOP per job | precision | GPUs per job | A100 h per job | H100 h per job | limit h | over limit |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---|")
    for j in jobs:
        if not j.on_gpu:
            print(f"| {j.rule} | {j.what or '-'} | {j.count:,} | {j.flops / 1e12:,.1f} | CPU | - | - | - | {j.limit_h:g} | - |")
            continue
        over = ", ".join(k.upper() for k in KINDS if j.flagged(k)) or "no"
        print(f"| {j.rule} | {j.what or '-'} | {j.count:,} | {j.flops / 1e12:,.1f} | {j.precision} | {j.gpus} | "
              f"{_fmt(j.hours['a100'])} | {_fmt(j.hours['h100'])} | {j.limit_h:g} | {over} |")
    stages: dict[str, dict[str, float]] = {}
    for j in (j for j in jobs if j.on_gpu):
        st = stages.setdefault(j.stage or j.rule.split("_")[0], {k: 0.0 for k in KINDS})
        for k in KINDS:
            st[k] += j.gpu_hours(k)
    print("\n| stage | A100 GPU-hours | H100 GPU-hours |\n|---|---:|---:|")
    for s, h in stages.items():
        print(f"| {s} | {h['a100']:,.0f} | {h['h100']:,.0f} |")
    total = {k: sum(h[k] for h in stages.values()) for k in KINDS}
    print(f"| **total** | **{total['a100']:,.0f}** | **{total['h100']:,.0f}** |")
    train = [j for j in jobs if j.rule == "restorers_train"]
    if train:
        print("\nRestorer training at every precision (wall hours of the job on its GPUs):\n")
        print("| job | GPUs | " + " | ".join(f"{p} A100 / H100" for p in ("fp64", "fp32", "tf32", "bf16")) + " |")
        print("|---|---:|" + "---:|" * 4)
        for j in train:
            o = precision_options(j, args.utilisation, KINDS)
            print(f"| {j.what} | {j.gpus} | " + " | ".join(f"{_fmt(o[p]['a100'])} / {_fmt(o[p]['h100'])}" for p in o) + " |")
    flagged = [(j, k) for j in jobs if j.on_gpu for k in KINDS if j.flagged(k)]
    if args.json:
        write_json(args.json, {"preset": prm.preset, "utilisation": args.utilisation, "peak_tflops": PEAK_TFLOPS,
                               "jobs": [dict(rule=j.rule, job=j.what, count=j.count, flops=j.flops, precision=j.precision,
                                             gpus=j.gpus, limit_h=j.limit_h, hours=j.hours) for j in jobs],
                               "gpu_hours": stages, "flagged": [f"{j.rule} {j.what} on {k}" for j, k in flagged]}, args.overwrite)
    if flagged:
        for j, k in flagged:
            print(f"\nOVER LIMIT: {j.rule} {j.what} needs {j.hours[k]:.1f} h on {k.upper()} ({j.gpus} GPU), limit {j.limit_h:g} h")
        raise UserError(f"{len(flagged)} job(s) exceed their profile runtime ({args.profile}); see the table")
    if any(math.isnan(j.limit_h) for j in jobs if j.on_gpu):
        log.warning("some rules have no runtime in %s", args.profile)
