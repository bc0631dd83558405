"""The user's own images (``data.folder``): bring your own data.

``pool`` (and optionally ``heldout``) is either a folder with one subfolder per class holding
PNG/JPEG files (classes named by the subfolders, in sorted order), or an ``.npz`` with
``images`` ((N, H, W), (N, H, W, C) or (N, C, H, W); uint8, or float in [0, 1]) and integer
``labels`` (optionally ``class_names``). Every image must have the spec of the params
(``channels``, ``size``): with ``resize: true`` other sizes are resized (antialiased) and
colour is converted (grey <-> RGB); otherwise the first image of another size is one clear
error naming it. Without ``heldout`` a stratified random ``heldout_fraction`` of the pool
(seeded) becomes the held-out set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..seeding import derive_seed
from .spec import ImageSpec
from .store import ImageSet

EXTENSIONS = {".png", ".jpg", ".jpeg"}


def _from_dir(d: Path, spec: ImageSpec, resize: bool) -> ImageSet:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(f"{d}: expected one subfolder per class holding PNG/JPEG images, found no subfolder")
    mode = "L" if spec.channels == 1 else "RGB"
    images, labels = [], []
    for k, c in enumerate(classes):
        files = sorted(f for f in (d / c).iterdir() if f.suffix.lower() in EXTENSIONS)
        if not files:
            raise UserError(f"{d / c}: class folder holds no PNG/JPEG image")
        for f in files:
            try:
                with Image.open(f) as im:
                    im.load()
                    if im.size != (spec.width, spec.height):
                        if not resize:
                            raise UserError(f"{f}: image is {im.size[0]}x{im.size[1]} (width x height), the params' spec is "
                                            f"{spec.width}x{spec.height} (data.folder.size); set data.folder.resize: true to resize")
                        im = im.convert(mode).resize((spec.width, spec.height), Image.Resampling.LANCZOS)
                    if im.mode != mode and not resize and (im.mode in ("L", "LA") and spec.channels == 3 or
                                                           im.mode not in ("L", "LA", "P", "1") and spec.channels == 1):
                        raise UserError(f"{f}: image has mode {im.mode}, the params' spec has {spec.channels} channel(s) "
                                        f"(data.folder.channels); set data.folder.resize: true to convert")
                    arr = np.asarray(im.convert(mode), dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as e:
                raise UserError(f"{f}: unreadable image ({e})") from None
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(k)
    cls = np.asarray(labels, dtype=np.int64)
    return ImageSet(np.stack(images), np.where(cls % 2 == 0, -1, 1).astype(np.int8), np.arange(len(cls), dtype=np.int64), None,
                    cls, classes)


def _from_npz(f: Path, spec: ImageSpec, resize: bool) -> ImageSet:
    try:
        z = np.load(f, allow_pickle=False)
        keys = set(z.files)
    except Exception as e:
        raise UserError(f"{f}: unreadable .npz ({e})") from None
    if not {"images", "labels"} <= keys:
        raise UserError(f"{f}: expected arrays 'images' and 'labels' in the .npz, found {sorted(keys)}")
    x, y = z["images"], z["labels"]
    if x.dtype != np.uint8:
        if not np.issubdtype(x.dtype, np.floating) or x.size and (x.min() < 0 or x.max() > 1):
            raise UserError(f"{f}: 'images' must be uint8 or float in [0, 1], got {x.dtype}")
        x = np.round(x * 255).astype(np.uint8)
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise UserError(f"{f}: 'labels' must be N non-negative integers for N = {len(x)} images, got {y.dtype} {y.shape}")
    try:
        x = spec.as_nchw(x, str(f))
    except UserError:
        if not resize or x.ndim not in (3, 4):
            raise
        x = _resized(x, spec)
    names = [str(n) for n in z["class_names"]] if "class_names" in keys else None
    y = y.astype(np.int64)
    return ImageSet(x, np.where(y % 2 == 0, -1, 1).astype(np.int8), np.arange(len(y), dtype=np.int64), None, y, names)


def _resized(x: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Channels-last or -first arrays of another size, resized one by one (PIL, antialiased)."""
    from PIL import Image

    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    mode = "L" if spec.channels == 1 else "RGB"
    out = []
    for im in x:
        pil = Image.fromarray(im if im.ndim == 2 or im.shape[-1] == 3 else im[..., 0])
        arr = np.asarray(pil.convert(mode).resize((spec.width, spec.height), Image.Resampling.LANCZOS), dtype=np.uint8)
        out.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    return np.stack(out)


def read_images(path: str | Path, spec: ImageSpec, resize: bool = False) -> ImageSet:
    p = Path(path)
    if p.is_dir():
        return _from_dir(p, spec, resize)
    if p.is_file() and p.suffix == ".npz":
        return _from_npz(p, spec, resize)
    raise UserError(f"{p}: expected a folder of class subfolders (PNG/JPEG) or an .npz with 'images' and 'labels' "
                    f"(params data.folder.pool / data.folder.heldout)" + ("" if p.exists() else "; it does not exist"))


def stratified_split(s: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """(pool, held-out): per class a random ``fraction`` (at least one image) held out."""
    rng = np.random.default_rng(derive_seed(seed, "folder-split"))
    held = np.zeros(len(s), dtype=bool)
    for c in np.unique(s.classes):
        idx = np.nonzero(s.classes == c)[0]
        k = max(1, int(round(fraction * len(idx)))) if len(idx) > 1 else 0
        held[rng.choice(idx, size=k, replace=False)] = True
    return s.subset(~held), s.subset(held)


class _Folder:
    name = "folder"
    pool_kind, heldout_kind = "folder pool", "folder held-out"

    def spec(self, cfg: dict) -> ImageSpec:
        return ImageSpec(int(cfg["channels"]), int(cfg["size"][0]), int(cfg["size"][1]))

    def inputs(self, data_cfg: dict) -> list[str]:
        c = data_cfg["folder"]
        return [c["pool"], c.get("heldout")]

    def num_classes(self, data_cfg: dict) -> int:
        """Class subfolders (or distinct labels of the .npz) of the pool; 2 while it does not exist."""
        p = Path(data_cfg["folder"]["pool"])
        if p.is_dir():
            return max(1, sum(1 for q in p.iterdir() if q.is_dir() and not q.name.startswith(".")))
        if p.is_file() and p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return int(len(np.unique(z["labels"]))) if "labels" in z.files else 2
        return 2

    def load(self, data_cfg: dict, seed: int) -> tuple[ImageSet, ImageSet]:
        c = data_cfg["folder"]
        spec = self.spec(c)
        pool = read_images(c["pool"], spec, c.get("resize", False))
        if c.get("heldout"):
            held = read_images(c["heldout"], spec, c.get("resize", False))
            if held.class_names != pool.class_names:
                raise UserError(f"{c['heldout']}: classes {held.class_names} differ from the pool's {pool.class_names}")
            return pool, held
        return stratified_split(pool, float(c["heldout_fraction"]), seed)


SOURCE = _Folder()
