"""Classical baseline: total-variation denoising (Chambolle), per channel, via scikit-image
(Rudin, Osher and Fatemi 1992, through scikit-image)."""

from __future__ import annotations

import numpy as np
import torch


def tv_denoise(images: torch.Tensor, weight: float = 0.1) -> torch.Tensor:
    """images: (N, 3, H, W) in [0, 1]; returns the TV-denoised images."""
    from skimage.restoration import denoise_tv_chambolle

    arr = images.detach().cpu().double().numpy().transpose(0, 2, 3, 1)
    out = np.stack([denoise_tv_chambolle(a, weight=weight, channel_axis=-1) for a in arr])
    return torch.from_numpy(out.transpose(0, 3, 1, 2)).to(images.dtype).clamp(0, 1)
