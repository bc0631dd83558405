"""``recon-restore <stage> <verb>``: one CLI group per pipeline stage.

Every Snakemake rule calls exactly one of these commands with explicit input and output
paths; all tunables come from ``params.yaml`` (``--params``, ``--preset``). Bad input
ends with one line on stderr naming the file, key or value, and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys

from .cli_args import Parser, common, int_at_least  # noqa: F401  (stage modules import them from cli_args)
from .errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from .attack import cli as attack_cli
    from .bench import cli as bench_cli
    from .data import cli as data_cli
    from .plan import cli as plan_cli
    from .dataset import cli as dataset_cli
    from .defences import cli as defences_cli
    from .evaluate import cli as evaluate_cli
    from .report import cli as report_cli
    from .restorers import cli as restorers_cli
    from .robustness import cli as robustness_cli

    parser = Parser(prog="recon-restore", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__import__('recon_restore').__version__}")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")
    for mod in (data_cli, attack_cli, dataset_cli, restorers_cli, evaluate_cli, defences_cli, report_cli, robustness_cli, bench_cli, plan_cli):
        mod.register(sub)
    restorers_cli.register_restore(sub)
    p = sub.add_parser("params", help="validate params.yaml, show a preset in full, or write params.resolved.yaml")
    p.add_argument("verb", choices=["validate", "show", "resolve"],
                   help="resolve: write every preset in full (its base merged in) to <params>.resolved.yaml, the file DVC tracks")
    p.add_argument("--check", action="store_true", help="resolve: write nothing; exit 1 if the resolved file is out of date")
    common(p)
    p.set_defaults(func=_params_cmd)
    return parser


def _params_cmd(args) -> None:
    import json

    from .config import load_doc, load_params, write_resolved
    from .methods import check_sections

    prm = load_params(args.params, args.preset)
    check_sections(prm.cfg["restorers"], prm.source, prm.preset)
    if args.verb == "resolve":
        path, stale = write_resolved(load_doc(args.params), prm.source, check=args.check)  # the file's own preset
        if args.check and stale:
            raise UserError(f"{path}: out of date with {prm.source}; run `recon-restore params resolve`")
        print(f"{path}: {'up to date' if not stale else 'written'}")
    elif args.verb == "validate":
        print(f"{args.params}: valid; preset {prm.preset!r}")
    else:
        print(json.dumps(prm.cfg, indent=2))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse printed its one-line usage error
        return int(e.code or 0)
    try:
        rc = args.func(args)
    except UserError as e:
        print(f"recon-restore: error: {e}", file=sys.stderr)
        return 2
    return rc if isinstance(rc, int) and not isinstance(rc, bool) else 0  # a check that failed (bench gpu: 1)


if __name__ == "__main__":
    sys.exit(main())
