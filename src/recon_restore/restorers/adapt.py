"""Two-stage adaptation of a trained restorer to the evaluation setting's reconstructions
(paper 001: "Deep learning with inaccurate training data for image restoration").

Stage 1 is the restorer G0 trained on the dataset setting's pairs (BF-DnCNN). Stage 2
refines a copy G, initialised from G0, on reconstructions Y made in the evaluation setting
(SGD with momentum, random hyperparameters) from separate adaptation networks trained on
pool images (never the evaluated network or its images), with the surrogate targets
X_s = G0(Y) and an adversarial term (paper 001, equations 2-6):

    L_G = 1/(WH) ||G(Y) - G0(Y)||^2 + lambda (-log D(G(Y))),
    L_D = -[log D(X) + log(1 - D(G(Y)))],

X: unpaired clean pool images; G and D updated alternately (k = 1); lambda = 1e-3, Adam
with learning rate 1e-4 and batch 32 (paper 001, section 4). The number of steps (paper:
a tenth of stage 1) and the discriminator (the paper names none; here a small strided CNN,
``Discriminator``) are params. The fidelity term is zero while G = G0.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from ..io import atomic_path
from ..seeding import derive_seed
from .bfdncnn import BiasFreeBatchNorm

log = logging.getLogger(__name__)


class Discriminator(nn.Module):
    """conv3x3 (C -> c), then three 4x4 stride-2 convolutions (c -> 2c -> 4c -> 4c; 32 -> 4
    pixels for CIFAR), leaky ReLU 0.2, and a linear layer to one logit. ``image_shape``: the
    data's (C, H, W)."""

    def __init__(self, channels: int = 32, image_shape: tuple = (3, 32, 32)):
        super().__init__()
        c = channels
        sides = list(image_shape[1:])
        for _ in range(3):
            sides = [(n + 2 - 4) // 2 + 1 for n in sides]
        self.body = nn.Sequential(
            nn.Conv2d(image_shape[0], c, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * c, 4 * c, 4, 2, 1), nn.LeakyReLU(0.2),
        )
        self.head = nn.Linear(4 * c * sides[0] * sides[1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1)).squeeze(1)


@dataclass
class AdaptSpec:
    steps: int
    batch: int
    lr: float
    adversarial_weight: float
    discriminator_channels: int
    checkpoint_every: int = 0
    log_every: int = 50


def check_adaptation_images(adaptation: np.ndarray, evaluated: np.ndarray, pool: np.ndarray, where) -> None:
    """The adaptation network trains on pool images only, none of them the evaluated network's."""
    a, e = ({im.tobytes() for im in x} for x in (adaptation, evaluated))
    if a & e or not a <= {im.tobytes() for im in pool}:
        raise UserError(f"{where}: the adaptation network must be trained on pool images only, none of them the "
                        f"evaluated network's ({len(a & e)} shared, {len(a - {im.tobytes() for im in pool})} not in the pool)")


def fidelity(g_out: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """Paper 001, eq. 2: 1/(WH) ||G(Y) - G0(Y)||^2, the squared error summed over the colour
    channels and averaged over the W x H pixels (and over the batch): C times the mean over
    every value, so that lambda weighs the adversarial term as the paper's does."""
    return F.mse_loss(g_out, surrogate) * g_out.shape[1]


def generator_loss(g_out: torch.Tensor, surrogate: torch.Tensor, d_logit: torch.Tensor, weight: float) -> torch.Tensor:
    """Paper 001, eq. 6: L_2 + lambda L_A with L_A = -log D(G(Y)) (eq. 4)."""
    return fidelity(g_out, surrogate) + weight * F.binary_cross_entropy_with_logits(d_logit, torch.ones_like(d_logit))


def discriminator_loss(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> torch.Tensor:
    """Paper 001, eq. 5 (averaged over the batch)."""
    return (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
            + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))


def adapt(g0: nn.Module, recon: torch.Tensor, clean: np.ndarray, spec: AdaptSpec, seed: int, state_path: Path,
          fingerprint: str = "", device: torch.device = torch.device("cpu")) -> tuple[nn.Module, list[dict]]:
    """Stage 2: returns the adapted restorer G and the loss log. ``recon``: (N, C, H, W) float
    evaluation-setting reconstructions Y of the adaptation networks; ``clean``: uint8 pool
    images (the unpaired X). A saved state of the same ``fingerprint`` is resumed."""
    if len(recon) == 0 or len(clean) == 0:
        raise UserError("restorers adapt: no adaptation reconstructions or no clean images")
    g0 = g0.to(device).eval().requires_grad_(False)
    g = copy.deepcopy(g0).requires_grad_(True).train()
    for m in g.modules():  # keep G0's normalisation statistics (running variance), so G = G0 at the start
        if isinstance(m, (BiasFreeBatchNorm, nn.modules.batchnorm._NormBase)):
            m.eval()
    torch.manual_seed(derive_seed(seed, "adapt-discriminator"))
    d = Discriminator(spec.discriminator_channels, tuple(recon.shape[1:])).to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=spec.lr)
    opt_d = torch.optim.Adam(d.parameters(), lr=spec.lr)
    step, history = 0, []
    if state_path.exists():
        st = torch.load(state_path, map_location=device, weights_only=True)
        if st.get("fingerprint") != fingerprint:
            raise UserError(f"{state_path}: adaptation state was made with other settings, data or code; delete it to start "
                            "over, or restore the settings it was made with")
        g.load_state_dict(st["g"])
        d.load_state_dict(st["d"])
        opt_g.load_state_dict(st["opt_g"])
        opt_d.load_state_dict(st["opt_d"])
        step, history = int(st["step"]), list(st["history"])
    clean_t = torch.from_numpy(clean)
    run = {"fidelity": 0.0, "adversarial": 0.0, "d": 0.0}
    while step < spec.steps:
        rng = np.random.default_rng(derive_seed(seed, "adapt-batch", step))
        y = recon[rng.integers(0, len(recon), spec.batch)].to(device, torch.float32)
        x = clean_t[rng.integers(0, len(clean_t), spec.batch)].to(device, torch.float32) / 255
        with torch.no_grad():
            surrogate = g0(y)
        # discriminator step, then generator step (k = 1)
        out = g(y)
        ld = discriminator_loss(d(x), d(out.detach()))
        opt_d.zero_grad(set_to_none=True)
        ld.backward()
        opt_d.step()
        logit = d(out)
        fid = fidelity(out, surrogate)
        lg = generator_loss(out, surrogate, logit, spec.adversarial_weight)
        opt_g.zero_grad(set_to_none=True)
        lg.backward()
        opt_g.step()
        step += 1
        run["fidelity"] += float(fid.detach())
        run["adversarial"] += float((lg - fid).detach()) / max(spec.adversarial_weight, 1e-12)
        run["d"] += float(ld.detach())
        if step % spec.log_every == 0 or step == spec.steps:
            k = spec.log_every if step % spec.log_every == 0 else step % spec.log_every
            history.append({"step": step, **{key: v / k for key, v in run.items()}})
            log.info("adapt step %d: fidelity %.4g, adversarial %.4g, discriminator %.4g", step, *(v / k for v in run.values()))
            run = dict.fromkeys(run, 0.0)
        if spec.checkpoint_every and step % spec.checkpoint_every == 0 and step < spec.steps:
            _save_state(state_path, {"g": g.state_dict(), "d": d.state_dict(), "opt_g": opt_g.state_dict(),
                                     "opt_d": opt_d.state_dict(), "step": step, "history": history, "fingerprint": fingerprint})
    return g.eval(), history


def _save_state(path: Path, state: dict) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(state, tmp)
