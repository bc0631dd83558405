"""The Noise2Noise U-Net (Lehtinen et al. 2018, appendix A, table 2), from the table.

Five 2x2 max-pooling levels (so H and W must be multiples of 32), 3x3 "same" convolutions
with bias and leaky ReLU (slope 0.1), nearest-neighbour 2x up-sampling, skip concatenation
at every level including the input, and a linear last convolution that predicts the image
directly (no residual). Widths: ``width`` (48) in the encoder, 2 x width (96) in the
decoder, then 4/3 and 2/3 x width (64, 32) before the output: 991,203 parameters for RGB at
width 48. He initialisation (gain sqrt 2; 1 for the last layer), biases zero. Small
presets shrink ``width`` only.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

LEVELS = 5


def _conv(cin: int, cout: int, gain: float = 2**0.5) -> nn.Conv2d:
    c = nn.Conv2d(cin, cout, 3, padding=1)
    nn.init.kaiming_normal_(c.weight, a=0.0, nonlinearity="linear")  # std 1/sqrt(fan_in)
    with torch.no_grad():
        c.weight.mul_(gain)
    nn.init.zeros_(c.bias)
    return c


class N2NUNet(nn.Module):
    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 48):
        super().__init__()
        self.config = dict(in_channels=in_channels, out_channels=out_channels, width=width)
        w, d = width, 2 * width
        self.enc0 = _conv(in_channels, w)  # ENC_CONV0
        self.enc = nn.ModuleList([_conv(w, w) for _ in range(LEVELS + 1)])  # ENC_CONV1..6
        # DEC_CONV5A/B: upsampled bottleneck (w) + POOL4 (w); DEC_CONV4..2: d + w
        self.dec_a = nn.ModuleList([_conv(2 * w, d)] + [_conv(d + w, d) for _ in range(3)])
        self.dec_b = nn.ModuleList([_conv(d, d) for _ in range(4)])
        self.dec1a = _conv(d + in_channels, round(4 * w / 3))  # DEC_CONV1A after CONCAT1 with the input
        self.dec1b = _conv(round(4 * w / 3), round(2 * w / 3))
        self.dec1c = _conv(round(2 * w / 3), out_channels, gain=1.0)  # linear output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2**LEVELS or x.shape[-2] % 2**LEVELS:
            raise ValueError(f"N2N U-Net input of size {tuple(x.shape[-2:])}: height and width must be multiples of 32")
        act = lambda t: F.leaky_relu(t, 0.1)  # noqa: E731
        skips = [x]
        h = act(self.enc0(x))
        for i in range(LEVELS):  # ENC_CONV(i+1), POOL(i+1)
            h = F.max_pool2d(act(self.enc[i](h)), 2)
            skips.append(h)
        h = act(self.enc[LEVELS](skips.pop()))  # ENC_CONV6 on POOL5
        for a, b in zip(self.dec_a, self.dec_b):  # levels 5..2
            h = torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), skips.pop()], 1)
            h = act(b(act(a(h))))
        h = torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), skips.pop()], 1)  # CONCAT1 with INPUT
        return self.dec1c(act(self.dec1b(act(self.dec1a(h)))))
