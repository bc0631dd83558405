"""Data sources and the image spec (issue: bring your own data): every source loads through
one registry, the binary split is a param, nothing assumes 3x32x32 (scikit-learn's digits are
1x8x8), and bad input is one clear error."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from conftest import CIFAR_SUBSET, requires_cifar_subset

from recon_restore.data import sources
from recon_restore.data.folder import read_images, stratified_split
from recon_restore.data.spec import ImageSpec
from recon_restore.data.store import read_image_set, write_image_set
from recon_restore.errors import UserError


def digits_npz(path, n=None):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images / 16 * 255).astype(np.uint8)  # (1797, 8, 8) grey
    y = d.target
    if n:
        x, y = x[:n], y[:n]
    np.savez(path, images=x, labels=y, class_names=np.array([str(k) for k in range(10)]))
    return x, y


def folder_cfg(pool, channels=3, size=(32, 32), **kw):
    return {"source": "folder", "positive": kw.pop("positive", [1]),
            "folder": dict({"pool": str(pool), "heldout": None, "heldout_fraction": 0.5, "channels": channels,
                            "size": list(size), "resize": False}, **kw)}


def test_digits_npz_is_a_1x8x8_source_through_the_registry(tmp_path):
    x, y = digits_npz(tmp_path / "digits.npz")
    cfg = folder_cfg(tmp_path / "digits.npz", channels=1, size=(8, 8), positive=["0", "2", "4", "6", "8"])
    assert sources.spec_of(cfg) == ImageSpec(1, 8, 8) and sources.num_classes(cfg) == 10
    pool, held, src = sources.prepare(cfg, seed=1)
    assert pool.images.shape[1:] == (1, 8, 8) and len(pool) + len(held) == len(x)
    assert set(np.unique(pool.classes)) == set(range(10))
    assert ((pool.labels == 1) == (pool.classes % 2 == 0)).all()  # the split follows data.positive
    # the held-out fraction per class, disjoint from the pool
    assert not set(pool.ids) & set(held.ids)
    for c in range(10):
        n = (y == c).sum()
        assert abs((held.classes == c).sum() - n / 2) <= 1
    # image sets carry the spec and the classes through HDF5
    write_image_set(tmp_path / "pool.h5", pool, {})
    back = read_image_set(tmp_path / "pool.h5", ImageSpec(1, 8, 8))
    assert (back.images == pool.images).all() and (back.classes == pool.classes).all() and back.class_names == pool.class_names
    with pytest.raises(UserError, match=r"expected images \(N, 3, 32, 32\)"):
        read_image_set(tmp_path / "pool.h5", ImageSpec(3, 32, 32))


def _write_pngs(root, images, classes, names):
    from PIL import Image

    for i, (im, c) in enumerate(zip(images, classes)):
        d = root / names[c]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im.transpose(1, 2, 0)).save(d / f"{i:05d}.png")


@requires_cifar_subset()
def test_folder_of_pngs_reads_the_cifar_subset_exactly(tmp_path, subset_checksums):
    from recon_restore.data.cifar import CLASS_NAMES, load_cifar10

    train, _ = load_cifar10(CIFAR_SUBSET, str(subset_checksums), url=None)
    pick = np.concatenate([np.nonzero(train.classes == c)[0][:6] for c in range(10)])
    _write_pngs(tmp_path / "pool", train.images[pick], train.classes[pick], CLASS_NAMES)
    s = read_images(tmp_path / "pool", ImageSpec(3, 32, 32))
    assert s.class_names == sorted(CLASS_NAMES)
    # every image comes back bit-exact with its class (PNG is lossless)
    got = {im.tobytes(): s.class_names[c] for im, c in zip(s.images, s.classes)}
    want = {im.tobytes(): CLASS_NAMES[c] for im, c in zip(train.images[pick], train.classes[pick])}
    assert got == want
    cfg = folder_cfg(tmp_path / "pool", positive=["bird", "cat", "deer", "dog", "frog", "horse"])
    pool, held, _ = sources.prepare(cfg, seed=0)
    animals = np.isin(np.array(pool.class_names)[pool.classes], ["bird", "cat", "deer", "dog", "frog", "horse"])
    assert ((pool.labels == 1) == animals).all() and len(held) == 30


def test_folder_refuses_or_resizes_other_sizes(tmp_path):
    from PIL import Image

    for c in ("a", "b"):
        (tmp_path / "pool" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), 40 * i, np.uint8)).save(tmp_path / "pool" / c / f"{i}.png")
    with pytest.raises(UserError, match=r"0\.png: image is 12x10.*data\.folder\.size.*resize: true"):
        read_images(tmp_path / "pool", ImageSpec(3, 8, 8))
    s = read_images(tmp_path / "pool", ImageSpec(1, 8, 8), resize=True)
    assert s.images.shape == (6, 1, 8, 8) and s.class_names == ["a", "b"]
    assert s.images[2].min() == s.images[2].max() == 80  # a flat image stays flat through the resize


def test_sources_fail_with_one_clear_error(tmp_path):
    with pytest.raises(UserError, match=r"data\.source.*'mnst'.*did you mean 'mnist'"):
        sources.get("mnst")
    with pytest.raises(UserError, match=r"does not exist"):
        sources.prepare(folder_cfg(tmp_path / "nothing"), seed=0)
    digits_npz(tmp_path / "d.npz", 200)
    with pytest.raises(UserError, match=r"'7x' is not a class of this source \(did you mean '7'\?\)"):
        sources.prepare(folder_cfg(tmp_path / "d.npz", channels=1, size=(8, 8), positive=["7x"]), seed=0)
    with pytest.raises(UserError, match=r"has no image of class y = -1"):
        sources.prepare(folder_cfg(tmp_path / "d.npz", channels=1, size=(8, 8), positive=list(range(10))), seed=0)
    np.savez(tmp_path / "bad.npz", pixels=np.zeros((2, 8, 8)))
    with pytest.raises(UserError, match=r"bad\.npz: expected arrays 'images' and 'labels'"):
        read_images(tmp_path / "bad.npz", ImageSpec(1, 8, 8))


def _idx(path, arr):
    head = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(gzip.compress(head + arr.astype(np.uint8).tobytes()))


def test_mnist_idx_files_load_after_their_checksums(tmp_path):
    import hashlib

    from recon_restore.data.idx import FILES

    rng = np.random.default_rng(0)
    arrays = {"train_images": rng.integers(0, 256, (20, 28, 28)), "train_labels": np.arange(20) % 10,
              "test_images": rng.integers(0, 256, (10, 28, 28)), "test_labels": np.arange(10)}
    for k, a in arrays.items():
        _idx(tmp_path / (FILES[k] + ".gz"), a)
    sums = tmp_path / "md5"
    sums.write_text("".join(f"{hashlib.md5((tmp_path / (FILES[k] + '.gz')).read_bytes()).hexdigest()}  {FILES[k]}.gz\n"
                            for k in arrays))
    cfg = {"source": "mnist", "positive": [0, 2, 4, 6, 8], "mnist": {"path": str(tmp_path), "checksums": str(sums), "url": None}}
    pool, held, _ = sources.prepare(cfg, seed=0)
    assert pool.images.shape == (20, 1, 28, 28) and (pool.images[:, 0] == arrays["train_images"]).all()
    assert (held.classes == np.arange(10)).all() and sources.spec_of(cfg) == ImageSpec(1, 28, 28)
    # the official checksums refuse these (made-up) files before they are parsed
    with pytest.raises(UserError, match=r"md5 mismatch"):
        sources.prepare(dict(cfg, mnist=dict(cfg["mnist"], checksums="official")), seed=0)
    # a missing file names what to download
    (tmp_path / (FILES["test_labels"] + ".gz")).unlink()
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte\.gz: MNIST file is missing; download"):
        sources.prepare(cfg, seed=0)


def test_stratified_split_is_seeded_and_disjoint():
    from recon_restore.data.store import ImageSet

    cls = np.repeat(np.arange(3), 10)
    s = ImageSet(np.zeros((30, 1, 4, 4), np.uint8), np.where(cls == 0, 1, -1).astype(np.int8), np.arange(30), None, cls)
    a, b = stratified_split(s, 0.3, 5)
    a2, b2 = stratified_split(s, 0.3, 5)
    assert (b.ids == b2.ids).all() and not set(a.ids) & set(b.ids) and len(b) == 9
