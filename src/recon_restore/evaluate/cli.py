"""``recon-restore evaluate collect|restore|match`` (paper section 5.1)."""

from __future__ import annotations

from pathlib import Path


import logging

import h5py
import numpy as np
import torch

from ..attack.target_file import load_target
from ..cli_args import common, labelled_paths
from ..errors import UserError
from ..io import atomic_path, check_writable, open_h5, provenance, set_attrs
from ..methods import NAMES, RESTORERS, missing, restorer_of
from ..runtime import device as get_device
from ..runtime import setup
from ..seeding import derive_seed
from .shards import read_rows

log = logging.getLogger(__name__)


def register(sub) -> None:
    g = sub.add_parser("evaluate", help="evaluate stage: plain reconstructions, restoration, best matches").add_subparsers(dest="verb", required=True)
    p = g.add_parser("collect", help="postprocess the snapshots of all successful runs (plain reconstructions)")
    common(p)
    p.add_argument("--target", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="HDF5 files of attack runs")
    p.add_argument("--out", required=True)
    p.set_defaults(func=collect_cmd)
    p = g.add_parser("restore", help="apply one restorer to every plain reconstruction")
    common(p, device=True, seed=True)
    p.add_argument("--method", "--restorer", dest="restorer", required=True, type=_restorer_of,
                   help="a method of the methods list, or its restorer (edm_single and edm restore with the same restorer)")
    p.add_argument("--plain", required=True)
    p.add_argument("--checkpoint", default=None, help="restorer checkpoint (the trained restorers of the methods list)")
    p.add_argument("--shard", type=int, default=None,
                   help="restore only shard J: the runs J*R..(J+1)*R-1, R = params evaluate.restore_shard_runs.<restorer> (a part for `evaluate merge`)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=restore_cmd)
    p = g.add_parser("merge", help="put the restoration shards (evaluate restore --shard) together in row order")
    common(p)
    p.add_argument("--plain", required=True)
    p.add_argument("--parts", nargs="+", required=True, help="the parts, every shard once")
    p.add_argument("--out", required=True)
    p.set_defaults(func=merge_cmd)
    p = g.add_parser("galleries", help="null galleries: unseen held-out images, K sets the size of the training set")
    common(p, attack=True)
    p.add_argument("--target", required=True)
    p.add_argument("--heldout", required=True, help="held-out image set (data prepare --heldout)")
    p.add_argument("--pool", required=True, help="pool image set the restorers were trained from (data prepare --pool)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=galleries_cmd)
    p = g.add_parser("match", help="assign one method's reconstructions to the training images and to every null gallery")
    common(p, device=True)
    p.add_argument("--method", required=True, choices=NAMES, metavar="METHOD", help="a method of the methods list")
    p.add_argument("--target", required=True)
    p.add_argument("--plain", required=True)
    p.add_argument("--galleries", required=True, help="null galleries (evaluate galleries --out)")
    p.add_argument("--restored", default=None, help="restored HDF5 holding the method (not for plain)")
    p.add_argument("--out", required=True, help="output match file (.h5)")
    p.set_defaults(func=match_cmd)
    p = g.add_parser("abort-study", help="calibrate the blind abort: blind score at abort.at vs each run's final contribution")
    common(p)
    p.add_argument("--target", required=True)
    p.add_argument("--runs", nargs="+", required=True, help="attack runs files made with abort.criterion: none")
    p.add_argument("--out-csv", required=True, help="per-run table")
    p.add_argument("--out-json", required=True, help="AUROC, threshold table, chosen threshold")
    p.set_defaults(func=abort_study_cmd)
    p = g.add_parser("curve", help="learning curves: the table of excess good counts against dataset size, training steps "
                                   "and seed (the workflow's evaluate_curve rules make the match files)")
    common(p)
    p.add_argument("--plain-match", required=True, help="the plain reconstructions' match file (the bar to beat)")
    p.add_argument("--manifest", required=True, nargs="+", metavar="LABEL=PATH", help="the dataset manifest of each data label")
    p.add_argument("--match", required=True, nargs="+", metavar="LABEL:STEPS:SEED:METHOD=PATH", help="one match file per setting")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True, help="the table (mean and range over seeds)")
    p.set_defaults(func=curve_cmd)
    p = g.add_parser("compare", help="two evaluations of the same methods side by side: the cross-attack study, the "
                                     "wrong-release control (the workflow's evaluate_cross and evaluate_wrong rules)")
    common(p)
    p.add_argument("--same", required=True, nargs="+", metavar="METHOD=PATH", help="match files of the preset's evaluation")
    p.add_argument("--other", required=True, nargs="+", metavar="METHOD=PATH", help="match files of the other evaluation")
    p.add_argument("--same-label", required=True, help="the preset's evaluation, as the table names it")
    p.add_argument("--other-label", required=True, help="the other evaluation, as the table names it")
    p.add_argument("--note", default="", help="a sentence above the table")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p.set_defaults(func=compare_cmd)


def _restorer_of(name: str) -> str:
    """``--method``: a method of the methods list (or a restorer's own name) -> its restorer."""
    import argparse

    r = name if name in RESTORERS else restorer_of(name)
    if r is None:
        raise argparse.ArgumentTypeError(f"{name!r} is not a restored method; expected a method or restorer of the methods list "
                                         f"({', '.join(m for m in NAMES if m != 'plain')})")
    return r


def collect_cmd(args) -> None:
    from .plain import collect, run_counts, write_plain

    prm = setup(args)
    tgt = load_target(args.target)
    arrays, table, criteria = collect(args.runs, tgt["mean"].double())
    write_plain(args.out, arrays, table, provenance(prm.cfg, prm.seed, preset=prm.preset, abort_criterion=criteria), args.overwrite)
    c = run_counts(table)
    log.info("plain reconstructions: %d from %d successful runs (%d aborted, %d failed)", len(arrays["images"]),
             c["runs_ok"], c["runs_aborted"], c["runs_failed"])
    if not c["runs_ok"]:
        log.warning("no successful run: every run aborted or failed; every method will count zero good images")


def restore_cmd(args) -> None:
    from .. import methods
    from .shards import restorer_rows

    prm = setup(args)
    dev = get_device(args, prm)
    ev = prm.section("evaluate")
    with open_h5(args.plain, "plain reconstructions") as f:
        run = f["run"][()]
    rows = restorer_rows(ev, args.restorer, run, args.shard)
    plain = read_rows(args.plain, "images", rows)
    outs, extra = {}, {}
    restorer = methods.restorer(args.restorer, prm.section("restorers"), prm.spec)
    skipped = missing(args.restorer, restorer.section)
    if skipped:  # an optional method: an empty file that says why, carried through to the report
        extra["skipped"] = skipped
        log.warning("%s: skipped, %s", args.restorer, skipped)
    elif not len(rows):  # every run (of this shard) aborted: nothing to restore, nor to calibrate on
        outs.update({m: plain.float() for m in restorer.methods})
        log.warning("%s: no plain reconstructions to restore (every run aborted or failed)", args.restorer)
    else:
        restorer.load(dev, args.checkpoint)
        r = restorer.restore(plain, rows, prm.seed, ev["restore_batch"], args.progress)
        outs.update(r.images)
        if r.spread is not None:
            outs[f"{args.restorer}_std"] = r.spread
        extra.update(r.info)
        if r.info:
            log.info("%s: %s", args.restorer, r.info)
    if args.shard is not None:
        extra["shard"] = args.shard
    with atomic_path(args.out, args.overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            for k, v in outs.items():
                f.create_dataset(k, data=v.float().numpy(), compression="gzip" if v.ndim > 1 else None)
            if args.shard is not None:
                f.create_dataset("rows", data=rows.astype(np.int64))
            set_attrs(f, provenance(prm.cfg, prm.seed, preset=prm.preset, restorer=args.restorer, **extra))
    log.info("%s: restored %d reconstructions%s", args.restorer, len(rows), "" if args.shard is None else f" (shard {args.shard})")


def merge_cmd(args) -> None:
    from .shards import merge

    setup(args)
    with open_h5(args.plain, "plain reconstructions") as f:
        n = f["images"].shape[0]
    merge(args.parts, n, args.out, args.overwrite)
    log.info("merged %d parts into %s (%d reconstructions)", len(args.parts), args.out, n)


def galleries_cmd(args) -> None:
    from ..data.store import read_image_set
    from .galleries import build_galleries, check_unseen, write_galleries

    prm = setup(args)
    tgt = load_target(args.target)
    from ..attack import attacks

    held, pool = read_image_set(args.heldout, prm.spec), read_image_set(args.pool, prm.spec)
    timg, tlab = tgt["images"].numpy(), tgt["labels"].numpy()
    held_labels = attacks.get(prm.section("attack")).training_labels(held.labels, held.classes)
    gal = build_galleries(held, tgt["ids"].numpy(), timg, tlab, pool.images, prm.section("evaluate")["null_galleries"],
                          derive_seed(prm.seed, "null-galleries"), held_labels)
    check_unseen(gal, timg, pool.images, str(args.out))
    write_galleries(args.out, gal, provenance(prm.cfg, prm.seed, preset=prm.preset), args.overwrite)
    log.info("null galleries: %d of %d images (%s)", len(gal), gal.images.shape[1], "disjoint" if gal.disjoint else "overlapping")


def method_reader(args, n: int):
    """A reader of ``args.method``'s images by row slice (the plain reconstructions or one
    dataset of a restored file), or, for a skipped optional method, the reason it was skipped."""
    if args.method == "plain":
        return lambda sl: read_rows(args.plain, "images", np.arange(n)[sl])
    if not args.restored:
        raise UserError(f"evaluate match --method {args.method} needs --restored")
    with open_h5(args.restored, "restored reconstructions") as f:
        if "skipped" in f.attrs:
            return str(f.attrs["skipped"])
        if args.method not in f:
            raise UserError(f"{args.restored}: holds no dataset '{args.method}' (has {sorted(f.keys())})")
        if f[args.method].shape[0] != n:
            raise UserError(f"{args.restored}: {f[args.method].shape[0]} images, but {args.plain} has {n}")
    return lambda sl: read_rows(args.restored, args.method, np.arange(n)[sl], "restored reconstructions")


def match_cmd(args) -> None:
    from .galleries import read_galleries
    from .match import match_streamed
    from .match_file import MatchData, write_match, write_skipped

    prm = setup(args)
    ev = prm.section("evaluate")
    bm = ev["best_match"]
    rule, variant = bm["assignment"], bm["ssim_variant"]
    dev = get_device(args, prm)
    tgt = load_target(args.target)
    targets = (tgt["images"].double() / 255).to(dev)
    with open_h5(args.plain, "plain reconstructions") as f:
        run = f["run"][()]
    read = method_reader(args, len(run))
    if isinstance(read, str):
        write_skipped(args.out, args.method, read, provenance(prm.cfg, prm.seed, preset=prm.preset), args.overwrite)
        log.warning("%s: skipped, %s", args.method, read)
        return
    gal = read_galleries(args.galleries)
    if gal.images.shape[1] != len(targets):
        raise UserError(f"{args.galleries}: galleries of {gal.images.shape[1]} images, but the target network has {len(targets)}")
    runs = np.unique(run)
    ridx = np.searchsorted(runs, run)
    main_rule = "ssim" if rule == "none" else rule
    galleries = [(torch.from_numpy(g).double() / 255).to(dev) for g in gal.images]
    m = match_streamed(read, len(run), targets, galleries, ridx, len(runs), main_rule, variant, ev["match_chunk"])
    d = MatchData(args.method, rule, run, runs, m["assigned"], m["ssim"], m["haarpsi"], m["psnr"], m["run_max"],
                  m["null_assigned"], m["null_ssim"], m["null_run_max"])
    write_match(args.out, d, provenance(prm.cfg, prm.seed, preset=prm.preset, ssim_variant=variant), args.overwrite)
    c = d.counts(ev["good_threshold"], n_boot=0)
    log.info("%s: %d of %d training images good (SSIM > %s, assignment %s); null galleries %s; rule 'none' %d",
             args.method, c["good"], d.images, ev["good_threshold"], rule, c["null"], c["good_none"])


def abort_study_cmd(args) -> None:
    from ..attack.runs_file import read_runs
    from ..io import write_json
    from ..metrics.roc import auroc
    from .abort_study import choose_threshold, run_table, selection_table, threshold_table

    prm = setup(args)
    ev = prm.section("evaluate")
    tgt = load_target(args.target)
    mean = tgt["mean"].double()
    targets = tgt["images"].double() / 255
    train_x = (targets - mean).flatten(1)
    snaps, blind, ids, stat = [], [], [], []
    for path in args.runs:
        r = read_runs(path)
        if r.abort_criterion != "none":
            raise UserError(f"{path}: made with abort criterion {r.abort_criterion!r}; the study needs runs made with 'none'")
        snaps.append(r.snapshots)
        blind.append(r.per_run["abort_score"])
        ids.append(r.hparams["run"])
        stat.append(r.per_run["stationarity"])
    table, rb = run_table(np.concatenate(snaps), np.concatenate(blind), np.concatenate(ids), train_x, mean, targets,
                          ev["good_threshold"], ev["best_match"]["ssim_variant"])
    table["stationarity"] = np.concatenate(stat)  # the final KKT residual (a blind ranking)
    thr = threshold_table(table, rb, ev["good_threshold"])
    selection = selection_table(table, rb, ev["good_threshold"], seed=derive_seed(prm.seed, "selection"))
    chosen = choose_threshold(thr)
    auc = auroc(table["blind_score"].to_numpy(), table["useless"].to_numpy())
    weak = table["good"].to_numpy() < np.median(table["good"].to_numpy())
    auc_weak = auroc(table["blind_score"].to_numpy(), weak)
    from scipy.stats import spearmanr

    rho = float(spearmanr(table["blind_score"], table["good"]).statistic) if len(table) > 2 else float("nan")
    with atomic_path(args.out_csv, args.overwrite) as tmp:
        table.to_csv(tmp, index=False)
    write_json(args.out_json, {"runs": len(table), "useless": int(table["useless"].sum()), "auroc_blind_useless": auc,
                               "auroc_blind_below_median": auc_weak, "spearman_blind_good": rho,
                               "abort_at": ev["reconstruct"]["abort"]["at"], "chosen_threshold": chosen,
                               "rule": "lowest threshold that loses no good reconstruction", "thresholds": thr.to_dict("records"),
                               "selection": selection.to_dict("records"),
                               "provenance": provenance(prm.cfg, prm.seed, preset=prm.preset)}, args.overwrite)
    log.info("abort study: %d runs, %d useless (AUROC %.3f), below-median AUROC %.3f, Spearman %.3f, chosen threshold %.4g",
             len(table), int(table["useless"].sum()), auc, auc_weak, rho, chosen)
    for row in selection.to_dict("records"):
        log.info("selection: %s", row)


def curve_cmd(args) -> None:
    from .curve import Setting, collect, table, write_rows

    prm = setup(args)
    manifests = labelled_paths(args.manifest, "evaluate curve --manifest", "LABEL", "dataset manifest")
    check_writable(args.out_csv, args.overwrite)
    check_writable(args.out_md, args.overwrite)
    rows = collect(args.plain_match, manifests, [Setting.parse(t) for t in args.match], prm.section("evaluate")["good_threshold"])
    write_rows(args.out_csv, rows, args.overwrite)
    with atomic_path(args.out_md, overwrite=args.overwrite) as tmp:
        tmp.write_text(table(rows) + "\n")
    print(table(rows))

def compare_cmd(args) -> None:
    from .cross import collect, table, write_rows

    prm = setup(args)
    check_writable(args.out_csv, args.overwrite)
    check_writable(args.out_md, args.overwrite)
    same = labelled_paths(args.same, "evaluate compare --same", "METHOD", "match file")
    other = labelled_paths(args.other, "evaluate compare --other", "METHOD", "match file")
    rows = collect(same, other, prm.section("evaluate")["good_threshold"])
    write_rows(args.out_csv, rows, args.overwrite)
    with atomic_path(args.out_md, args.overwrite) as tmp:
        Path(tmp).write_text(table(rows, args.same_label, args.other_label, args.note) + "\n")
    for r in rows:
        log.info("compare %s: excess %+.1f (%s) -> %+.1f (%s)", r.method, r.same_excess, args.same_label, r.cross_excess,
                 args.other_label)
