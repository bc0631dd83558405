"""MNIST and Fashion-MNIST (``data.mnist``, ``data.fashion_mnist``): the official IDX files
(``train-images-idx3-ubyte.gz`` and friends, gzipped or not) from a local folder, verified
against their official md5 (or an md5sum-style file) before they are parsed, or downloaded
from ``url`` where the network allows. 1 x 28 x 28 grey images; the pool is the training
set, the held-out set the test set.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from .cifar import download, read_checksums
from .spec import ImageSpec
from .store import ImageSet

FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
SPEC = ImageSpec(1, 28, 28)


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """An IDX array of unsigned bytes (magic 0x0000 08 <ndim>, big-endian sizes)."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UserError(f"{source}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise UserError(f"{source}: IDX header says {shape}, the file holds {body.size} values")
    return body.reshape(shape)


@dataclass(frozen=True)
class IdxSource:
    name: str
    title: str
    official_md5: dict  # gzipped file name -> md5
    class_names: tuple
    pool_kind: str = ""
    heldout_kind: str = ""

    def spec(self, cfg: dict) -> ImageSpec:
        return SPEC

    def inputs(self, data_cfg: dict) -> list[str]:
        return [data_cfg[self.name]["path"]]

    def num_classes(self, data_cfg: dict) -> int:
        return len(self.class_names)

    def _read(self, folder: Path, stem: str, sums: dict, url: str | None) -> bytes:
        key = f"data.{self.name}"
        for name in (stem + ".gz", stem):
            f = folder / name
            if f.is_file():
                break
        else:
            if not url:
                raise UserError(f"{folder / (stem + '.gz')}: {self.title} file is missing; download the four official IDX "
                                f"files into params {key}.path (or set {key}.url)")
            f = download(url.rstrip("/") + "/" + stem + ".gz", folder / (stem + ".gz"), self.official_md5[stem + ".gz"],
                         f"{key}.path")
        data = f.read_bytes()
        want = sums.get(f.name)
        if want is None:
            raise UserError(f"{f}: no checksum known for {f.name} (params {key}.checksums); refusing to parse it")
        got = hashlib.md5(data).hexdigest()
        if got != want:
            raise UserError(f"{f}: md5 mismatch: expected {want}, got {got} (corrupt or wrong file)")
        if f.suffix == ".gz":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as e:
                raise UserError(f"{f}: corrupt gzip ({e})") from None
        return parse_idx(data, str(f))

    def load(self, data_cfg: dict, seed: int) -> tuple[ImageSet, ImageSet]:
        c = data_cfg[self.name]
        folder = Path(c["path"])
        sums = read_checksums(c["checksums"], self.official_md5, f"data.{self.name}.checksums")
        if c.get("url"):
            folder.mkdir(parents=True, exist_ok=True)
        out = []
        for split in ("train", "test"):
            x = self._read(folder, FILES[f"{split}_images"], sums, c.get("url"))
            y = self._read(folder, FILES[f"{split}_labels"], sums, c.get("url")).astype(np.int64)
            if x.ndim != 3 or x.shape[1:] != SPEC.shape[1:] or len(y) != len(x):
                raise UserError(f"{folder}: {self.title} {split}: expected images (N, 28, 28) and N labels, got {x.shape}, {y.shape}")
            out.append(ImageSet(x[:, None].copy(), np.where(y % 2 == 0, -1, 1).astype(np.int8), np.arange(len(y), dtype=np.int64),
                                None, y, list(self.class_names)))
        return out[0], out[1]


MNIST = IdxSource("mnist", "MNIST", {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                     "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                                     "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                                     "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
                  tuple(str(d) for d in range(10)), "MNIST train", "MNIST test")
FASHION = IdxSource("fashion_mnist", "Fashion-MNIST", {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                                       "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                                                       "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                                                       "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
                    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
                    "Fashion-MNIST train", "Fashion-MNIST test")
