"""Restormer (Zamir et al., CVPR 2022), the pretrained baseline of paper section 5.1.1
(Figures 1, 2, 4), written from the Restormer paper's description.

A 3x3 overlapped patch embedding; a 4-level encoder-decoder of transformer blocks, each
x + MDTA(LN(x)) then x + GDFN(LN(x)); down-sampling by a 3x3 conv halving the channels and
pixel-unshuffle; up-sampling by a 3x3 conv doubling them and pixel-shuffle; skip
concatenation with a 1x1 channel reduction (not at level 1); refinement blocks at level 1;
a 3x3 output conv and a global residual.

* MDTA (multi-Dconv head transposed attention): 1x1 then 3x3 depthwise convs give q, k, v;
  attention across channels per head, softmax(norm(q) norm(k)^T * temperature) v; 1x1 out.
* GDFN (gated-Dconv feed-forward): 1x1 to 2 x hidden channels, 3x3 depthwise, GELU(x1) * x2,
  1x1 back (hidden = dim x 2.66).
* Layer norm over channels at every pixel: ``WithBias`` (mean-centred, weight and bias) or
  ``BiasFree`` (x / std, weight only; the denoising models).

The module and parameter names are those of the official checkpoints (a fact the tests
check through the parameter counts, 26,126,644 WithBias and 26,111,668 BiasFree), so their
state dicts (``torch.load(f)["params"]``) load with ``strict=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError
from .base import Restored, Restorer

# the three pretrained settings the paper compares against: official file, layer norm
SETTINGS = {
    "real": ("real_denoising.pth", "BiasFree"),
    "gaussian_blind": ("gaussian_color_denoising_blind.pth", "BiasFree"),
    "deraining": ("deraining.pth", "WithBias"),
}
MULTIPLE = 8  # three 2x down-samplings: inputs are padded to a multiple of 8


class LayerNorm(nn.Module):
    def __init__(self, dim: int, kind: str):
        super().__init__()
        self.body = _Norm(dim, kind == "WithBias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _Norm(nn.Module):
    def __init__(self, dim: int, with_bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if with_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(-1, keepdim=True, unbiased=False)
        if self.bias is None:
            return x / torch.sqrt(var + 1e-5) * self.weight
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(var + 1e-5) * self.weight + self.bias


class Attention(nn.Module):
    """MDTA: attention across channels, per head."""

    def __init__(self, dim: int, heads: int, bias: bool):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, 1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class FeedForward(nn.Module):
    """GDFN: gated depthwise-conv feed-forward."""

    def __init__(self, dim: int, expansion: float, bias: bool):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, 1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float, bias: bool, norm: str):
        super().__init__()
        self.norm1 = LayerNorm(dim, norm)
        self.attn = Attention(dim, heads, bias)
        self.norm2 = LayerNorm(dim, norm)
        self.ffn = FeedForward(dim, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class _Resample(nn.Module):
    def __init__(self, dim: int, down: bool):
        super().__init__()
        conv = nn.Conv2d(dim, dim // 2 if down else dim * 2, 3, padding=1, bias=False)
        self.body = nn.Sequential(conv, nn.PixelUnshuffle(2) if down else nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Restormer(nn.Module):
    def __init__(self, inp_channels: int = 3, out_channels: int = 3, dim: int = 48, num_blocks=(4, 6, 6, 8),
                 num_refinement_blocks: int = 4, heads=(1, 2, 4, 8), ffn_expansion_factor: float = 2.66,
                 bias: bool = False, LayerNorm_type: str = "WithBias"):
        super().__init__()
        blocks = lambda n, d, h: nn.Sequential(*[TransformerBlock(d, h, ffn_expansion_factor, bias, LayerNorm_type)  # noqa: E731
                                                  for _ in range(n)])
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(inp_channels, dim, 3, padding=1, bias=bias)
        self.encoder_level1 = blocks(num_blocks[0], dim, heads[0])
        self.down1_2 = _Resample(dim, down=True)
        self.encoder_level2 = blocks(num_blocks[1], dim * 2, heads[1])
        self.down2_3 = _Resample(dim * 2, down=True)
        self.encoder_level3 = blocks(num_blocks[2], dim * 4, heads[2])
        self.down3_4 = _Resample(dim * 4, down=True)
        self.latent = blocks(num_blocks[3], dim * 8, heads[3])
        self.up4_3 = _Resample(dim * 8, down=False)
        self.reduce_chan_level3 = nn.Conv2d(dim * 8, dim * 4, 1, bias=bias)
        self.decoder_level3 = blocks(num_blocks[2], dim * 4, heads[2])
        self.up3_2 = _Resample(dim * 4, down=False)
        self.reduce_chan_level2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=bias)
        self.decoder_level2 = blocks(num_blocks[1], dim * 2, heads[1])
        self.up2_1 = _Resample(dim * 2, down=False)
        self.decoder_level1 = blocks(num_blocks[0], dim * 2, heads[0])
        self.refinement = blocks(num_refinement_blocks, dim * 2, heads[0])
        self.output = nn.Conv2d(dim * 2, out_channels, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.encoder_level1(self.patch_embed.proj(x))
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        d = self.latent(self.down3_4(e3))
        d = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(d), e3], 1)))
        d = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d), e2], 1)))
        d = self.decoder_level1(torch.cat([self.up2_1(d), e1], 1))
        return self.output(self.refinement(d)) + x


def build(setting: str) -> Restormer:
    """The architecture of one of the official pretrained settings (randomly initialised)."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown Restormer setting {setting!r}; expected one of {sorted(SETTINGS)}")
    return Restormer(LayerNorm_type=SETTINGS[setting][1])


