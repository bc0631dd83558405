"""``recon-restore bench <what>``: benchmark commands that print figures."""

from __future__ import annotations

import argparse
import json
import platform

import torch

from ..cli_args import common, int_at_least
from ..runtime import device as get_device
from ..runtime import setup


def register(sub) -> None:
    g = sub.add_parser("bench", help="benchmarks (print figures)").add_subparsers(dest="verb", required=True)
    p = g.add_parser("attack", help="dataset-setting runs per hour: batched closed form vs naive autograd")
    common(p, device=True)
    p.add_argument("--runs", type=int_at_least(1), default=None, help="runs per batch (default: params dataset.runs_per_batch)")
    p.add_argument("--repeat", type=int_at_least(1), default=5)
    p.add_argument("--sizes", nargs="+", default=["demo", "full"], choices=["demo", "full"])
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="fuse the batched optimiser updates with torch.compile, as the cifar-small and paper presets do "
                        "(default: on)")
    p.add_argument("--json", default=None, help="also write the figures as JSON")
    p.set_defaults(func=attack_cmd)
    p = g.add_parser("dataset", help="synthetic dataset at scale: sampler pairs/s, peak memory, bytes per pair")
    p.add_argument("--pairs", type=int_at_least(1), default=2_000_000)
    p.add_argument("--shards", type=int_at_least(1), default=50)
    p.add_argument("--compression", default="none", choices=["none", "gzip", "lzf"])
    p.add_argument("--examples", type=int_at_least(1), default=500_000, help="examples to draw from the sampler")
    p.add_argument("--batch", type=int_at_least(1), default=512)
    p.add_argument("--window", type=int_at_least(1), default=16384)
    p.add_argument("--dir", default=None, help="where to write the shards (default: a temporary folder, removed after)")
    p.add_argument("--json", default=None)
    p.set_defaults(func=dataset_cmd)
    p = g.add_parser("restorers", help="training and restoration images/s: full DDPM++ (EDM), BF-DnCNN, Restormer")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp64", "fp32", "tf32", "bf16"])
    p.add_argument("--train-batch", type=int_at_least(1), default=None, help="default: 128 on a GPU, 4 on a CPU")
    p.add_argument("--sample-batch", type=int_at_least(1), default=None, help="default: 512 on a GPU, 4 on a CPU")
    p.add_argument("--repeat", type=int_at_least(1), default=3)
    p.add_argument("--json", default=None)
    p.set_defaults(func=restorers_cmd)
    p = g.add_parser("gpu", help="the first minutes on a GPU: correctness against the CPU, attack, DDPM++ and network "
                     "throughput, NCCL, the plan at measured rates (make gpu-check)")
    common(p)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--tiny", action="store_true", help="every part at toy sizes, on any device (the test suite's mode)")
    p.add_argument("--out-dir", default="results/gpu-check", help="where <device>.json and <device>.md go")
    p.add_argument("--estimate", action="store_true", help="print each part's budget at the paper's sizes on an H100 and exit")
    p.set_defaults(func=gpu_cmd)
    p = g.add_parser("workflow", help="where a workflow run's time went: job-seconds per rule, from its Snakemake log")
    p.add_argument("--log", required=True, help="a Snakemake log (.snakemake/log/*.snakemake.log)")
    p.set_defaults(func=workflow_cmd)


def machine(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def attack_cmd(args) -> None:
    from ..attack import optim
    from ..precision import dtype_of
    from .attack import bench_size

    prm = setup(args)
    optim.set_compile(args.compile)
    dev = get_device(args, prm)
    a = prm.section("attack")
    runs = args.runs or prm.cfg["dataset"]["runs_per_batch"]
    dt = dtype_of(a["train"]["precision"])
    sizes = {
        "demo": dict(d=3072, hidden=a["target"]["hidden"], n=2 * a["train"]["images_per_class"],
                     m=2 * a["reconstruct"]["candidates_per_class"], epochs=a["train"]["epochs"], iters=a["reconstruct"]["iterations"]),
        "full": dict(d=3072, hidden=[1000, 1000], n=300, m=400, epochs=50_000, iters=11_900),
    }
    results = {}
    print(f"bench attack on {machine(dev)} ({dev.type}), precision {a['train']['precision']}, batched runs per batch {runs}, "
          f"fused updates (torch.compile): {'on' if optim.compiling() else 'off'}")
    print(f"{'size':6} {'impl':8} {'runs/batch':>10} {'epoch ms':>10} {'iter ms':>10} {'s/run':>10} {'runs/h':>10} {'GFLOP/s':>9}")
    for s in args.sizes:
        r = bench_size(**sizes[s], runs=runs, dev=dev, dtype=dt, repeat=args.repeat, step_calls=10 if s == "demo" else 2)
        results[s] = dict(r, config=sizes[s])
        for impl in ("naive", "batched"):
            v = r[impl]
            print(f"{s:6} {impl:8} {v['runs_in_batch']:>10} {1e3 * v['train_epoch_s']:>10.2f} {1e3 * v['recon_iter_s']:>10.2f} "
                  f"{v['seconds_per_run']:>10.1f} {v['runs_per_hour']:>10.1f} {v['gflops_per_s']:>9.1f}")
        print(f"{s:6} batched/naive runs-per-hour ratio: {r['ratio']:.2f}x")
    if args.compile and not optim.compiling():
        print("note: torch.compile failed (see the warning above); the batched figures are for eager updates")
    if args.json:
        from ..io import write_json

        write_json(args.json, {"machine": machine(dev), "device": dev.type, "compile": optim.compiling(), "results": results},
                   overwrite=True)
    print(json.dumps({s: round(v["ratio"], 3) for s, v in results.items()}))


def restorers_cmd(args) -> None:
    from ..precision import dtype_of, matmul_mode, resolve_device
    from .restorers import EDM_V100_TRAIN_IMG_S, bench

    dev = resolve_device(args.device)
    gpu = dev.type == "cuda"
    tb = args.train_batch or (128 if gpu else 4)
    sb = args.sample_batch or (512 if gpu else 4)
    with matmul_mode(args.precision):
        r = bench(dev, dtype_of(args.precision), tb, sb, args.repeat)
    print(f"bench restorers on {machine(dev)} ({dev.type}), precision {args.precision}, train batch {tb}, sample batch {sb}")
    print(f"{'model':10} {'parameters':>12} {'train img/s':>12} {'restore img/s':>14}")
    print(f"{'DDPM++':10} {r['edm_parameters']:>12,} {r['edm_train_img_s']:>12.2f} {r['edm_restore_img_s']:>14.3f}   (restore = {r['edm_nfe']} NFE)")
    print(f"{'BF-DnCNN':10} {r['bfdncnn_parameters']:>12,} {r['bfdncnn_train_img_s']:>12.1f} {r['bfdncnn_restore_img_s']:>14.1f}")
    print(f"{'Restormer':10} {r['restormer_parameters']:>12,} {'-':>12} {r['restormer_restore_img_s']:>14.1f}   (pretrained only)")
    print(f"{'N2N U-Net':10} {r['n2n_parameters']:>12,} {r['n2n_train_img_s']:>12.1f} {r['n2n_restore_img_s']:>14.1f}")
    print(f"DDPM++ training vs EDM's ~{EDM_V100_TRAIN_IMG_S:.0f} img/s per V100: {r['edm_train_vs_v100']:.3f}x")
    if args.json:
        from ..io import write_json

        write_json(args.json, dict(r, machine=machine(dev), device=dev.type, precision=args.precision), overwrite=True)


def dataset_cmd(args) -> None:
    import shutil
    import tempfile
    from pathlib import Path

    from .dataset import run

    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="recon-restore-bench-"))
    try:
        r = run(folder, args.pairs, args.shards, None if args.compression == "none" else args.compression,
                args.examples, args.batch, args.window)
    finally:
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"bench dataset on {machine(torch.device('cpu'))}: {r['pairs']:,} synthetic pairs in {r['shards']} shards "
          f"(storage {r['compression']}), {r['images_seen']:,} pool images seen, max z {r['max_z']}")
    print(f"  written in {r['generate_s']:.0f} s; {r['bytes'] / 1e9:.2f} GB on disk = {r['bytes_per_pair']:.0f} bytes per pair "
          f"(60 M pairs: {r['paper_gb']:.0f} GB)")
    print(f"  sampler: set-up {r['setup_s']:.1f} s, {r['pairs_per_s']:,.0f} pairs/s over {r['examples']:,} examples "
          f"(one process), peak memory {r['peak_anon_mb']:,.0f} MB anonymous ({r['peak_rss_mb']:,.0f} MB RSS incl. mapped shard pages)")
    if args.json:
        from ..io import write_json

        write_json(args.json, r, overwrite=True)


