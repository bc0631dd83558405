"""The conditional diffusion restorer (paper section 3) as a restorer of the methods list:
the EDM loss on the balanced sampler's (reconstruction, original) pairs, restoration by k
Heun samples conditioned on each reconstruction (``single``: the first sample, ``averaged``:
their mean, and the per-image spread across them, paper Figure 4), and its cost: k x
(2 N - 1) network evaluations per reconstruction."""

from __future__ import annotations

import torch

from ..base import Network, Restored
from .loss import edm_loss
from .precond import EDMPrecond


class Diffusion(Network):
    network_kind = "edm-ddpmpp"
    threads = 2

    @staticmethod
    def build(config: dict) -> EDMPrecond:
        return EDMPrecond(config["network"], config.get("sigma_data", 0.5), config.get("cond_scaling", "none"))

    def network(self) -> dict:
        """Six input channels for RGB (paper section 3: noisy state and conditioning image), 2C in general."""
        s, c = self.section, self.spec.channels
        net = dict(s["network"], in_channels=2 * c, out_channels=c, resolution=self.spec.height)
        return {"network": net, "sigma_data": s["sigma_data"], "cond_scaling": s.get("cond_scaling", "none")}

    @staticmethod
    def image_channels(config: dict) -> int:
        return int(config["network"]["out_channels"])

    def restore(self, images, rows, seed, batch, progress=False) -> Restored:
        from ... import methods
        from ...precision import dtype_of
        from ...seeding import derive_seed
        from ..restore import restore_edm

        s = self.section
        r = restore_edm(self.model, images, s["samples"], s["sampler"], batch, self.device, derive_seed(seed, "evaluate-restore"),
                        dtype_of(s.get("sample_precision", "fp32")), progress, rows)
        out = {"single": r.single, "averaged": r.averaged}
        return Restored({m: out[methods.BY_NAME[m].output] for m in self.methods}, spread=r.std)

    def _example(self, shape):
        model = self.build(self.network()).float().train()
        x, sigma = torch.rand(1, *shape), torch.ones(1)
        return model, lambda: model(x * 2 - 1, sigma, x * 2 - 1)

    def restore_flops(self) -> float:
        s = self.section
        return float(s["samples"] * (2 * s["sampler"]["num_steps"] - 1) * self.flops()["forward"])

    def restore_precision(self) -> str:
        return self.section["sample_precision"]

    def recipe(self, resample, seed, manifest, pool):
        from ..recipes import Recipe, balanced_pairs

        stream, reads = balanced_pairs(self.name, manifest, resample, seed)
        P_mean, P_std = self.section["P_mean"], self.section["P_std"]

        def loss_fn(m, b, g, step):
            return edm_loss(m, b.target * 2 - 1, b.recon * 2 - 1, b.aug_label, P_mean, P_std, g, b.part)

        return Recipe(self.network_kind, self.network(), loss_fn, stream, reads)

    def robustness_evaluations(self, robustness: dict) -> int:
        return 2 * robustness["edm_steps"] - 1

    def differentiable(self, model, seed, robustness):
        """The Heun sampler with fixed initial noise and ``robustness.edm_steps`` steps (gradient
        through every network evaluation; paper 004's attack on a stochastic restorer)."""
        from ...seeding import torch_generator
        from .sampler import heun

        model = model.eval().requires_grad_(False)
        cfg = dict(self.section.get("sampler") or {}, num_steps=robustness["edm_steps"])

        def f(x: torch.Tensor) -> torch.Tensor:
            g = torch_generator(seed, "robustness-edm-noise")  # the same initial noise for every call
            y = heun(lambda z, s, c: model(z, s, c), x.double() * 2 - 1, generator=g, dtype=torch.float32, **cfg)
            return ((y + 1) / 2).to(x.dtype)

        return f

    @classmethod
    def robustness_label(cls, name: str) -> str:
        return "Ours (diffusion, fixed noise)"


RESTORER = Diffusion
