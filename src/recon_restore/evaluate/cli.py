"""``recon-restore evaluate collect|restore|match`` (paper section 5.1)."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from ..attack.target_file import load_target
from ..cli import common
from ..errors import UserError
from ..io import atomic_path, open_h5, provenance, require_datasets, set_attrs
from ..metrics import postprocess
from ..runtime import device as get_device
from ..runtime import setup
from ..seeding import derive_seed

log = logging.getLogger(__name__)
RESTORERS = {"tv": ["tv"], "bfdncnn": ["bfdncnn"], "edm": ["edm_single", "edm_averaged"]}


def register(sub) -> None:
    g = sub.add_parser("evaluate", help="evaluate stage: plain reconstructions, restoration, best matches").add_subparsers(dest="verb", required=True)
    p = g.add_parser("collect", help="postprocess the snapshots of all successful runs (plain reconstructions)")
    common(p)
    p.add_argument("--target", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="HDF5 files of attack runs")
    p.add_argument("--out", required=True)
    p.set_defaults(func=collect_cmd)
    p = g.add_parser("restore", help="apply one restorer to every plain reconstruction")
    common(p, device=True)
    p.add_argument("--restorer", required=True, choices=sorted(RESTORERS))
    p.add_argument("--plain", required=True)
    p.add_argument("--checkpoint", default=None, help="restorer checkpoint (edm, bfdncnn)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=restore_cmd)
    p = g.add_parser("match", help="best match per training image for one method")
    common(p)
    p.add_argument("--method", required=True, help="plain, tv, bfdncnn, edm_single or edm_averaged")
    p.add_argument("--target", required=True)
    p.add_argument("--plain", required=True)
    p.add_argument("--restored", default=None, help="restored HDF5 holding the method (not for plain)")
    p.add_argument("--out", required=True, help="output CSV")
    p.set_defaults(func=match_cmd)


def collect_cmd(args) -> None:
    prm = setup(args)
    tgt = load_target(args.target)
    mean = tgt["mean"].double()
    imgs, run, snap, cand, yy = [], [], [], [], []
    table, criteria = [], set()
    for path in args.runs:
        with open_h5(path, "attack runs file") as f:
            require_datasets(f, ["snapshots", "snapshot_iterations", "status", "hparams", "y"])
            criteria.add(str(f.attrs.get("abort_criterion", "unknown")))
            iters = f["snapshot_iterations"][()]
            status = f["status"][()]
            y = f["y"][()]
            hp = {k: f["hparams"][k][()] for k in f["hparams"]}
            for i, st in enumerate(status):
                table.append({**{k: v[i].item() for k, v in hp.items()}, "status": ["ok", "aborted", "failed"][st],
                              "stopped_at": int(f["stopped_at"][i]), "stationarity": float(f["stationarity"][i]),
                              "abort_score": float(f["abort_score"][i])})
                if st != 0:
                    continue
                s = torch.from_numpy(f["snapshots"][i]).double()  # (S, 2m, d)
                for k, it in enumerate(iters):
                    x = s[k].view(-1, 3, 32, 32)
                    ok = ~torch.isnan(x).flatten(1).any(1)
                    imgs.append(postprocess(x[ok], mean).float())
                    n = int(ok.sum())
                    run += [int(hp["run"][i])] * n
                    snap += [int(it)] * n
                    cand += torch.nonzero(ok).flatten().tolist()
                    yy.append(y[ok.numpy()])
    if not imgs:
        raise UserError(f"no successful reconstruction runs in {args.runs}; all runs aborted or failed")
    images = torch.cat(imgs).numpy()
    df = pd.DataFrame(table)
    with atomic_path(args.out, args.overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("images", data=images, compression="gzip")
            f.create_dataset("run", data=np.asarray(run, dtype=np.int64))
            f.create_dataset("snapshot", data=np.asarray(snap, dtype=np.int64))
            f.create_dataset("candidate", data=np.asarray(cand, dtype=np.int64))
            f.create_dataset("y", data=np.concatenate(yy))
            g = f.create_group("runs")
            for c in df.columns:
                col = df[c].to_numpy()
                g.create_dataset(c, data=col.astype("S") if col.dtype == object else col)
            set_attrs(f, provenance(prm.cfg, prm.seed, preset=prm.preset, runs_total=len(df),
                                    runs_ok=int((df.status == "ok").sum()), runs_aborted=int((df.status == "aborted").sum()),
                                    runs_failed=int((df.status == "failed").sum()), abort_criterion=",".join(sorted(criteria))))
    log.info("plain reconstructions: %d from %d successful runs (%d aborted, %d failed)", len(images),
             int((df.status == "ok").sum()), int((df.status == "aborted").sum()), int((df.status == "failed").sum()))


def read_plain(path) -> tuple[torch.Tensor, np.ndarray]:
    with open_h5(path, "plain reconstructions") as f:
        require_datasets(f, ["images", "run"])
        return torch.from_numpy(f["images"][()]), f["run"][()]


def restore_cmd(args) -> None:
    from ..attack.precision import dtype_of
    from ..restorers import checkpoint
    from ..restorers.classical import tv_denoise
    from ..restorers.restore import restore_bfdncnn, restore_edm

    prm = setup(args)
    dev = get_device(args, prm)
    ev = prm.section("evaluate")
    plain, _ = read_plain(args.plain)
    outs = {}
    if args.restorer == "tv":
        outs["tv"] = tv_denoise(plain, prm.section("restorers", "tv")["weight"])
    else:
        if not args.checkpoint:
            raise UserError(f"evaluate restore --restorer {args.restorer} needs --checkpoint")
        kind, model, _ = checkpoint.load(args.checkpoint, dev)
        if kind != args.restorer:
            raise UserError(f"{args.checkpoint}: is a {kind} checkpoint, expected {args.restorer}")
        if kind == "bfdncnn":
            outs["bfdncnn"] = restore_bfdncnn(model, plain, ev["restore_batch"], dev).single
        else:
            rc = prm.section("restorers", "edm")
            r = restore_edm(model, plain, rc["samples"], rc["sampler"], ev["restore_batch"], dev,
                            derive_seed(prm.seed, "evaluate-restore"), dtype_of(rc["sample_precision"]), args.progress)
            outs["edm_single"], outs["edm_averaged"], outs["edm_std"] = r.single, r.averaged, r.std
    with atomic_path(args.out, args.overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in outs.items():
                f.create_dataset(k, data=v.float().numpy(), compression="gzip" if v.ndim > 1 else None)
            set_attrs(f, provenance(prm.cfg, prm.seed, preset=prm.preset, restorer=args.restorer))


def match_cmd(args) -> None:
    from .match import best_match, split_halves

    prm = setup(args)
    ev = prm.section("evaluate")
    tgt = load_target(args.target)
    targets = tgt["images"].double() / 255
    plain, run = read_plain(args.plain)
    if args.method == "plain":
        cands = plain
    else:
        if not args.restored:
            raise UserError(f"evaluate match --method {args.method} needs --restored")
        with open_h5(args.restored, "restored reconstructions") as f:
            if args.method not in f:
                raise UserError(f"{args.restored}: holds no dataset '{args.method}' (has {sorted(f.keys())})")
            cands = torch.from_numpy(f[args.method][()])
    if cands.shape[0] != plain.shape[0]:
        raise UserError(f"{args.restored}: {cands.shape[0]} images, but {args.plain} has {plain.shape[0]}")
    halves = split_halves(run, derive_seed(prm.seed, "figure5-halves"))
    half = np.asarray([halves[int(r)] for r in run])
    bm = ev["best_match"]
    r = best_match(cands, targets, half, bm["ssim_variant"], bm["haarpsi_topk"])
    df = pd.DataFrame({
        "image": np.arange(len(targets)), "id": tgt["ids"].numpy(), "label": tgt["labels"].numpy(),
        "ssim": r.ssim, "ssim_arg": r.ssim_arg, "ssim_run": run[r.ssim_arg], "haarpsi": r.haarpsi, "haarpsi_arg": r.haarpsi_arg,
        "half0_ssim": r.half_ssim[0], "half1_ssim": r.half_ssim[1], "half0_haarpsi": r.half_haarpsi[0], "half1_haarpsi": r.half_haarpsi[1],
    })
    with atomic_path(args.out, args.overwrite) as tmp:
        df.to_csv(tmp, index=False)
    log.info("%s: %d of %d training images with best SSIM > %s", args.method, int((df.ssim > ev["good_threshold"]).sum()),
             len(df), ev["good_threshold"])
