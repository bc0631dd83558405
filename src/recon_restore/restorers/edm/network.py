"""The DDPM++ U-Net as EDM configures it for CIFAR-10, conditional on a reconstruction
(paper section 3; Karras et al. 2022, appendix F.2; Song et al. 2021). Written from the
architecture description, not from NVlabs code.

Shape at full size: 128 base channels, multipliers [2, 2, 2] (resolutions 32, 16, 8),
4 residual blocks per resolution (5 in the decoder), self-attention at 16x16 and in the
8x8 middle, dropout 0.13, sinusoidal noise embedding, a bias-free linear embedding of
the 9-d augmentation label added to the noise embedding, no class label. The input has
6 channels (noisy target and the conditioning reconstruction); the output has 3.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _xavier(t: torch.Tensor, fan_in: int, fan_out: int, gain: float) -> None:
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        t.uniform_(-bound, bound)


class Conv(nn.Conv2d):
    """Conv with Xavier-uniform init scaled by ``gain`` and zero bias."""

    def __init__(self, cin: int, cout: int, k: int, gain: float = 1.0):
        super().__init__(cin, cout, k, padding=k // 2)
        _xavier(self.weight, cin * k * k, cout * k * k, gain)
        nn.init.zeros_(self.bias)


class Linear(nn.Linear):
    def __init__(self, cin: int, cout: int, bias: bool = True, gain: float = 1.0):
        super().__init__(cin, cout, bias=bias)
        _xavier(self.weight, cin, cout, gain)
        if bias:
            nn.init.zeros_(self.bias)


def group_norm(c: int) -> nn.GroupNorm:
    """EDM's min(32, C/4) groups; for small configurations where that does not divide C,
    the largest smaller group count that does (never the case at the paper's sizes)."""
    g = max(1, min(32, c // 4))
    while c % g:
        g -= 1
    return nn.GroupNorm(g, c, eps=1e-6)


def resample(x: torch.Tensor, mode: str | None) -> torch.Tensor:
    """2x2 box-filter down-sampling or nearest up-sampling (resample filter [1, 1])."""
    if mode == "down":
        return F.avg_pool2d(x, 2)
    if mode == "up":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return x


class Block(nn.Module):
    """Residual block: GN-SiLU-(resample)-conv, + per-channel embedding bias,
    GN-SiLU-dropout-conv (near-zero init), skip, x sqrt(1/2); optional self-attention."""

    def __init__(self, cin: int, cout: int, emb: int, dropout: float, resample: str | None = None, attention: bool = False):
        super().__init__()
        self.resample = resample
        self.norm0 = group_norm(cin)
        self.conv0 = Conv(cin, cout, 3)
        self.affine = Linear(emb, cout)
        self.norm1 = group_norm(cout)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = Conv(cout, cout, 3, gain=1e-5)
        self.skip = Conv(cin, cout, 1) if (cin != cout or resample) else None
        self.attention = attention
        if attention:
            self.norm2 = group_norm(cout)
            self.qkv = Conv(cout, 3 * cout, 1, gain=math.sqrt(0.2))
            self.proj = Conv(cout, cout, 1, gain=1e-5)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv0(resample(F.silu(self.norm0(x)), self.resample))
        h = h + self.affine(emb).unsqueeze(-1).unsqueeze(-1)
        h = self.conv1(self.dropout(F.silu(self.norm1(h))))
        skip = resample(x, self.resample)
        if self.skip is not None:
            skip = self.skip(skip)
        x = (h + skip) * math.sqrt(0.5)
        if self.attention:
            n, c, hh, ww = x.shape
            q, k, v = self.qkv(self.norm2(x)).reshape(n, 3, c, hh * ww).unbind(1)
            w = torch.softmax(torch.einsum("ncq,nck->nqk", q.float(), k.float()) / math.sqrt(c), dim=-1).to(q.dtype)
            a = torch.einsum("nqk,nck->ncq", w, v).reshape(n, c, hh, ww)
            x = (self.proj(a) + x) * math.sqrt(0.5)
        return x


def noise_embedding(c_noise: torch.Tensor, channels: int) -> torch.Tensor:
    """Sinusoidal embedding with frequencies (1/10000)^(k / (channels/2 - 1))."""
    half = channels // 2
    freqs = (1.0 / 10000) ** (torch.arange(half, dtype=torch.float32, device=c_noise.device) / (half - 1))
    ang = c_noise.float().unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([ang.cos(), ang.sin()], dim=1).to(c_noise.dtype if c_noise.is_floating_point() else torch.float32)


class DDPMpp(nn.Module):
    """DDPM++ U-Net F(x; c_noise, aug_label) for 32x32 images."""

    def __init__(
        self,
        in_channels: int = 6,
        out_channels: int = 3,
        resolution: int = 32,
        model_channels: int = 128,
        channel_mult: list[int] = (2, 2, 2),
        num_blocks: int = 4,
        attn_resolutions: list[int] = (16,),
        dropout: float = 0.13,
        augment_dim: int = 9,
        channel_mult_emb: int = 4,
        channel_mult_noise: int = 1,
    ):
        super().__init__()
        emb = model_channels * channel_mult_emb
        self.noise_channels = model_channels * channel_mult_noise
        self.map_augment = Linear(augment_dim, self.noise_channels, bias=False) if augment_dim else None
        self.map0 = Linear(self.noise_channels, emb)
        self.map1 = Linear(emb, emb)
        self.augment_dim = augment_dim

        self.enc = nn.ModuleList()
        self.enc_kind: list[str] = []
        skips = []
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = resolution >> level
            if level == 0:
                self.enc.append(Conv(cout, model_channels, 3))
                self.enc_kind.append("conv")
                cout = model_channels
            else:
                self.enc.append(Block(cout, cout, emb, dropout, resample="down"))
                self.enc_kind.append("block")
            skips.append(cout)
            for _ in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc.append(Block(cin, cout, emb, dropout, attention=res in attn_resolutions))
                self.enc_kind.append("block")
                skips.append(cout)

        self.dec = nn.ModuleList()
        self.dec_pops: list[bool] = []
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = resolution >> level
            if level == len(channel_mult) - 1:
                self.dec.append(Block(cout, cout, emb, dropout, attention=True))
                self.dec.append(Block(cout, cout, emb, dropout))
                self.dec_pops += [False, False]
            else:
                self.dec.append(Block(cout, cout, emb, dropout, resample="up"))
                self.dec_pops.append(False)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                self.dec.append(Block(cin, cout, emb, dropout, attention=(idx == num_blocks and res in attn_resolutions)))
                self.dec_pops.append(True)
        self.out_norm = group_norm(cout)
        self.out_conv = Conv(cout, out_channels, 3, gain=1e-5)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, aug_label: torch.Tensor | None = None) -> torch.Tensor:
        e = noise_embedding(c_noise, self.noise_channels).to(x.dtype)
        if self.map_augment is not None and aug_label is not None:
            e = e + self.map_augment(aug_label.to(x.dtype))
        e = F.silu(self.map1(F.silu(self.map0(e))))
        skips = []
        h = x
        for kind, layer in zip(self.enc_kind, self.enc):
            h = layer(h) if kind == "conv" else layer(h, e)
            skips.append(h)
        for pop, layer in zip(self.dec_pops, self.dec):
            if pop:
                h = torch.cat([h, skips.pop()], dim=1)
            h = layer(h, e)
        return self.out_conv(F.silu(self.out_norm(h)))
