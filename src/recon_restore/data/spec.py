"""The image spec: channels, height and width of every image of a run of the pipeline.

The paper works on CIFAR-10 (3 x 32 x 32); a data source declares its own spec from its
params (``data.sources``), the data stage writes images of that spec, and every later stage
reads it from its input files or from the params: networks, matchers, restorers, FLOP counts
and figures take the geometry from here, never from a literal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError


@dataclass(frozen=True)
class ImageSpec:
    channels: int
    height: int
    width: int

    def __post_init__(self):
        if self.channels not in (1, 3) or self.height < 1 or self.width < 1:
            raise UserError(f"image spec {self.channels} x {self.height} x {self.width}: expected 1 or 3 channels and a "
                            f"positive height and width")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return (self.channels, self.height, self.width)

    @property
    def dim(self) -> int:
        """Pixels times channels: the target network's input dimension."""
        return self.channels * self.height * self.width

    def __str__(self) -> str:
        return f"{self.channels}x{self.height}x{self.width}"

    @classmethod
    def of(cls, images) -> "ImageSpec":
        """The spec of an (N, C, H, W) array or tensor (or of one (C, H, W) image)."""
        shape = tuple(images.shape)
        if len(shape) < 3:
            raise ValueError(f"expected images (N, C, H, W), got shape {shape}")
        return cls(*(int(s) for s in shape[-3:]))

    def attrs(self) -> dict:
        """HDF5 / checkpoint attributes that make a file carry its spec."""
        return {"channels": self.channels, "height": self.height, "width": self.width}

    @classmethod
    def from_attrs(cls, attrs) -> "ImageSpec | None":
        try:
            return cls(int(attrs["channels"]), int(attrs["height"]), int(attrs["width"]))
        except KeyError:
            return None

    def check(self, images, where: str) -> None:
        """One clear error when ``images`` (N, C, H, W) are not of this spec."""
        shape = tuple(images.shape)
        if len(shape) != 4 or shape[1:] != self.shape:
            raise UserError(f"{where}: expected images (N, {self.channels}, {self.height}, {self.width}) "
                            f"({self}, the data source's spec), got shape {shape}")

    def as_nchw(self, arr: np.ndarray, where: str) -> np.ndarray:
        """Accept (N, C, H, W) or channels-last (N, H, W, C) (and (N, H, W) for one channel)."""
        if arr.ndim == 3 and self.channels == 1:
            arr = arr[:, None]
        if arr.ndim == 4 and arr.shape[1:] == (self.height, self.width, self.channels) and arr.shape[1:] != self.shape:
            arr = arr.transpose(0, 3, 1, 2)
        if arr.ndim != 4 or arr.shape[1:] != self.shape:
            raise UserError(f"{where}: expected images of shape (N, {self.channels}, {self.height}, {self.width}) or "
                            f"(N, {self.height}, {self.width}, {self.channels}), got {arr.shape}")
        return np.ascontiguousarray(arr)


CIFAR = ImageSpec(3, 32, 32)
"""CIFAR-10, CIFAR-100 and the offline demo set (the paper's setting)."""
