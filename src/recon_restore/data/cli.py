"""``recon-restore data prepare``: the pool and held-out image sets of a preset."""

from __future__ import annotations

import logging

from ..cli_args import common
from ..io import provenance
from ..runtime import setup
from . import sources
from .store import write_image_set

log = logging.getLogger(__name__)


def register(sub) -> None:
    g = sub.add_parser("data", help="data stage: the data source's pool and held-out image sets (data.sources)").add_subparsers(dest="verb", required=True)
    p = g.add_parser("prepare", help="write the pool and held-out image sets")
    common(p)
    p.add_argument("--pool", required=True, help="output HDF5: images the dataset runs sample from")
    p.add_argument("--heldout", required=True, help="output HDF5: images the evaluation network trains on")
    p.set_defaults(func=prepare)


def prepare(args) -> None:
    prm = setup(args)
    cfg = prm.section("data")
    pool, held, src = sources.prepare(cfg, prm.seed)
    meta = provenance(cfg, prm.seed, preset=prm.preset)
    write_image_set(args.pool, pool, dict(meta, content=src.pool_kind), args.overwrite)
    write_image_set(args.heldout, held, dict(meta, content=src.heldout_kind), args.overwrite)
    log.info("pool: %d images (%s); held-out: %d images (%s); spec %s; classes %s (positive: %s)", len(pool), src.pool_kind,
             len(held), src.heldout_kind, pool.spec, len(pool.class_names), cfg["positive"])
