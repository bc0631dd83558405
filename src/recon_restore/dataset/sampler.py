"""Balanced resampling on the fly (paper section 3, "dataset balancing", "random noise").

If a pool image appears z times among all pairs, each of its occurrences is kept with
probability min(1, K/z) (K = 11); this is repeated for R = 140 independent repeats whose
union is the training set (balanced in expectation). A fraction (10%) of examples are
noise-only: the mean of a run's training images plus noise, postprocessed like a
snapshot at epoch 0, paired with one of that run's images.

The sampler is a deterministic stream (seed, repeat, position): repeat r draws its keep
mask and a full permutation of its examples; examples are read in windows, one sorted
read per shard per window, so the dataset is never loaded into memory. Only one float
per pair (its keep probability) is held. ``start`` resumes the stream after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import torch

from ..metrics import postprocess
from ..seeding import derive_seed
from .shards import open_shard


@dataclass
class Batch:
    recon: torch.Tensor  # (B, 3, 32, 32) float32 in [0, 1]
    target: torch.Tensor  # (B, 3, 32, 32) float32 in [0, 1]
    aug_label: torch.Tensor  # (B, 9)
    noise: torch.Tensor  # (B,) bool: noise-only example


class BalancedSampler:
    def __init__(self, shards: list[str | Path], K: float = 11, repeats: int = 140, noise_fraction: float = 0.1,
                 seed: int = 0, window: int = 65536):
        if not shards:
            raise ValueError("the sampler needs at least one shard")
        self.paths = [Path(p) for p in shards]
        self.K, self.repeats, self.noise_fraction, self.seed, self.window = K, repeats, noise_fraction, seed, window
        self.files: list[h5py.File] = [open_shard(p) for p in self.paths]
        counts = [int(f.attrs["pairs"]) for f in self.files]
        self.offsets = np.concatenate([[0], np.cumsum(counts)])
        self.n_pairs = int(self.offsets[-1])
        # z per pool image, then the keep probability of every pair
        sources = [f["targets/source_index"][()] for f in self.files]
        trows = [f["pairs/target_row"][()] for f in self.files]
        pool = int(max((s.max() for s in sources if len(s)), default=0)) + 1
        z = np.zeros(pool, dtype=np.int64)
        for s, t in zip(sources, trows):
            np.add.at(z, s[t], 1)
        self.z = z
        self.keep_prob = np.concatenate([np.minimum(1.0, K / np.maximum(z[s[t]], 1)) for s, t in zip(sources, trows)]).astype(np.float32)
        # runs available for noise examples: (shard, run row, first target row, n targets)
        runs = []
        for i, f in enumerate(self.files):
            trun = f["targets/run"][()]
            for j, r in enumerate(f["runs/run"][()]):
                rows = np.nonzero(trun == r)[0]
                if len(rows):
                    runs.append((i, j, int(rows[0]), len(rows)))
        self.runs = np.asarray(runs, dtype=np.int64).reshape(-1, 4)
        if self.n_pairs == 0:
            raise ValueError(f"the shards {[str(p) for p in self.paths]} hold no pairs")

    def close(self) -> None:
        for f in self.files:
            f.close()

    # ---- the deterministic example stream ----------------------------------------
    def repeat_examples(self, r: int) -> np.ndarray:
        """Examples of repeat r in order: >= 0 pair ids, < 0 noise examples (-1 - k)."""
        rng = np.random.default_rng(derive_seed(self.seed, "resample", r % self.repeats))
        keep = np.nonzero(rng.random(self.n_pairs) < self.keep_prob)[0]
        f = self.noise_fraction
        n_noise = int(round(len(keep) * f / (1 - f))) if f < 1 else len(keep)
        ex = np.concatenate([keep, -1 - np.arange(n_noise)])
        return ex[rng.permutation(len(ex))]

    def expected_per_repeat(self) -> float:
        return float(self.keep_prob.sum()) / (1 - self.noise_fraction)

    def batches(self, batch_size: int, start: int = 0) -> Iterator[Batch]:
        """Infinite stream of batches, starting after ``start`` examples."""
        self._stash = None
        r, pos = 0, start
        while True:
            ex = self.repeat_examples(r)
            if pos >= len(ex):
                pos -= len(ex)
                r += 1
                continue
            for w0 in range(pos - pos % self.window, len(ex), self.window):
                win = ex[w0 : w0 + self.window]
                data = self._read(win, r, w0)
                lo = max(0, pos - w0)
                buf = (data.recon[lo:], data.target[lo:], data.aug_label[lo:], data.noise[lo:])
                pos = w0 + len(win)
                yield from self._emit(buf, batch_size)
            r, pos = r + 1, 0

    def _emit(self, buf, batch_size):
        # leftovers smaller than a batch are carried via a generator-local stash
        rec, tgt, lab, noi = buf
        stash = getattr(self, "_stash", None)
        if stash is not None:
            rec, tgt, lab, noi = (torch.cat([a, b]) for a, b in zip(stash, (rec, tgt, lab, noi)))
            self._stash = None
        n = (len(rec) // batch_size) * batch_size
        for i in range(0, n, batch_size):
            yield Batch(rec[i : i + batch_size], tgt[i : i + batch_size], lab[i : i + batch_size], noi[i : i + batch_size])
        if n < len(rec):
            self._stash = (rec[n:], tgt[n:], lab[n:], noi[n:])

    def _read(self, win: np.ndarray, r: int, w0: int) -> Batch:
        B = len(win)
        recon = np.empty((B, 3, 32, 32), np.uint8)
        target = np.empty((B, 3, 32, 32), np.uint8)
        label = np.empty((B, 9), np.float32)
        is_noise = win < 0
        # real pairs, one sorted read per shard
        real = np.nonzero(~is_noise)[0]
        shard_of = np.searchsorted(self.offsets, win[real], side="right") - 1
        for s in np.unique(shard_of):
            pos = real[shard_of == s]
            rows = win[pos] - self.offsets[s]
            order = np.argsort(rows)
            urows, inv = np.unique(rows[order], return_inverse=True)
            f = self.files[s]
            rec = f["pairs/recon"][urows]
            trow = f["pairs/target_row"][urows]
            ut, tinv = np.unique(trow, return_inverse=True)
            timg = f["targets/image"][ut]
            tlab = f["targets/aug_label"][ut]
            p = pos[order]
            recon[p] = rec[inv]
            target[p] = timg[tinv][inv]
            label[p] = tlab[tinv][inv]
        # noise-only examples
        noise_pos = np.nonzero(is_noise)[0]
        rng = np.random.default_rng(derive_seed(self.seed, "noise", r, w0))
        if len(noise_pos):
            pick = self.runs[rng.integers(len(self.runs), size=len(noise_pos))]
            tsel = pick[:, 2] + rng.integers(0, pick[:, 3])
            eps = torch.from_numpy(rng.standard_normal((len(noise_pos), 3, 32, 32)))
            for s in np.unique(pick[:, 0]):
                m = pick[:, 0] == s
                f = self.files[s]
                runs_rows = pick[m, 1]
                ur, rinv = np.unique(runs_rows, return_inverse=True)
                means = torch.from_numpy(f["runs/mean"][ur]).double()[rinv]
                ut, tinv = np.unique(tsel[m], return_inverse=True)
                p = noise_pos[m]
                pp = postprocess(eps[m], means)
                recon[p] = (pp * 255).round().to(torch.uint8).numpy()
                target[p] = f["targets/image"][ut][tinv]
                label[p] = f["targets/aug_label"][ut][tinv]
        u8 = lambda a: torch.from_numpy(a).float() / 255  # noqa: E731
        return Batch(u8(recon), u8(target), torch.from_numpy(label), torch.from_numpy(is_noise))
