"""``recon-restore data prepare``: the pool and held-out image sets of a preset."""

from __future__ import annotations

import logging

from ..cli_args import common
from ..errors import UserError
from ..io import provenance
from ..runtime import setup
from ..seeding import derive_seed
from .store import write_image_set

log = logging.getLogger(__name__)


def register(sub) -> None:
    g = sub.add_parser("data", help="data stage: CIFAR-10 / ciFAIR-10 / offline demo set").add_subparsers(dest="verb", required=True)
    p = g.add_parser("prepare", help="write the pool and held-out image sets")
    common(p)
    p.add_argument("--pool", required=True, help="output HDF5: images the dataset runs sample from")
    p.add_argument("--heldout", required=True, help="output HDF5: images the evaluation network trains on")
    p.set_defaults(func=prepare)


def prepare(args) -> None:
    prm = setup(args)
    cfg = prm.section("data")
    src = cfg["source"]
    if src == "demo":
        from .demo import make_demo_sets

        pool, held = make_demo_sets(cfg["demo"], derive_seed(prm.seed, "demo-data"))
        pool_kind, held_kind = "demo pool", "demo held-out"
    elif src == "cifar10":
        from .cifair import cifair_test_from_cifar, cifair_test_from_zip
        from .cifar import load_cifar10

        c = cfg["cifar10"]
        pool, test = load_cifar10(c["path"], c["checksums"], c.get("url"))
        f = cfg["cifair"]
        if f.get("zip"):
            held = cifair_test_from_zip(f["zip"])
        elif f.get("duplicates"):
            held = cifair_test_from_cifar(test, f["duplicates"])
        else:
            raise UserError(f"{prm.source}: key 'presets.{prm.preset}.data.cifair': set 'zip' or 'duplicates'")
        pool_kind, held_kind = "CIFAR-10 train", "ciFAIR-10 test"
    else:
        raise UserError(f"{prm.source}: key 'presets.{prm.preset}.data.source': unknown source {src!r}")
    meta = provenance(cfg, prm.seed, preset=prm.preset)
    write_image_set(args.pool, pool, dict(meta, content=pool_kind), args.overwrite)
    write_image_set(args.heldout, held, dict(meta, content=held_kind), args.overwrite)
    log.info("pool: %d images (%s); held-out: %d images (%s)", len(pool), pool_kind, len(held), held_kind)
