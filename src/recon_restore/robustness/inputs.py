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

The diffusion restorer is attacked through its Heun sampler with fixed initial noise and
``edm_steps`` steps (2 x edm_steps - 1 network evaluations; gradient through every one),
and its error is reported with that same sampler (approximation: fewer steps than
restoration uses).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..methods import parse
from ..seeding import derive_seed, torch_generator


def restorer_fn(kind: str, model: torch.nn.Module, seed: int, edm_steps: int, sampler_cfg: dict | None = None) -> Callable:
    model = model.eval().requires_grad_(False)
    if kind != "edm":
        return model

    from ..restorers.edm.sampler import heun

    cfg = dict(sampler_cfg or {}, num_steps=edm_steps)

    def f(x: torch.Tensor) -> torch.Tensor:
        g = torch_generator(seed, "robustness-edm-noise")  # the same initial noise for every call
        y = heun(lambda z, s, c: model(z, s, c), x.double() * 2 - 1, generator=g, dtype=torch.float32, **cfg)
        return ((y + 1) / 2).to(x.dtype)

    return f


def plain_inputs(plain: torch.Tensor, assigned: np.ndarray, ssim: np.ndarray, targets: torch.Tensor, n: int):
    """The n plain reconstructions with the highest assigned SSIM, and their assigned images."""
    ok = np.nonzero(np.isfinite(ssim) & (assigned >= 0))[0]
    pick = ok[np.argsort(-ssim[ok], kind="stable")[:n]]
    return plain[pick].float(), targets[assigned[pick]].float()


def training_inputs(method: str, n: int, seed: int, heldout: np.ndarray, n2n_cfg: dict, shards: list | None):
    """n inputs with ``method``'s training corruption and their clean references."""
    v = parse(method)
    if v is not None and v.target in ("noisy", "clean"):
        from ..restorers.n2n.corruption import STRENGTH, corrupt

        rng = np.random.default_rng(derive_seed(seed, "robustness-heldout", method))
        clean = torch.from_numpy(heldout[np.sort(rng.choice(len(heldout), min(n, len(heldout)), replace=False))]).float() / 255
        c = dict(n2n_cfg["corruptions"][v.corruption])
        k = STRENGTH[v.corruption]
        if isinstance(c[k], list):
            c[k] = sum(c[k]) / 2  # the middle of the training range
        noisy, _ = corrupt(clean, v.corruption, c, torch_generator(seed, "robustness-corrupt", method))
        return noisy, clean
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
