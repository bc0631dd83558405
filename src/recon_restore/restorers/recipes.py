"""What training a restorer means: a ``Recipe`` (network, loss, stream of training pairs),
made by each trained kind's ``recipe`` (``restorers.base.Network``); the training schedule
of a params section; the balanced sampler's stream of (reconstruction, original) pairs
that the restorers trained on the dataset share (paper sections 3 and 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from .train import TrainSpec


@dataclass
class Recipe:
    kind: str  # checkpoint kind (the kind's ``network_kind``)
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


def with_steps(t: dict, steps: int) -> dict:
    """A ``train`` section of ``steps`` steps: the step-based schedule (BF-DnCNN's halving)
    scaled with it, so that a shorter training has the same shape (learning curves)."""
    out = dict(t, steps=int(steps))
    if t.get("halve_after") is not None:
        out["halve_after"] = max(1, round(t["halve_after"] * steps / t["steps"]))
        out["halve_every"] = max(1, round(t["halve_every"] * steps / t["steps"]))
    return out


def input_reads(name: str, src: str, path: str | None) -> dict:
    """The fingerprint entry of a training input (``manifest`` or ``pool``); a missing one is an error."""
    from ..io import file_sha256

    if not path:
        raise UserError(f"restorers train --method {name} needs --{src}")
    return {src: file_sha256(path)}


def balanced_pairs(name: str, manifest: str | None, resample: dict, seed: int) -> tuple[object, dict]:
    """The balanced sampler over the dataset's (reconstruction, original) pairs, and what it reads."""
    from ..dataset.manifest import load_manifest
    from ..dataset.sampler import BalancedSampler

    reads = input_reads(name, "manifest", manifest)
    _, shards = load_manifest(manifest)
    stream = BalancedSampler(shards, resample["K"], resample["repeats"], resample["noise_fraction"], seed, resample["window"])
    return stream, dict(reads, resample=resample)


def describe(stream) -> str:
    """One log line about a training stream."""
    if hasattr(stream, "expected_per_repeat"):
        return f"balanced sampler: {stream.n_pairs} pairs, ~{stream.expected_per_repeat():.0f} examples per repeat"
    if hasattr(stream, "n_inputs"):
        return f"recon2recon: {stream.n_inputs} reconstructions with a partner"
    return f"pool: {len(stream.images)} images"
