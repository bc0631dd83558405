"""Image similarity used throughout the pipeline (docs/results.md: how reconstructions are counted).

* ``ssim(x, y, variant)``: per-pair SSIM; ``haim`` (3x3 gaussian, reflect "same" padding,
  the variant the paper's 0.4 threshold refers to) or ``wang`` (11x11 valid, = piq.ssim).
* ``ssim_matrix(a, b, variant)``: exact all-pairs SSIM as a batched GEMM over centred,
  gaussian-weighted patches (one GEMM per channel and window position over centred patches).
* ``haarpsi``: piq's HaarPSI on [0, 1] RGB.
* ``ncc_nearest``: Haim et al.'s downsampled NCC nearest-image heuristic.
* ``psnr``: peak signal-to-noise ratio.
* ``postprocess``: the paper's section 5.1 rescaling of reconstructions into [0, 1].
"""

from .ssim import SSIM_VARIANTS, best_matches, ssim, ssim_blocks, ssim_matrix
from .haarpsi import haarpsi, haarpsi_matrix
from .ncc import ncc_nearest
from .postprocess import postprocess
from .psnr import psnr

__all__ = [
    "SSIM_VARIANTS",
    "ssim",
    "ssim_matrix",
    "ssim_blocks",
    "best_matches",
    "haarpsi",
    "haarpsi_matrix",
    "postprocess",
    "ncc_nearest",
    "psnr",
]
