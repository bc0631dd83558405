"""A Noise2Noise variant (papers 002 and 004; ``methods.parse`` reads its name) as a restorer
of the methods list: the U-Net trained on synthetic corruptions of the pool images (N2N:
noisy targets, N2C: clean targets) or on pairs of two reconstructions of one augmented
training image (recon2recon), under L2, L1 or annealed L0; one pass to restore."""

from __future__ import annotations

import torch

from ...errors import UserError
from ... import methods
from ..base import Network
from .network import N2NUNet


class N2N(Network):
    network_kind = "n2n-unet"

    @property
    def variant(self) -> methods.Variant:
        return methods.parse(self.name)

    @staticmethod
    def build(config: dict) -> N2NUNet:
        return N2NUNet(**config)

    def network(self) -> dict:
        c = self.spec.channels
        return dict(self.section["network"], in_channels=c, out_channels=c)

    @staticmethod
    def image_channels(config: dict) -> int:
        return int(config["out_channels"])

    def train_input(self) -> str:
        return "pool" if self.variant.target in ("noisy", "clean") else "manifest"

    def reads_params(self) -> dict:
        """The shared network and schedule and the variant's own corruption (or recon2recon
        pairing), not the list of evaluated variants."""
        sec = self.section
        train = {k: x for k, x in sec["train"].items() if k != "gpus"}
        v = self.variant
        own = {"recon2recon": sec["recon2recon"]} if v.target == "recon" else {"corruption": sec["corruptions"][v.corruption]}
        return {"network": sec["network"], "train": train, **own}

    def recipe(self, resample, seed, manifest, pool):
        from .data import PoolPairs, ReconPairs
        from .loss import l0_gamma, n2n_loss
        from ..recipes import Recipe, input_reads

        v, sec = self.variant, self.section
        src = self.train_input()
        reads = input_reads(self.name, src, pool if src == "pool" else manifest)
        steps = sec["train"]["steps"]
        if v.target == "recon":
            from ...dataset.manifest import load_manifest

            _, shards = load_manifest(manifest)
            try:
                stream = ReconPairs(shards, seed, sec["recon2recon"]["pairs"])
            except ValueError as e:
                raise UserError(f"{manifest}: {e}; recon2recon needs them (params restorers.n2n.recon2recon.pairs: any "
                                "also pairs snapshots)") from None
            reads["recon2recon"] = sec["recon2recon"]
        else:
            from ...data.store import read_image_set

            try:
                stream = PoolPairs(read_image_set(pool).images, v, sec["corruptions"][v.corruption], seed)
            except ValueError as e:
                raise UserError(f"{pool}: {e}") from None

        def loss_fn(m, b, g, step):
            return n2n_loss(m(b.recon), b.target, v.loss, b.valid, l0_gamma(step, steps), valid_total(b))

        return Recipe(self.network_kind, self.network(), loss_fn, stream, reads)

    def corrupt_like_training(self, clean: torch.Tensor, seed: int) -> torch.Tensor:
        """The variant's corruption at the middle of its training range."""
        from ...seeding import torch_generator
        from .corruption import STRENGTH, corrupt

        v = self.variant
        c = dict(self.section["corruptions"][v.corruption])
        k = STRENGTH[v.corruption]
        if isinstance(c[k], list):
            c[k] = sum(c[k]) / 2
        noisy, _ = corrupt(clean, v.corruption, c, torch_generator(seed, "robustness-corrupt", self.name))
        return noisy


def valid_total(b) -> torch.Tensor | None:
    """The masked loss's denominator for this process's rows: the valid-pixel count of the
    whole global batch, scaled to the process's share of it (``b.part = (lo, hi, n)``). The
    training loop scales each process's loss by its share and DistributedDataParallel averages,
    so every process dividing by its own count would weight the processes' pixels unequally;
    with this denominator G processes give the gradient of one process on the global batch."""
    from .. import distributed

    if b.valid is None:
        return None
    lo, hi, n = getattr(b, "part", None) or (0, len(b.valid), len(b.valid))
    count = b.valid.expand(-1, b.target.shape[1], -1, -1).sum().detach()
    return distributed.total(count) * (hi - lo) / n


RESTORER = N2N
