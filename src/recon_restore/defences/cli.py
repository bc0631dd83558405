"""``recon-restore defences target|table``: the defences study (issue "what protects training
data", item 3). ``target`` trains one setting's evaluation network; its runs, restorations and
matches are the ``attack runs``, ``evaluate collect|restore|match`` commands unchanged."""

from __future__ import annotations

import logging
from pathlib import Path

from ..cli_args import common, labelled_paths
from ..errors import UserError
from ..io import atomic_path, check_writable, provenance
from ..runtime import device as get_device
from ..runtime import setup

log = logging.getLogger(__name__)


def register(sub) -> None:
    g = sub.add_parser("defences", help="defences study: evaluation networks trained with a defence, and the table").add_subparsers(
        dest="verb", required=True)
    p = g.add_parser("target", help="train the evaluation network under one defence setting (e.g. dp_sgd-8)")
    common(p, device=True)
    p.add_argument("--setting", required=True, help="<defence>-<value>, a setting of params defences (defences settings)")
    p.add_argument("--heldout", required=True, help="held-out image set (data prepare --heldout)")
    p.add_argument("--out", required=True, help="output target network file (.pt)")
    p.set_defaults(func=target_cmd)
    p = g.add_parser("table", help="leakage against accuracy per setting: CSV, Markdown and a figure")
    common(p)
    p.add_argument("--heldout", required=True, help="held-out image set: the networks' test accuracy on images they never saw")
    p.add_argument("--target", nargs="+", required=True, metavar="SETTING=FILE",
                   help="each setting's target network, the undefended one as none=FILE")
    p.add_argument("--matches", nargs="+", required=True, metavar="SETTING=FOLDER",
                   help="each setting's folder of match files <method>.h5 (evaluate match)")
    p.add_argument("--methods", nargs="+", required=True, help="the methods to tabulate (plain first is not required)")
    p.add_argument("--note", default="", help="a line above the Markdown table")
    p.add_argument("--out-csv", required=True, help="every (setting, method): counts, intervals, ROC, accuracy")
    p.add_argument("--out-md", required=True, help="the summary table and every method's counts")
    p.add_argument("--out-fig", required=True, help="PNG: leakage against test accuracy per defence")
    p.set_defaults(func=table_cmd)
    p = g.add_parser("settings", help="print the settings of params defences, one per line")
    common(p)
    p.set_defaults(func=settings_cmd)


def _section(prm) -> dict:
    cfg = prm.cfg.get("defences")
    if not cfg:
        raise UserError(f"{prm.source}: preset {prm.preset!r} has no 'defences' section")
    return cfg


def settings_cmd(args) -> None:
    from .defences import settings

    print("\n".join(settings(_section(setup(args)))))


def target_cmd(args) -> None:
    from ..attack.evaluation import train_network
    from ..attack.target_file import save_target
    from .defences import get, parse, settings

    prm = setup(args)
    cfg = _section(prm)
    name, value = parse(args.setting)
    if args.setting not in settings(cfg):
        raise UserError(f"--setting {args.setting}: not a setting of params defences ({', '.join(settings(cfg))})")
    check_writable(args.out, args.overwrite)
    defence = get(name)
    attack, ts, res, stats = train_network(
        prm, args.heldout, get_device(args, prm), label=args.setting, progress=args.progress,
        train=lambda attack, w, ts, tr, progress: defence.train(attack, w, ts, tr, value, cfg, prm.seed, progress))
    stats = {**stats, "defence": name, "value": value}
    log.info("%s: %s", args.setting, stats)
    save_target(args.out, res.weights, ts.images, ts.labels, ts.ids, ts.mean, stats,
                provenance(prm.cfg, prm.seed, preset=prm.preset, attack=attack.name, defence=args.setting), args.overwrite)


def table_cmd(args) -> None:
    from ..attack import attacks
    from ..data.store import read_image_set
    from .table import collect, figure, markdown, summary, write_csv

    prm = setup(args)
    ev = prm.section("evaluate")
    for p in (args.out_csv, args.out_md, args.out_fig):
        check_writable(p, args.overwrite)
    targets = labelled_paths(args.target, "defences table --target", "SETTING", "target network file")
    folders = {}
    for t in args.matches:
        k, sep, v = t.partition("=")
        if not sep or not k or not Path(v).is_dir():
            raise UserError(f"defences table --matches {t!r}: expected SETTING=FOLDER of match files, an existing folder")
        folders[k] = v
    held = read_image_set(args.heldout, prm.spec)
    rows = collect(targets, folders, args.methods, held, attacks.get(prm.section("attack")), ev["good_threshold"],
                   ev["bootstrap"], prm.seed)
    write_csv(args.out_csv, rows, args.overwrite)
    with atomic_path(args.out_md, args.overwrite) as tmp:
        Path(tmp).write_text(markdown(rows, args.note) + "\n")
    figure(rows, args.out_fig, args.overwrite)
    for r in summary(rows):
        log.info("%s: test accuracy %.3f, plain %d / %.1f, best %s %s / %s", r["setting"], r["test_accuracy"], r["plain_good"],
                 r["plain_null"], r["best"], r["best_good"], r["best_null"])
