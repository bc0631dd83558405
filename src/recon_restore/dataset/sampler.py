"""Balanced resampling on the fly (paper section 3, "dataset balancing", "random noise").

If a pool image appears z times among all pairs, each of its occurrences is kept with
probability min(1, K/z) (K = 11); this is repeated for R = 140 independent repeats whose
union is the training set (balanced in expectation). A fraction (10%) of examples are
noise-only: the mean of a run's training images plus noise, postprocessed like a
snapshot at epoch 0, paired with one of that run's images.

The sampler is a deterministic stream (seed, repeat, position): repeat r draws its keep
mask and a full permutation of its examples; examples are read in windows of ``window``
examples, gathered per shard (memory-mapped rows for contiguous shards, one sorted read
otherwise) and kept as uint8 until a batch is emitted, so the dataset is never loaded and
memory stays bounded: one float per pair (its keep probability) plus one window.
``start`` resumes the stream after a restart.
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
from .shards import memmap_or_dataset, open_shard


@dataclass
class Batch:
    recon: torch.Tensor  # (B, 3, 32, 32) float32 in [0, 1]
    target: torch.Tensor  # (B, 3, 32, 32) float32 in [0, 1]
    aug_label: torch.Tensor  # (B, 9)
    noise: torch.Tensor  # (B,) bool: noise-only example
    valid: torch.Tensor | None = None  # (B, 1, 32, 32): target pixels that enter the loss (None: all)
    part: tuple[int, int, int] | None = None  # rows [lo, hi) of a global batch of n (data-parallel training)

    def to(self, device: torch.device, dtype: torch.dtype) -> "Batch":
        """The batch on ``device``: images in ``dtype`` and channels-last, labels in ``dtype``."""
        img = lambda t: None if t is None else t.to(device, dtype).contiguous(memory_format=torch.channels_last)  # noqa: E731
        return Batch(img(self.recon), img(self.target), self.aug_label.to(device, dtype), self.noise, img(self.valid), self.part)


def gather_rows(arr, rows: np.ndarray) -> np.ndarray:
    """arr[rows] for a memmap (any order) or an h5py dataset (one sorted, unique read)."""
    if isinstance(arr, np.ndarray):
        return np.asarray(arr[rows])
    u, inv = np.unique(rows, return_inverse=True)
    return arr[u][inv]


class _Shard:
    def __init__(self, path: Path):
        self.file: h5py.File = open_shard(path)
        f = self.file
        self.n_pairs = int(f.attrs["pairs"])
        self.recon = memmap_or_dataset(f, "pairs/recon")
        self.target_row = memmap_or_dataset(f, "pairs/target_row")
        self.image = memmap_or_dataset(f, "targets/image")
        self.aug_label = memmap_or_dataset(f, "targets/aug_label")
        self.mean = memmap_or_dataset(f, "runs/mean")


class BalancedSampler:
    def __init__(self, shards: list[str | Path], K: float, repeats: int, noise_fraction: float, seed: int, window: int):
        """K, repeats, noise_fraction: ``dataset.resample`` in params.yaml (no defaults here, so that
        nothing departs silently from the params); window: examples read per gather."""
        if not shards:
            raise ValueError("the sampler needs at least one shard")
        self.paths = [Path(p) for p in shards]
        self.K, self.repeats, self.noise_fraction, self.seed, self.window = K, repeats, noise_fraction, seed, window
        self.shards = [_Shard(p) for p in self.paths]
        self.offsets = np.concatenate([[0], np.cumsum([s.n_pairs for s in self.shards])]).astype(np.int64)
        self.n_pairs = int(self.offsets[-1])
        if self.n_pairs == 0:
            raise ValueError(f"the shards {[str(p) for p in self.paths]} hold no pairs")
        # z per pool image, then the keep probability of every pair (the only per-pair state)
        sources = [s.file["targets/source_index"][()] for s in self.shards]
        pool = int(max((src.max() for src in sources if len(src)), default=0)) + 1
        z = np.zeros(pool, dtype=np.int64)
        for sh, src in zip(self.shards, sources):
            np.add.at(z, src[np.asarray(sh.target_row[:])], 1)
        self.z = z
        self.keep_prob = np.empty(self.n_pairs, dtype=np.float32)
        for i, (sh, src) in enumerate(zip(self.shards, sources)):
            zz = z[src[np.asarray(sh.target_row[:])]]
            self.keep_prob[self.offsets[i] : self.offsets[i + 1]] = np.minimum(1.0, K / np.maximum(zz, 1))
        # runs available for noise examples: (shard, run row, first target row, n targets)
        runs = []
        for i, sh in enumerate(self.shards):
            trun = sh.file["targets/run"][()]
            for j, r in enumerate(sh.file["runs/run"][()]):
                rows = np.nonzero(trun == r)[0]
                if len(rows):
                    runs.append((i, j, int(rows[0]), len(rows)))
        self.runs = np.asarray(runs, dtype=np.int64).reshape(-1, 4)

    def close(self) -> None:
        for s in self.shards:
            s.file.close()

    # ---- the deterministic example stream ----------------------------------------
    def repeat_examples(self, r: int) -> np.ndarray:
        """Examples of repeat r in order: >= 0 pair ids, < 0 noise examples (-1 - k)."""
        rng = np.random.default_rng(derive_seed(self.seed, "resample", r % self.repeats))
        keep = np.nonzero(rng.random(self.n_pairs, dtype=np.float32) < self.keep_prob)[0]
        f = self.noise_fraction
        n_noise = int(round(len(keep) * f / (1 - f)))
        ex = np.concatenate([keep, -1 - np.arange(n_noise)])
        return ex[rng.permutation(len(ex))]

    def expected_per_repeat(self) -> float:
        return float(self.keep_prob.sum()) / (1 - self.noise_fraction)

    def batches(self, batch_size: int, start: int = 0, part: tuple[int, int] | None = None) -> Iterator[Batch]:
        """Infinite stream of batches, starting after ``start`` examples (a multiple of
        ``batch_size``). ``part=(lo, hi)``: only rows lo..hi-1 of every batch, and only those
        examples are read (data-parallel training: each process reads its own rows)."""
        lo, hi = part or (0, batch_size)
        r, pos, t = 0, start, start  # t: stream index of the example at ``pos`` of repeat r
        stash: list[np.ndarray] | None = None
        while True:
            ex = self.repeat_examples(r)
            if pos >= len(ex):
                pos -= len(ex)
                r += 1
                continue
            for w0 in range(pos - pos % self.window, len(ex), self.window):
                w1 = min(w0 + self.window, len(ex))
                slot = (t - (pos - w0) + np.arange(w1 - w0)) % batch_size  # row of each window example in its batch
                own = (np.arange(w0, w1) >= pos) & (slot >= lo) & (slot < hi)
                parts = self._read(ex[w0:w1], r, w0, own)
                t += w1 - pos
                pos = w1
                if stash is not None:
                    parts = [np.concatenate([a, b]) for a, b in zip(stash, parts)]
                k = hi - lo
                n = (len(parts[0]) // k) * k
                for i in range(0, n, k):
                    yield _to_batch([a[i : i + k] for a in parts])
                stash = [a[n:] for a in parts] if n < len(parts[0]) else None
            r, pos = r + 1, 0

    def _read(self, win: np.ndarray, r: int, w0: int, own: np.ndarray | None = None) -> list[np.ndarray]:
        """uint8 recon and target, float32 labels and a noise flag for the examples of a window
        that ``own`` selects (all by default). Noise examples are drawn for the whole window,
        so that an example does not depend on which others are read."""
        own = np.ones(len(win), dtype=bool) if own is None else own
        is_noise = win < 0
        slot = np.cumsum(own) - 1  # output row of each owned window position
        B = int(own.sum())
        shape = self.shards[0].image.shape[1:]  # the data's image spec (C, H, W), as the shards hold it
        recon = np.empty((B, *shape), np.uint8)
        target = np.empty((B, *shape), np.uint8)
        label = np.empty((B, 9), np.float32)
        real = np.nonzero(~is_noise & own)[0]
        shard_of = np.searchsorted(self.offsets, win[real], side="right") - 1
        for s in np.unique(shard_of):
            pos = real[shard_of == s]
            rows = win[pos] - self.offsets[s]
            sh = self.shards[s]
            order = np.argsort(rows, kind="stable")  # sequential access within the shard
            rows, out = rows[order], slot[pos[order]]
            trow = gather_rows(sh.target_row, rows).astype(np.int64)
            recon[out] = gather_rows(sh.recon, rows)
            target[out] = gather_rows(sh.image, trow)
            label[out] = gather_rows(sh.aug_label, trow)
        noise_pos = np.nonzero(is_noise)[0]
        if len(noise_pos):
            rng = np.random.default_rng(derive_seed(self.seed, "noise", r, w0))
            pick = self.runs[rng.integers(len(self.runs), size=len(noise_pos))]
            tsel = pick[:, 2] + rng.integers(0, pick[:, 3])
            eps = torch.from_numpy(rng.standard_normal((len(noise_pos), *shape), dtype=np.float32))
            mine = own[noise_pos]
            for s in np.unique(pick[mine, 0]):
                m = (pick[:, 0] == s) & mine
                sh = self.shards[s]
                means = torch.from_numpy(np.asarray(gather_rows(sh.mean, pick[m, 1]), dtype=np.float32))
                pp = postprocess(eps[m], means)
                out = slot[noise_pos[m]]
                recon[out] = (pp * 255).round().to(torch.uint8).numpy()
                target[out] = gather_rows(sh.image, tsel[m])
                label[out] = gather_rows(sh.aug_label, tsel[m])
        is_noise = is_noise[own]
        return [recon, target, label, is_noise]


def _to_batch(parts: list[np.ndarray]) -> Batch:
    recon, target, label, noise = parts
    u8 = lambda a: torch.from_numpy(np.ascontiguousarray(a)).float().div_(255)  # noqa: E731
    return Batch(u8(recon), u8(target), torch.from_numpy(np.ascontiguousarray(label)), torch.from_numpy(noise.copy()))
