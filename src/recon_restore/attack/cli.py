"""``recon-restore attack target|runs``: the evaluation network and its reconstruction runs
(paper section 5.1). The dataset setting's runs execute inside ``dataset shard`` jobs."""

from __future__ import annotations

import logging
import shutil

import torch

from ..cli_args import common, int_at_least
from ..errors import UserError
from ..fingerprint import fingerprint
from ..io import check_writable, file_sha256, provenance, run_resumable
from ..runtime import device as get_device
from ..runtime import setup
from ..seeding import torch_generator
from ..status import RunStatus
from ..precision import dtype_of, matmul_mode
from . import attacks
from .evaluation import train_network
from .reconstruct import Hparams, ReconConfig, reconstruct
from .runs_file import write_runs
from .target_file import load_target, save_target

log = logging.getLogger(__name__)


def register(sub) -> None:
    g = sub.add_parser("attack", help="attack stage: target network and KKT reconstruction runs").add_subparsers(dest="verb", required=True)
    p = g.add_parser("target", help="train the evaluation target network on held-out images")
    common(p, device=True, attack=True)
    p.add_argument("--heldout", required=True, help="held-out image set (data prepare --heldout)")
    p.add_argument("--out", required=True, help="output target network file (.pt)")
    p.set_defaults(func=target_cmd)
    p = g.add_parser("runs", help="one batch of evaluation reconstruction runs with random hyperparameters")
    common(p, device=True, attack=True)
    p.add_argument("--target", required=True, help="target network file (attack target --out)")
    p.add_argument("--batch", type=int_at_least(0), required=True, help="batch index b: runs [b * runs_per_job, (b + 1) * runs_per_job)")
    p.add_argument("--out", required=True, help="output HDF5 of candidate snapshots")
    p.set_defaults(func=runs_cmd)


def target_cmd(args) -> None:
    prm = setup(args)
    attack, ts, res, stats = train_network(prm, args.heldout, get_device(args, prm), progress=args.progress)
    log.info("evaluation target: %s", stats)
    save_target(args.out, res.weights, ts.images, ts.labels, ts.ids, ts.mean, stats,
                provenance(prm.cfg, prm.seed, preset=prm.preset, attack=attack.name), args.overwrite)


def runs_cmd(args) -> None:
    from ..evaluate.hparams import draw_run

    prm = setup(args)
    dev = get_device(args, prm)
    ev = prm.section("evaluate")
    rc = ev["reconstruct"]
    total, per_job, per_batch = ev["runs"], ev["runs_per_job"], ev["runs_per_batch"]
    first = args.batch * per_job
    if not 0 <= first < total:
        raise UserError(f"--batch {args.batch}: no runs (evaluate.runs = {total}, runs_per_job = {per_job})")
    run_ids = list(range(first, min(total, first + per_job)))
    tgt = load_target(args.target)
    attack = attacks.get(prm.section("attack"))
    dt = dtype_of(rc["precision"])
    w = tgt["w"].to(device=dev, dtype=dt)
    train_x = (tgt["images"].double() / 255 - tgt["mean"]).flatten(1)
    cfg = ReconConfig.from_params(rc)
    hps = [draw_run(prm.seed, r, rc["ranges"], rc["lambda_lr"]) for r in run_ids]
    out = check_writable(args.out, args.overwrite)
    parts_dir = out.with_name(out.name + ".parts")

    def batch(ids: list[int], hb: list[dict]) -> dict:
        hp = Hparams(*(torch.tensor([h[k] for h in hb], dtype=dt, device=dev) for k in ("lr", "lambda_lr", "sigma", "lambda_min", "alpha")))
        state = parts_dir / f"state-{ids[0]:06d}.pt"
        with matmul_mode(rc["precision"]):
            res = reconstruct(w, hp, cfg, w.W1.shape[-1], [torch_generator(h["seed"]) for h in hb], train_images=train_x,
                              checkpoint=state, checkpoint_every=rc["checkpoint_every"], progress=args.progress,
                              desc=f"runs {ids[0]}-{ids[-1]}", attack=attack)
        state.unlink(missing_ok=True)
        nan = torch.full((len(ids), len(res.y), w.W1.shape[-1]), float("nan"))
        log.info("runs %s: status %s", ids, res.status)
        return {"snapshots": torch.stack([res.snapshots.get(s, nan) for s in cfg.snapshots], 1),  # (R, S, 2m, d)
                "lam": res.lam, "y": res.y, "stopped_at": res.stopped_at,
                "status": [int(RunStatus.of(s)) for s in res.status],
                "stationarity": res.stationarity, "box": res.box, "lam_penalty": res.lam_penalty, "abort_score": res.abort_score}

    jobs = [(f"runs-{run_ids[b]:06d}-{run_ids[min(b + per_batch, len(run_ids)) - 1]:06d}.pt",
             lambda b=b: batch(run_ids[b : b + per_batch], hps[b : b + per_batch])) for b in range(0, len(run_ids), per_batch)]
    fp = fingerprint({"evaluate": ev, "attack": attack.name, "seed": prm.seed, "target": file_sha256(args.target), "batch": args.batch},
                     "attack", "runs")
    results = run_resumable(parts_dir, jobs, lambda p, d: torch.save(d, p), lambda p: torch.load(p, weights_only=True), fp)
    write_runs(out, results, hps, cfg.snapshots, provenance(prm.cfg, prm.seed, preset=prm.preset, batch=args.batch,
                                                         abort_criterion=rc["abort"]["criterion"]), args.overwrite)
    shutil.rmtree(parts_dir, ignore_errors=True)
