"""CIFAR-10, official python batches, loaded only after their checksums are verified.

Sources: a directory holding ``cifar-10-batches-py/`` (or the batch files themselves),
the official ``cifar-10-python.tar.gz``, or a download from ``url`` verified against the
archive md5 ``c58f30108f718f92721af3b95e74349a``. Each batch's md5 is checked against the
official values (or a user-given md5sum-style file, e.g. for a subset) *before* it is
unpickled, and unpickling goes through a restricted unpickler that accepts nothing but
numpy arrays. Labels: vehicles {0, 1, 8, 9} -> y = -1, animals {2..7} -> y = +1. Ids are
the official indices: 10000 (k - 1) + i for row i of ``data_batch_k``, i for the test set.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import atomic_path, file_md5
from .spec import CIFAR
from .store import ImageSet

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
OFFICIAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
TRAIN = [f"data_batch_{k}" for k in range(1, 6)]
VEHICLES = (0, 1, 8, 9)
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def binary_labels(classes: np.ndarray) -> np.ndarray:
    """Vehicles -> -1, animals -> +1 (paper section 2)."""
    return np.where(np.isin(classes, VEHICLES), -1, 1).astype(np.int8)


class _NumpyOnly(pickle.Unpickler):
    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(data: bytes, source: str, label_key: str = "labels") -> dict:
    try:
        d = _NumpyOnly(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:
        raise UserError(f"{source}: not a CIFAR-10 python batch ({type(e).__name__}: {e})") from None
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    if "data" not in d or label_key not in d:
        raise UserError(f"{source}: CIFAR batch lacks 'data' or '{label_key}'")
    data = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != CIFAR.dim or len(labels) != len(data):
        raise UserError(f"{source}: expected data (N, {CIFAR.dim}) and N labels, got {data.shape} and {len(labels)}")
    return {"images": data.reshape(-1, *CIFAR.shape), "classes": labels}


def read_checksums(spec: str, official: dict[str, str] | None = None, key: str = "data.cifar10.checksums") -> dict[str, str]:
    """'official' (``official``, default CIFAR-10's) or the path of an md5sum-style file
    ("<md5>  <name>" per line)."""
    if spec == "official":
        return dict(official) if official is not None else dict(OFFICIAL_MD5, **{ARCHIVE: ARCHIVE_MD5})
    p = Path(spec)
    if not p.is_file():
        raise UserError(f"{p}: checksum file (params {key}) does not exist")
    out = {}
    for line in p.read_text().splitlines():
        if line.strip():
            parts = line.split()
            if len(parts) != 2 or len(parts[0]) != 32:
                raise UserError(f"{p}: expected lines '<md5> <file name>', got {line!r}")
            out[Path(parts[1]).name] = parts[0].lower()
    return out


def _verify(name: str, data: bytes, sums: dict[str, str], source: str) -> None:
    if name not in sums:
        raise UserError(f"{source}: no checksum known for {name}; refusing to unpickle it")
    got = hashlib.md5(data).hexdigest()
    if got != sums[name]:
        raise UserError(f"{source}: md5 mismatch for {name}: expected {sums[name]}, got {got} (corrupt or wrong file)")


def _batches_from_dir(d: Path, sums: dict[str, str]) -> dict[str, bytes]:
    base = d / "cifar-10-batches-py" if (d / "cifar-10-batches-py").is_dir() else d
    out = {}
    for name in TRAIN + ["test_batch"]:
        f = base / name
        if not f.is_file():
            raise UserError(f"{f}: CIFAR-10 batch file is missing")
        data = f.read_bytes()
        _verify(name, data, sums, str(f))
        out[name] = data
    return out


def _batches_from_archive(a: Path, sums: dict[str, str]) -> dict[str, bytes]:
    digest = file_md5(a)
    expected = sums.get(ARCHIVE, sums.get(a.name))
    if expected is None:
        raise UserError(f"{a}: no checksum known for the archive; refusing to open it")
    if digest != expected:
        raise UserError(f"{a}: md5 mismatch: expected {expected}, got {digest} (corrupt or wrong archive)")
    out = {}
    try:
        with tarfile.open(a, "r:gz") as tar:
            for m in tar.getmembers():
                name = Path(m.name).name
                if m.isfile() and name in TRAIN + ["test_batch"]:
                    out[name] = tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise UserError(f"{a}: corrupt archive ({e})") from None
    for name in TRAIN + ["test_batch"]:
        if name not in out:
            raise UserError(f"{a}: archive lacks {name}")
        _verify(name, out[name], sums, f"{a}:{name}")
    return out


def download(url: str, dest: Path, md5: str = ARCHIVE_MD5, key: str = "data.cifar10.path") -> Path:
    """Download ``url`` to ``dest`` (atomically) and verify its md5."""
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                while block := r.read(1 << 20):
                    f.write(block)
        except Exception as e:
            raise UserError(f"{url}: download failed ({e}); pass a local copy with params {key}") from None
        got = file_md5(tmp)
        if got != md5:
            raise UserError(f"{url}: downloaded file has md5 {got}, expected {md5}")
    return dest


def load_cifar10(path: str | Path, checksums: str = "official", url: str | None = URL) -> tuple[ImageSet, ImageSet]:
    """(train, test) image sets with binary labels and official ids."""
    p = Path(path)
    sums = read_checksums(checksums)
    if not p.exists():
        if not url:
            raise UserError(f"{p}: CIFAR-10 not found and no download URL is set")
        p = download(url, p if p.suffix == ".gz" else p / ARCHIVE)
    raw = _batches_from_archive(p, sums) if p.is_file() else _batches_from_dir(p, sums)
    train = [_unpickle(raw[n], n) for n in TRAIN]
    test = _unpickle(raw["test_batch"], "test_batch")
    images = np.concatenate([b["images"] for b in train])
    classes = np.concatenate([b["classes"] for b in train])
    ids = np.concatenate([10000 * k + np.arange(len(b["classes"])) for k, b in enumerate(train)])
    return (
        ImageSet(images, binary_labels(classes), ids.astype(np.int64), None, classes, CLASS_NAMES),
        ImageSet(test["images"], binary_labels(test["classes"]), np.arange(len(test["classes"]), dtype=np.int64), None,
                 test["classes"], CLASS_NAMES),
    )


class _Cifar10:
    """CIFAR-10 train as the pool, ciFAIR-10 test as the held-out set (``data.cifar10``,
    ``data.cifair``)."""

    name = "cifar10"
    pool_kind, heldout_kind = "CIFAR-10 train", "ciFAIR-10 test"

    def spec(self, cfg: dict):
        return CIFAR

    def num_classes(self, data_cfg: dict) -> int:
        return len(CLASS_NAMES)

    def inputs(self, data_cfg: dict) -> list[str]:
        f = data_cfg.get("cifair") or {}
        return [data_cfg["cifar10"]["path"], f.get("zip"), f.get("duplicates")]

    def load(self, data_cfg: dict, seed: int) -> tuple[ImageSet, ImageSet]:
        from .cifair import cifair_test_from_cifar, cifair_test_from_zip

        c = data_cfg["cifar10"]
        pool, test = load_cifar10(c["path"], c["checksums"], c.get("url"))
        f = data_cfg.get("cifair") or {}
        if f.get("zip"):
            return pool, cifair_test_from_zip(f["zip"])
        if f.get("duplicates"):
            return pool, cifair_test_from_cifar(test, f["duplicates"])
        raise UserError("params: key 'data.cifair': set 'zip' or 'duplicates' (the ciFAIR-10 test images)")


SOURCE = _Cifar10()
