"""BF-DnCNN (Mohan et al. 2020; paper section 4).

20 3x3 convolutions with 64 channels, no additive constants anywhere: conv(3->64)-ReLU,
18 x [conv(64->64) - bias-free batch norm - ReLU], conv(64->3); residual output
x_hat = y - R(y). Bias-free batch norm divides each channel by a standard deviation
(the batch's in training, sqrt of the running variance in evaluation) and multiplies by
a learnable gamma, with no mean subtraction and no beta. In evaluation mode the network
is positively homogeneous: f(a y) = a f(y) for a > 0. Images are RGB in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Network
from .distributed import batch_variance


class BiasFreeBatchNorm(nn.Module):
    def __init__(self, c: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        g = torch.randn(c) * math.sqrt(2.0 / (9 * 64))
        self.gamma = nn.Parameter(g.clamp(-0.025, 0.025))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            var = batch_variance(x)  # over all processes when data parallel
            with torch.no_grad():
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.detach())
        else:
            var = self.running_var
        return x * (self.gamma / (var.sqrt() + self.eps)).view(1, -1, 1, 1)  # one pass over x


class BFDnCNN(nn.Module):
    def __init__(self, depth: int = 20, channels: int = 64, image_channels: int = 3):
        super().__init__()
        self.config = dict(depth=depth, channels=channels, image_channels=image_channels)
        layers: list[nn.Module] = [nn.Conv2d(image_channels, channels, 3, padding=1, bias=False), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), BiasFreeBatchNorm(channels), nn.ReLU()]
        layers.append(nn.Conv2d(channels, image_channels, 3, padding=1, bias=False))
        for m in layers:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        self.body = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y - self.body(y)


def bfdncnn_loss(model: BFDnCNN, target: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Half the summed squared error, averaged over the batch (Mohan et al.)."""
    return F.mse_loss(model(noisy), target, reduction="sum") / (2 * target.shape[0])


class BFDnCNNRestorer(Network):
    """BF-DnCNN trained on the dataset's pairs (paper section 4), restoring in one pass; also
    the network of its adapted version (paper 001: ``Method.adapted_from``)."""

    network_kind = "bf-dncnn"

    @staticmethod
    def build(config: dict) -> BFDnCNN:
        return BFDnCNN(**config)

    def network(self) -> dict:
        from .. import methods

        return dict(self.restorers_cfg[methods.adapted_from(self.name) or self.name]["network"], image_channels=self.spec.channels)

    @staticmethod
    def image_channels(config: dict) -> int:
        return int(config["image_channels"])

    def recipe(self, resample, seed, manifest, pool):
        from .. import methods
        from ..errors import UserError
        from .recipes import Recipe, balanced_pairs

        if methods.adapted_from(self.name):
            raise UserError(f"{self.name!r} is not trained by `restorers train` (an adapted restorer: `restorers adapt`)")
        stream, reads = balanced_pairs(self.name, manifest, resample, seed)

        def loss_fn(m, b, g, step):
            return bfdncnn_loss(m, b.target, b.recon)

        return Recipe(self.network_kind, self.network(), loss_fn, stream, reads)


RESTORER = BFDnCNNRestorer
