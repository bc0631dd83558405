"""ciFAIR-10 test images (Barz & Denzler 2020; paper section 5.1).

Either the official ``ciFAIR-10.zip`` (md5 ``ca08fd390f0839693d3fc45c4e49585f``; its
``test_batch`` has md5 ``01290e6b622a1977a000eff13650aca2``), or, without it, the CIFAR-10
test images whose ids appear in neither ciFAIR duplicate list (``duplicates_cifar10.csv``:
test images with a near-duplicate in the training set; ``duplicates_cifar10_test.csv``:
duplicates inside the test set). Those images are, unchanged, ciFAIR-10 test images.
"""

from __future__ import annotations

import csv
import hashlib
import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import file_md5
from .cifar import CLASS_NAMES, _unpickle, binary_labels
from .store import ImageSet

ZIP_MD5 = "ca08fd390f0839693d3fc45c4e49585f"
TEST_BATCH_MD5 = "01290e6b622a1977a000eff13650aca2"
DUPLICATE_LISTS = ("duplicates_cifar10.csv", "duplicates_cifar10_test.csv")


def duplicate_test_ids(folder: str | Path) -> set[int]:
    """Every CIFAR-10 test id named in the ciFAIR duplicate lists (any id column)."""
    d = Path(folder)
    ids: set[int] = set()
    for name in DUPLICATE_LISTS:
        f = d / name
        if not f.is_file():
            raise UserError(f"{f}: ciFAIR duplicate list is missing")
        with open(f, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or "TestID" not in rows[0]:
            raise UserError(f"{f}: expected CSV columns TestID,TrainID,Distance,Judgment")
        for r in rows:
            ids.add(int(r["TestID"]))
            if name == "duplicates_cifar10_test.csv":
                ids.add(int(r["TrainID"]))  # both columns are test ids in this list
    return ids


def cifair_test_from_cifar(test: ImageSet, duplicates_folder: str | Path) -> ImageSet:
    keep = ~np.isin(test.ids, sorted(duplicate_test_ids(duplicates_folder)))
    return test.subset(keep)


def cifair_test_from_zip(path: str | Path) -> ImageSet:
    p = Path(path)
    got = file_md5(p)
    if got != ZIP_MD5:
        raise UserError(f"{p}: md5 mismatch: expected {ZIP_MD5}, got {got} (corrupt or wrong ciFAIR-10 archive)")
    try:
        with zipfile.ZipFile(p) as z:
            name = next((n for n in z.namelist() if n.endswith("test_batch")), None)
            if name is None:
                raise UserError(f"{p}: archive lacks test_batch")
            data = z.read(name)
    except zipfile.BadZipFile as e:
        raise UserError(f"{p}: corrupt zip ({e})") from None
    if hashlib.md5(data).hexdigest() != TEST_BATCH_MD5:
        raise UserError(f"{p}:test_batch: md5 mismatch (expected {TEST_BATCH_MD5})")
    b = _unpickle(data, f"{p}:test_batch")
    return ImageSet(b["images"], binary_labels(b["classes"]), np.arange(len(b["classes"]), dtype=np.int64), None, b["classes"],
                    CLASS_NAMES)
