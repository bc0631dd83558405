"""What each restorer is attacked on (paper 004, section 4), and the restorer as a
differentiable function of its input.

* ``plain``: the evaluation's plain reconstructions with the highest assigned SSIM (the
  ``images`` best; choice: where the reference is meaningful), against the training image
  each is assigned to (paper 5.1.1's best match).
* ``training``: inputs with the restorer's own training corruption against their clean
  images: held-out images (never trained on) with the variant's synthetic corruption at the
  middle of its range for the synthetic Noise2Noise variants; dataset pairs (reconstruction,
  augmented original) for the restorers trained on reconstructions (BF-DnCNN, EDM,
  recon2recon), drawn uniformly with a fixed seed.

Each restorer is attacked as its class's ``differentiable`` function: the diffusion
restorer through its Heun sampler with fixed initial noise and ``edm_steps`` steps (2 x
edm_steps - 1 network evaluations; gradient through every one), its error reported with
that same sampler (approximation: fewer steps than restoration uses).
"""

from __future__ import annotations

import numpy as np
import torch

from ..seeding import derive_seed


def plain_inputs(plain: torch.Tensor, assigned: np.ndarray, ssim: np.ndarray, targets: torch.Tensor, n: int):
    """The n plain reconstructions with the highest assigned SSIM, and their assigned images."""
    ok = np.nonzero(np.isfinite(ssim) & (assigned >= 0))[0]
    pick = ok[np.argsort(-ssim[ok], kind="stable")[:n]]
    return plain[pick].float(), targets[assigned[pick]].float()


def training_inputs(restorer, n: int, seed: int, heldout: np.ndarray, shards: list | None):
    """n inputs with the restorer's training corruption and their clean references: its own
    synthetic corruption of held-out images (a restorer trained on the pool), or dataset pairs."""
    method = restorer.name
    if restorer.train_input() == "pool":
        rng = np.random.default_rng(derive_seed(seed, "robustness-heldout", method))
        clean = torch.from_numpy(heldout[np.sort(rng.choice(len(heldout), min(n, len(heldout)), replace=False))]).float() / 255
        return restorer.corrupt_like_training(clean, seed), clean
    from ..dataset.sampler import gather_rows
    from ..dataset.shards import memmap_or_dataset, open_shard

    files = [open_shard(p) for p in shards]
    try:
        sizes = [int(f.attrs["pairs"]) for f in files]
        rng = np.random.default_rng(derive_seed(seed, "robustness-pairs", method))
        glob = np.sort(rng.choice(sum(sizes), min(n, sum(sizes)), replace=False))
        off = np.cumsum([0] + sizes)
        x, y = [], []
        for i, f in enumerate(files):
            rows = glob[(glob >= off[i]) & (glob < off[i + 1])] - off[i]
            if len(rows):
                x.append(gather_rows(memmap_or_dataset(f, "pairs/recon"), rows))
                y.append(gather_rows(memmap_or_dataset(f, "targets/image"), f["pairs/target_row"][()][rows]))
        return torch.from_numpy(np.concatenate(x)).float() / 255, torch.from_numpy(np.concatenate(y)).float() / 255
    finally:
        for f in files:
            f.close()
