"""Coverage of the pool by the dataset (paper section 2: 42,707 of 50,000 CIFAR-10 training
images appear at least once): images seen at least once, per class, and a histogram of the
number of pairs per image."""

from __future__ import annotations

import numpy as np

from .waves import counts_from_shards

BIN_EDGES = [0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 10**12]


def coverage(shards, labels: np.ndarray) -> tuple[dict, list[dict]]:
    z = counts_from_shards(shards, len(labels))
    seen = z > 0
    summary = {
        "pool_images": int(len(z)),
        "images_seen": int(seen.sum()),
        "fraction_seen": float(seen.mean()) if len(z) else 0.0,
        "pairs": int(z.sum()),
        "images_seen_per_class": {str(c): int((seen & (labels == c)).sum()) for c in (-1, 1)},
        "max_pairs_per_image": int(z.max()) if len(z) else 0,
        "median_pairs_per_seen_image": float(np.median(z[seen])) if seen.any() else 0.0,
    }
    hist = []
    for lo, hi in zip(BIN_EDGES[:-1], BIN_EDGES[1:]):
        hist.append({"pairs_from": lo, "pairs_to": hi - 1 if hi < 10**12 else None, "images": int(((z >= lo) & (z < hi)).sum())})
    return summary, hist
