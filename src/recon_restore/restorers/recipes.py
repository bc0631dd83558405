"""What training a restorer means, per trained method: the network to build, its loss and
its stream of training pairs (paper sections 3 and 4; papers 002 and 004 for the
Noise2Noise variants).

* ``edm``: the EDM loss on (reconstruction, original) pairs of the balanced sampler.
* ``bfdncnn``: half the summed squared error on the same pairs.
* Noise2Noise variants (``restorers.n2n``): the U-Net on synthetic corruptions of the pool
  images (``n2n_*``: noisy targets, ``n2c_*``: clean targets) or on pairs of two
  reconstructions of one augmented training image (``recon2recon_*``), under L2, L1 or
  annealed L0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from ..methods import parse, section_of
from .train import TrainSpec


@dataclass
class Recipe:
    kind: str  # checkpoint kind (checkpoint.build)
    config: dict  # network config saved with the checkpoint
    loss_fn: Callable
    stream: object  # batches(batch_size, start), close()
    reads: dict  # the inputs the training reads: fingerprinted


def train_spec(t: dict) -> TrainSpec:
    """The training schedule of a ``restorers.<name>.train`` params section."""
    return TrainSpec(steps=t["steps"], batch=t["batch"], lr=t["lr"], precision=t["precision"],
                     lr_rampup_images=t.get("lr_rampup_images", 0.0), rampdown_fraction=t.get("rampdown_fraction", 0.0),
                     betas=tuple(t.get("betas", (0.9, 0.999))), halve_after=t.get("halve_after"),
                     halve_every=t.get("halve_every"), ema_halflife_images=t.get("ema_halflife_images"),
                     ema_rampup_ratio=t.get("ema_rampup_ratio"), checkpoint_every=t["checkpoint_every"], log_every=t["log_every"],
                     gpus=t.get("gpus", 1))


def reads_params(method: str, restorers_cfg: dict) -> dict:
    """The part of the ``restorers`` params a trained method reads (its fingerprint and the
    workflow's rerun trigger): a Noise2Noise variant reads the shared network and schedule
    and its own corruption, not the list of evaluated variants. The number of data-parallel
    processes (``train.gpus``) is left out: it does not change the result, so a training
    may resume with another."""
    v = parse(method)
    sec = restorers_cfg[section_of(method)]
    if "train" not in sec:  # not a trained restorer
        return sec
    train = {k: x for k, x in sec["train"].items() if k != "gpus"}
    if v is None:
        return dict(sec, train=train)
    own = {"recon2recon": sec["recon2recon"]} if v.target == "recon" else {"corruption": sec["corruptions"][v.corruption]}
    return {"network": sec["network"], "train": train, **own}


def recipe_kind(method: str, restorers_cfg: dict) -> tuple[str, dict]:
    """The checkpoint kind and network config of a trained method (an adapted method: its
    stage-1 restorer's)."""
    from ..methods import adapted_from

    method = adapted_from(method) or method
    rcfg = restorers_cfg[section_of(method)]
    if parse(method) is not None:
        return "n2n", dict(rcfg["network"], in_channels=3, out_channels=3)
    if method == "edm":
        return "edm", {"network": rcfg["network"], "sigma_data": rcfg["sigma_data"]}
    if method == "bfdncnn":
        return "bfdncnn", rcfg["network"]
    raise UserError(f"{method!r} is not a trained restorer")


def needs(method: str) -> str:
    """Which input a trained method reads: ``pool`` (synthetic corruption) or ``manifest`` (shards)."""
    v = parse(method)
    return "pool" if v is not None and v.target in ("noisy", "clean") else "manifest"


def recipe(method: str, restorers_cfg: dict, resample: dict, seed: int, manifest: str | None = None,
           pool: str | None = None) -> Recipe:
    from ..dataset.manifest import load_manifest
    from ..io import file_sha256

    rcfg = restorers_cfg[section_of(method)]
    src = needs(method)
    path = pool if src == "pool" else manifest
    if not path:
        raise UserError(f"restorers train --method {method} needs --{src}")
    reads = {src: file_sha256(path)}
    v = parse(method)
    if v is not None:
        from .n2n.data import PoolPairs, ReconPairs
        from .n2n.loss import l0_gamma, n2n_loss

        steps = rcfg["train"]["steps"]
        if v.target == "recon":
            _, shards = load_manifest(manifest)
            try:
                stream = ReconPairs(shards, seed, rcfg["recon2recon"]["pairs"])
            except ValueError as e:
                raise UserError(f"{manifest}: {e}; recon2recon needs them (params restorers.n2n.recon2recon.pairs: any "
                                "also pairs snapshots)") from None
            reads["recon2recon"] = rcfg["recon2recon"]
        else:
            from ..data.store import read_image_set

            try:
                stream = PoolPairs(read_image_set(pool).images, v, rcfg["corruptions"][v.corruption], seed)
            except ValueError as e:
                raise UserError(f"{pool}: {e}") from None

        def loss_fn(m, b, g, step):
            return n2n_loss(m(b.recon), b.target, v.loss, b.valid, l0_gamma(step, steps))

        return Recipe(*recipe_kind(method, restorers_cfg), loss_fn, stream, reads)
    from ..dataset.sampler import BalancedSampler

    _, shards = load_manifest(manifest)
    stream = BalancedSampler(shards, resample["K"], resample["repeats"], resample["noise_fraction"], seed, resample["window"])
    reads["resample"] = resample
    if method == "edm":
        from .edm import edm_loss

        P_mean, P_std = rcfg["P_mean"], rcfg["P_std"]

        def loss_fn(m, b, g, step):
            return edm_loss(m, b.target * 2 - 1, b.recon * 2 - 1, b.aug_label, P_mean, P_std, g, b.part)

        return Recipe(*recipe_kind(method, restorers_cfg), loss_fn, stream, reads)
    if method == "bfdncnn":
        from .bfdncnn import bfdncnn_loss

        def loss_fn(m, b, g, step):
            return bfdncnn_loss(m, b.target, b.recon)

        return Recipe(*recipe_kind(method, restorers_cfg), loss_fn, stream, reads)
    raise UserError(f"{method!r} is not trained by `restorers train` (an adapted restorer: `restorers adapt`)")


def describe(stream) -> str:
    """One log line about a training stream."""
    if hasattr(stream, "expected_per_repeat"):
        return f"balanced sampler: {stream.n_pairs} pairs, ~{stream.expected_per_repeat():.0f} examples per repeat"
    if hasattr(stream, "n_inputs"):
        return f"recon2recon: {stream.n_inputs} reconstructions with a partner"
    return f"pool: {len(stream.images)} images"

