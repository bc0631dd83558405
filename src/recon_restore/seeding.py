"""Seeds derived from the preset seed and the identity of a job (docs/conventions.md).

Every random choice takes ``derive_seed(preset_seed, "stage", job, ...)``, so the same
inputs give the same outputs on the same device, and jobs never share random streams.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(base: int, *identity: object) -> int:
    """A 63-bit seed from ``base`` and a tuple of identity parts (strings, ints)."""
    text = repr((int(base),) + tuple(str(p) for p in identity)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


def torch_generator(base: int, *identity: object, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(base, *identity))
    return g
