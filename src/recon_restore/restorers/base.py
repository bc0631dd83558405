"""The one interface every kind of restorer implements (paper section 5.1.1: every method is
a set of images made from the plain reconstructions).

A kind of restorer is one class in one module (``methods.Method.kind`` names the module
under ``recon_restore.restorers``; the module's ``RESTORER`` is the class). It owns:

* building or loading its model (``load``: a checkpoint, a weights file, or nothing);
* ``restore(images, rows, seed)`` -> ``Restored``: the restorations of every method it makes
  (``methods.methods_of``), and, where it draws samples, the per-image spread across them;
* what one restoration costs (``restore_flops``, per reconstruction; 0: a CPU method) and
  at which precision (``restore_precision``), for ``recon-restore plan``;
* for trained kinds (``Network``): the network (``network``, ``build``), the training
  recipe (``recipe``), which input training reads (``train_input``) and the params it reads
  (``reads_params``), FLOPs per training example, and the restorer as a differentiable
  function (``differentiable``, the robustness study).

Its params section is ``restorers.<methods.section_of(name)>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .. import methods
from ..errors import UserError


@dataclass
class Restored:
    images: dict[str, torch.Tensor]  # method name -> (N, C, H, W) float restorations in [0, 1]
    spread: torch.Tensor | None = None  # (N,): mean per-pixel std across samples (hallucination indicator)
    info: dict = field(default_factory=dict)  # metadata written with the restorations (e.g. a blind choice)


class Restorer:
    """A restorer of the methods list: ``name`` (its restored file and rule wildcard), the
    preset's ``restorers`` params and the data's image spec (networks take their geometry from it)."""

    threads = 1  # 1: restores on one thread (classical); more: a network job, run with params cpu_threads
    shardable = True  # restoration may be split into shards of runs (evaluate.restore_shard_runs)

    def __init__(self, name: str, restorers_cfg: dict, spec=None):
        from ..data.spec import CIFAR

        self.name = name
        self.restorers_cfg = restorers_cfg
        self.spec = spec or CIFAR  # the image spec of the data (data.spec); the paper's when none is given
        key = methods.section_of(name)
        if key not in restorers_cfg:
            raise UserError(f"params: restorer {name} needs the section 'restorers.{key}' in the preset (its settings)")
        self.section = restorers_cfg[key]
        self.model = None
        self.device = torch.device("cpu")

    @property
    def methods(self) -> list[str]:
        """The methods (restored datasets) this restorer makes."""
        return methods.methods_of(self.name)

    @property
    def on_gpu(self) -> bool:
        """Whether restoration is GPU work at scale (the plan times it; 0 FLOPs: a CPU job)."""
        return True

    def load(self, device: torch.device, checkpoint: str | None = None) -> None:
        self.device = device

    def restore(self, images: torch.Tensor, rows: np.ndarray, seed: int, batch: int, progress: bool = False) -> Restored:
        raise NotImplementedError

    def restore_flops(self) -> float:
        """FLOPs of restoring one reconstruction (every sample, every network evaluation)."""
        return 0.0

    def restore_precision(self) -> str:
        return "fp32"

    def reads_params(self) -> dict:
        """The params this restorer reads (the rules' rerun trigger; a training's fingerprint):
        ``train.gpus`` is left out, so a training may resume with another number of processes."""
        sec = self.section
        if "train" not in sec:
            return sec
        return dict(sec, train={k: x for k, x in sec["train"].items() if k != "gpus"})


class Network(Restorer):
    """A trained network (one checkpoint): restores in one pass unless a subclass samples."""

    network_kind = ""  # the checkpoint's ``kind``

    @staticmethod
    def build(config: dict) -> torch.nn.Module:
        raise NotImplementedError

    def network(self) -> dict:
        """The config the network is built from (saved with the checkpoint): the params'
        architecture with the geometry of ``self.spec``."""
        raise NotImplementedError

    @staticmethod
    def image_channels(config: dict) -> int:
        """The image channels a network of this ``config`` restores (a checkpoint's)."""
        raise NotImplementedError

    def load(self, device: torch.device, checkpoint: str | None = None) -> None:
        from . import checkpoint as ckpt

        if not checkpoint:
            raise UserError(f"restorer {self.name} needs --checkpoint")
        self.device = device
        ck = ckpt.read(checkpoint, device)
        ckpt.require_method(ck, checkpoint, self.name)
        self.model = ckpt.model_from(ck, checkpoint, self.build, device)

    def restore(self, images, rows, seed, batch, progress=False) -> Restored:
        return Restored({self.name: restore_direct(self.model, images, batch, self.device)})

    # ---- cost (recon-restore plan) ----------------------------------------------------------

    def _example(self, shape) -> tuple[torch.nn.Module, Callable]:
        model = self.build(self.network()).float().train()
        x = torch.rand(1, *shape)
        return model, lambda: model(x)

    def flops(self, shape=None) -> dict[str, int]:
        """Per image: ``train`` (forward and backward of one example) and ``forward`` (counted
        once per shape: the plan asks for training and restoration costs of the same network)."""
        from ..flops import count

        shape = tuple(shape or self.spec.shape)
        cache = self.__dict__.setdefault("_flops", {})
        if shape in cache:
            return cache[shape]
        model, fwd = self._example(shape)

        def step():
            model.zero_grad(set_to_none=True)
            fwd().square().sum().backward()

        with torch.no_grad():
            f = count(fwd)
        cache[shape] = {"train": count(step), "forward": f}
        return cache[shape]

    def restore_flops(self) -> float:
        return float(self.flops()["forward"])

    # ---- training (restorers train) ----------------------------------------------------------

    def train_input(self) -> str:
        """What training reads: ``manifest`` (the dataset's shards) or ``pool`` (clean images)."""
        return "manifest"

    def recipe(self, resample: dict, seed: int, manifest: str | None, pool: str | None):
        raise UserError(f"{self.name!r} is not trained by `restorers train`")

    def differentiable(self, model: torch.nn.Module, seed: int, robustness: dict) -> Callable:
        """The restorer as a differentiable function of its input (the robustness study)."""
        return model.eval().requires_grad_(False)

    def robustness_evaluations(self, robustness: dict) -> int:
        """Network evaluations per attacked restoration (the plan's robustness cost)."""
        return 1

    def corrupt_like_training(self, clean: torch.Tensor, seed: int) -> torch.Tensor:
        """Inputs with the restorer's own synthetic training corruption (``train_input`` pool)."""
        raise NotImplementedError

    @classmethod
    def robustness_label(cls, name: str) -> str:
        """How the robustness study names the attacked restorer."""
        return methods.label(methods.methods_of(name)[0])


@torch.no_grad()
def restore_direct(model, recon: torch.Tensor, batch: int, device: torch.device, dtype=torch.float32) -> torch.Tensor:
    """A network that maps a reconstruction to its restoration in one pass (BF-DnCNN, N2N U-Net)."""
    model = model.to(device=device, dtype=dtype).eval()
    out = [model(recon[s : s + batch].to(device, dtype)).clamp(0, 1).float().cpu() for s in range(0, recon.shape[0], batch)]
    return torch.cat(out) if out else recon.clone()
