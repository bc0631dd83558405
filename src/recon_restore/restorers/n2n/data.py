"""Training pairs for the Noise2Noise variants, as deterministic resumable streams.

Both streams have the balanced sampler's interface (``batches(batch_size, start)``): example
``i`` belongs to epoch ``i // n``, whose order is a permutation drawn from (seed, epoch);
the random draws of the batch that starts at example ``s`` come from (seed, s), so a
resumed run continues the same stream.

* ``PoolPairs``: the pool images (CIFAR-10 train; the demo pool) with two independent
  synthetic corruptions (N2N: noisy input, noisy target) or one (N2C: noisy input, clean
  target). Lehtinen et al. crop and up-size photographs; 32x32 images are used whole.
* ``ReconPairs`` (recon2recon): every shard pair whose augmented training image has
  another pair is an input; its target is a random other reconstruction of the same
  augmented image (the same target row of the same shard: one run, one augmentation),
  from another candidate (``pairs: candidates``) or from another candidate or snapshot
  (``pairs: any``). The clean image is never read. Unlike the restorers trained on clean
  targets, no balancing by how often an image is reconstructed (choice: the pairs are few).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ...dataset.sampler import Batch, gather_rows
from ...dataset.shards import memmap_or_dataset, open_shard
from ...seeding import derive_seed, torch_generator
from .corruption import corrupt
from ...methods import Variant

PAIRINGS = ("candidates", "any")


@lru_cache(maxsize=4)
def _epoch_order(n: int, seed: int, label: str, epoch: int) -> np.ndarray:
    """The epoch's permutation (cached: every batch of an epoch reads the same one)."""
    return np.random.default_rng(derive_seed(seed, label, epoch)).permutation(n)


def _indices(n: int, seed: int, label: str, start: int, size: int) -> np.ndarray:
    """Examples ``start .. start + size`` of the stream of epoch permutations of ``n`` items."""
    out, i = [], start
    while i < start + size:
        e, k = divmod(i, n)
        take = min(n - k, start + size - i)
        out.append(_epoch_order(n, seed, label, e)[k : k + take])
        i += take
    return np.concatenate(out)


class PoolPairs:
    def __init__(self, images: np.ndarray, variant: Variant, corruption_cfg: dict, seed: int):
        """images: (N, C, H, W) uint8 pool images; corruption_cfg: ``restorers.n2n.corruptions``
        section of the variant's corruption."""
        if variant.target not in ("noisy", "clean"):
            raise ValueError(f"{variant.name}: PoolPairs makes synthetic pairs; recon2recon reads shards (ReconPairs)")
        if len(images) == 0:
            raise ValueError("the pool holds no images")
        self.images, self.variant, self.cfg, self.seed = images, variant, corruption_cfg, seed

    def batches(self, batch_size: int, start: int = 0, part: tuple[int, int] | None = None) -> Iterator[Batch]:
        """``part=(lo, hi)``: rows lo..hi-1 of every batch (the corruptions are drawn for the
        whole batch, so a row does not depend on the split)."""
        lo, hi = part or (0, batch_size)
        s = start
        while True:
            idx = _indices(len(self.images), self.seed, "n2n-epoch", s, batch_size)
            clean = torch.from_numpy(self.images[idx]).float().div_(255)
            g = torch_generator(self.seed, "n2n-batch", s)
            noisy, _ = corrupt(clean, self.variant.corruption, self.cfg, g)
            target, valid = (clean, None) if self.variant.target == "clean" else corrupt(clean, self.variant.corruption, self.cfg, g)
            sl = slice(lo, hi)
            yield Batch(noisy[sl], target[sl], torch.zeros(hi - lo, 9), torch.zeros(hi - lo, dtype=torch.bool),
                        None if valid is None else valid[sl])
            s += batch_size

    def close(self) -> None:
        pass


class ReconPairs:
    def __init__(self, shards: list[str | Path], seed: int, pairs: str = "candidates"):
        if pairs not in PAIRINGS:
            raise ValueError(f"recon2recon pairs {pairs!r}; expected one of {', '.join(PAIRINGS)}")
        self.seed = seed
        self.files = [open_shard(p) for p in shards]
        self.recon = [memmap_or_dataset(f, "pairs/recon") for f in self.files]
        shard, row, block = [], [], []
        for i, f in enumerate(self.files):
            n = int(f.attrs["pairs"])
            shard.append(np.full(n, i, dtype=np.int64))
            row.append(np.arange(n, dtype=np.int64))
            # a block: the pairs that may not pair with each other (one candidate, or one pair)
            block.append(f["pairs/candidate"][()].astype(np.int64) if pairs == "candidates" else np.arange(n, dtype=np.int64))
        shard, row, block = (np.concatenate(a) if a else np.zeros(0, np.int64) for a in (shard, row, block))
        group = np.concatenate([f["pairs/target_row"][()].astype(np.int64) for f in self.files]) if self.files else row
        order = np.lexsort((block, group, shard))
        self.shard, self.row = shard[order], row[order]
        g_key = np.stack([self.shard, group[order]], 1)
        b_key = np.stack([self.shard, group[order], block[order]], 1)
        self.g_start, self.g_size = _runs(g_key)
        self.b_start, self.b_size = _runs(b_key)
        self.partners = self.g_size - self.b_size  # other reconstructions of the image outside the block
        self.inputs = np.nonzero(self.partners > 0)[0]
        if len(self.inputs) == 0:
            raise ValueError(f"recon2recon: no augmented training image in {[str(p) for p in shards]} has two "
                             f"reconstructions from different {'candidates' if pairs == 'candidates' else 'candidates or snapshots'}")

    @property
    def n_inputs(self) -> int:
        return len(self.inputs)

    def partner(self, i: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random other reconstruction of the same augmented image, outside ``i``'s block."""
        r = (rng.random(len(i)) * self.partners[i]).astype(np.int64)
        before = self.b_start[i] - self.g_start[i]  # members of the group ahead of the block
        return self.g_start[i] + r + np.where(r >= before, self.b_size[i], 0)

    def batches(self, batch_size: int, start: int = 0, part: tuple[int, int] | None = None) -> Iterator[Batch]:
        """``part=(lo, hi)``: rows lo..hi-1 of every batch; only those are read."""
        lo, hi = part or (0, batch_size)
        s = start
        while True:
            i = self.inputs[_indices(self.n_inputs, self.seed, "recon2recon-epoch", s, batch_size)]
            j = self.partner(i, np.random.default_rng(derive_seed(self.seed, "recon2recon-batch", s)))
            i, j = i[lo:hi], j[lo:hi]
            x, y = self.read(i), self.read(j)
            n = len(i)
            yield Batch(x, y, torch.zeros(n, 9), torch.zeros(n, dtype=torch.bool))
            s += batch_size

    def read(self, k: np.ndarray) -> torch.Tensor:
        out = np.empty((len(k), *self.recon[0].shape[1:]), dtype=np.uint8)
        for s in np.unique(self.shard[k]):
            m = self.shard[k] == s
            out[m] = gather_rows(self.recon[s], self.row[k[m]])
        return torch.from_numpy(out).float().div_(255)

    def close(self) -> None:
        for f in self.files:
            f.close()


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by ``keys``: the start and size of each row's run of equal keys."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    new = np.ones(n, dtype=bool)
    new[1:] = (keys[1:] != keys[:-1]).any(1)
    starts = np.nonzero(new)[0]
    sizes = np.diff(np.append(starts, n))
    run = np.cumsum(new) - 1
    return starts[run], sizes[run]