def workflow_cmd(args) -> None:
    from .workflow import rule_seconds, table

    rules, wall = rule_seconds(args.log)
    print(table(rules, wall))


def gpu_cmd(args) -> int | None:
    import re
    from pathlib import Path

    from ..errors import UserError
    from ..io import atomic_path, write_json
    from ..precision import resolve_device
    from .gpu import BUDGET_S, estimate, markdown, run

    prm = setup(args)
    if args.estimate:
        est = estimate(prm.cfg)
        for k, v in est.items():
            print(f"{k:12} {v:7.1f} s")
        print(f"{'total':12} {sum(est.values()):7.1f} s (budget {BUDGET_S} s)")
        return None
    try:
        dev = resolve_device(args.device)
    except ValueError as e:
        raise UserError(str(e)) from None
    if dev.type != "cuda" and not args.tiny:
        print("bench gpu: no GPU here (torch.cuda.is_available() is False); nothing to check (--tiny runs the toy sizes)")
        return None
    r = run(dev, args.tiny, prm.cfg)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", r["name"]).strip("-") + ("-tiny" if args.tiny else "")
    out = Path(args.out_dir)
    write_json(out / f"{name}.json", r, overwrite=True)
    text = markdown(r)
    with atomic_path(out / f"{name}.md", overwrite=True) as tmp:
        Path(tmp).write_text(text)
    print(text)
    return 1 if r["failures"] else None