def load(setting: str, path: str | Path) -> Restormer:
    """The model with the weights of ``path`` (an official checkpoint, ``{"params": state_dict}``,
    or a bare state dict), loaded with ``weights_only=True``; a file that does not fit names
    its first mismatch."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: Restormer weights file not found (setting {setting})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets one clear line
        raise UserError(f"{path}: not a readable PyTorch weights file ({type(e).__name__}: {e})") from None
    state = obj.get("params", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a state dict (or {{'params': state dict}}), got {type(obj).__name__}")
    model = build(setting)
    want = model.state_dict()
    for k, v in want.items():
        if k not in state:
            raise UserError(f"{path}: missing key {k!r} for the Restormer {setting} setting ({SETTINGS[setting][1]})")
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"{path}: key {k!r} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    extra = [k for k in state if k not in want]  # in the file's order
    if extra:
        raise UserError(f"{path}: unexpected key {extra[0]!r} for the Restormer {setting} setting ({SETTINGS[setting][1]})")
    model.load_state_dict(state, strict=True)
    return model.eval()


@torch.no_grad()
def restore_restormer(model: Restormer, images: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """images: (N, 3, H, W) in [0, 1]; reflect-padded to a multiple of 8, cropped back, clipped."""
    model = model.to(device).eval()
    h, w = images.shape[-2:]
    ph, pw = (-h) % MULTIPLE, (-w) % MULTIPLE
    out = torch.empty_like(images, dtype=torch.float32)
    for s in range(0, len(images), batch):
        x = images[s : s + batch].to(device, torch.float32)
        x = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
        out[s : s + batch] = model(x)[..., :h, :w].clamp(0, 1).cpu()
    return out


class Pretrained(Restorer):
    """A pretrained Restormer setting (``Method.variant``) from the user's weights file
    (params ``restorers.<name>.weights``: the official checkpoint, never redistributed)."""

    threads = 2

    @property
    def setting(self) -> str:
        from .. import methods

        return methods.entry(self.name).variant

    def load(self, device, checkpoint=None) -> None:
        self.device = device
        self.model = load(self.setting, self.section["weights"])

    def restore(self, images, rows, seed, batch, progress=False) -> Restored:
        return Restored({self.name: restore_restormer(self.model, images, batch, self.device)})

    def restore_flops(self) -> float:
        """One evaluation of one image (FLOPs counted from the model)."""
        from ..flops import count

        model = build(self.setting).eval()
        with torch.no_grad():
            return float(count(lambda: model(torch.rand(1, *self.spec.shape))))


RESTORER = Pretrained
