"""CIFAR-100 (``data.cifar100``): the official python files ``train``, ``test`` and ``meta``,
checksum-verified before they are unpickled (as CIFAR-10, ``cifar.py``): from a folder holding
``cifar-100-python/`` (or the files themselves), the official ``cifar-100-python.tar.gz``, or
a download from ``url`` verified against the archive md5. ``label: fine`` (100 classes) or
``coarse`` (20 superclasses); the pool is the training set, the held-out set the test set.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import file_md5
from .cifar import _NumpyOnly, _unpickle, _verify, download, read_checksums
from .spec import CIFAR
from .store import ImageSet

ARCHIVE = "cifar-100-python.tar.gz"
ARCHIVE_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
OFFICIAL_MD5 = {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                "meta": "7973b15100ade9c7d40fb424638fde48", ARCHIVE: ARCHIVE_MD5}
FILES = ("train", "test", "meta")
KEY = "data.cifar100"


def _raw(p: Path, sums: dict[str, str]) -> dict[str, bytes]:
    out = {}
    if p.is_file():
        expected = sums.get(ARCHIVE, sums.get(p.name))
        if expected is None or file_md5(p) != expected:
            raise UserError(f"{p}: md5 of the archive is not {expected} (corrupt, wrong or unknown archive)")
        try:
            with tarfile.open(p, "r:gz") as tar:
                for m in tar.getmembers():
                    if m.isfile() and Path(m.name).name in FILES:
                        out[Path(m.name).name] = tar.extractfile(m).read()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise UserError(f"{p}: corrupt archive ({e})") from None
    else:
        base = p / "cifar-100-python" if (p / "cifar-100-python").is_dir() else p
        for name in FILES:
            if (base / name).is_file():
                out[name] = (base / name).read_bytes()
    for name in FILES:
        if name not in out:
            raise UserError(f"{p}: CIFAR-100 file {name!r} is missing")
        _verify(name, out[name], sums, f"{p}:{name}")
    return out


def load_cifar100(path: str | Path, checksums: str = "official", url: str | None = None,
                  label: str = "fine") -> tuple[ImageSet, ImageSet]:
    p = Path(path)
    sums = read_checksums(checksums, OFFICIAL_MD5, f"{KEY}.checksums")
    if not p.exists():
        if not url:
            raise UserError(f"{p}: CIFAR-100 not found (params {KEY}.path) and no download URL is set; download "
                            f"{ARCHIVE} from https://www.cs.toronto.edu/~kriz/cifar.html")
        p = download(url, p if p.suffix == ".gz" else p / ARCHIVE, ARCHIVE_MD5, f"{KEY}.path")
    raw = _raw(p, sums)
    key = f"{label}_labels"
    import io

    meta = _NumpyOnly(io.BytesIO(raw["meta"]), encoding="bytes").load()
    meta = {k.decode() if isinstance(k, bytes) else k: v for k, v in meta.items()}
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(f"{label}_label_names", [])]
    sets = []
    for split in ("train", "test"):
        b = _unpickle(raw[split], f"{p}:{split}", key)
        n = len(b["classes"])
        sets.append(ImageSet(b["images"], np.where(b["classes"] % 2 == 0, -1, 1).astype(np.int8), np.arange(n, dtype=np.int64),
                             None, b["classes"], names or None))
    return sets[0], sets[1]


class _Cifar100:
    name = "cifar100"
    pool_kind, heldout_kind = "CIFAR-100 train", "CIFAR-100 test"

    def spec(self, cfg: dict):
        return CIFAR

    def inputs(self, data_cfg: dict) -> list[str]:
        return [data_cfg["cifar100"]["path"]]

    def num_classes(self, data_cfg: dict) -> int:
        return 100 if data_cfg["cifar100"]["label"] == "fine" else 20

    def load(self, data_cfg: dict, seed: int):
        c = data_cfg["cifar100"]
        return load_cifar100(c["path"], c["checksums"], c.get("url"), c.get("label", "fine"))


SOURCE = _Cifar100()
