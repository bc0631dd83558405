import io
import pickle
import tarfile

import numpy as np
import pytest

from conftest import CIFAIR_LISTS, CIFAR_SUBSET, requires_cifair_lists, requires_cifar_subset
from recon_restore.data.cifair import cifair_test_from_cifar, duplicate_test_ids
from recon_restore.data.cifar import _NumpyOnly, binary_labels, load_cifar10
from recon_restore.data.demo import make_demo_sets
from recon_restore.data.store import read_image_set, write_image_set
from recon_restore.errors import UserError

DEMO = dict(negative=["stereo_motorcycle", "coffee"], positive=["astronaut", "gravel"], cells=4, heldout_fraction=0.5, crop_min=0.6,
            pool_crops_per_cell=3, heldout_crops_per_cell=2, min_gradient=0.02, max_flat=0.7, pool_per_class=30, heldout_per_class=10)


def test_binary_labels_vehicles_negative():
    assert binary_labels(np.arange(10)).tolist() == [-1, -1, 1, 1, 1, 1, 1, 1, -1, -1]


def test_demo_sets_balanced_disjoint_deterministic():
    pool, held = make_demo_sets(DEMO, seed=3)
    assert pool.images.shape == (60, 3, 32, 32) and held.images.shape == (20, 3, 32, 32)
    assert (pool.labels == -1).sum() == 30 and (held.labels == 1).sum() == 10
    assert not set(pool.ids.tolist()) & set(held.ids.tolist())
    assert not set(pool.groups.tolist()) & set(held.groups.tolist())  # a cell is pool or held-out, never both
    # no held-out patch equals any pool patch
    flat_p = pool.images.reshape(len(pool.images), -1)
    for h in held.images.reshape(len(held.images), -1):
        assert not (flat_p == h).all(1).any()
    pool2, held2 = make_demo_sets(DEMO, seed=3)
    assert np.array_equal(pool.images, pool2.images) and np.array_equal(held.ids, held2.ids)


def _grey_gradient(images):
    """Mean absolute horizontal and vertical difference of the grey image, written out by hand."""
    g = images.astype(np.float64).mean(1) / 255
    return np.array([(np.abs(x[:, 1:] - x[:, :-1]).mean() + np.abs(x[1:] - x[:-1]).mean()) / 2 for x in g])


def _flat_fraction(images):
    g = images.astype(np.float64).mean(1) / 255
    out = []
    for x in g:
        stds = [x[i : i + 3, j : j + 3].std() for i in range(30) for j in range(30)]
        out.append(np.mean(np.array(stds) < 0.03))
    return np.array(out)


def test_demo_preset_images_meet_the_content_rule(params_doc):
    """The demo's images are textured like CIFAR-10's: no near-flat image (sky, dark
    backgrounds) enters the pool or the held-out set; held-out images of one group
    (crops of one photo cell) never appear in the pool."""
    cfg = params_doc["presets"]["demo"]["data"]["demo"]
    pool, held = make_demo_sets(cfg, seed=0)
    for s in (pool, held):
        assert (_grey_gradient(s.images) >= cfg["min_gradient"]).all()
        assert (_flat_fraction(s.images) <= cfg["max_flat"]).all()
        assert (s.labels == -1).sum() == (s.labels == 1).sum()
    assert cfg["min_gradient"] >= 0.02 and cfg["max_flat"] <= 0.6  # near CIFAR-10's (10th pct. 0.035; 75th pct. 0.43)
    assert not set(pool.groups.tolist()) & set(held.groups.tolist())
    # enough distinct groups for the evaluation images and a null gallery of the same size
    per_class = params_doc["presets"]["demo"]["evaluate"]["images_per_class"]
    for c in (-1, 1):
        assert len(np.unique(held.groups[held.labels == c])) >= 2 * per_class


def test_demo_classes_are_separable_by_the_target_network(tmp_path, params_doc):
    import yaml

    from recon_restore.cli import main

    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params_doc))
    assert main(["data", "prepare", "--params", str(p), "--pool", str(tmp_path / "pool.h5"), "--heldout", str(tmp_path / "held.h5")]) == 0
    assert main(["attack", "target", "--params", str(p), "--heldout", str(tmp_path / "held.h5"), "--out", str(tmp_path / "t.pt")]) == 0
    import torch

    stats = torch.load(tmp_path / "t.pt", weights_only=True)["stats"]
    assert stats["accuracy"] == 1.0 and stats["min_margin"] > 0


def test_demo_asks_for_too_many_patches():
    with pytest.raises(UserError, match="pool_per_class"):
        make_demo_sets(dict(DEMO, pool_per_class=100000), seed=0)
    with pytest.raises(UserError, match="pass the content rule"):
        make_demo_sets(dict(DEMO, min_gradient=1.0), seed=0)
    with pytest.raises(UserError, match="unknown scikit-image photo"):
        make_demo_sets(dict(DEMO, negative=["no_such_photo"]), seed=0)


def test_image_set_round_trip(tmp_path):
    pool, _ = make_demo_sets(DEMO, seed=0)
    write_image_set(tmp_path / "p.h5", pool, {"content": "x"})
    back = read_image_set(tmp_path / "p.h5")
    assert np.array_equal(back.images, pool.images) and np.array_equal(back.labels, pool.labels)
    with pytest.raises(UserError, match="already exists"):
        write_image_set(tmp_path / "p.h5", pool, {})
    with pytest.raises(UserError, match="does not exist"):
        read_image_set(tmp_path / "missing.h5")


@requires_cifar_subset()
def test_cifar_subset_loads_with_its_checksums(subset_checksums):
    train, test = load_cifar10(CIFAR_SUBSET.parent, str(subset_checksums), url=None)
    assert train.images.shape == (5085, 3, 32, 32) and test.images.shape == (1017, 3, 32, 32)
    assert train.ids[1017] == 10000 and train.ids[-1] == 40000 + 1016
    assert set(np.unique(train.labels)) == {-1, 1}


@requires_cifar_subset()
def test_cifar_official_checksums_reject_the_subset():
    with pytest.raises(UserError, match=r"md5 mismatch for data_batch_1: expected c99cafc152244af753f735de768cd75f"):
        load_cifar10(CIFAR_SUBSET, "official", url=None)


def _fake_archive(path, payload: bytes):
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def test_archive_with_wrong_checksum_is_refused(tmp_path):
    a = tmp_path / "cifar-10-python.tar.gz"
    _fake_archive(a, b"not cifar")
    with pytest.raises(UserError) as e:
        load_cifar10(a, "official", url=None)
    assert str(a) in str(e.value) and "md5 mismatch" in str(e.value) and "c58f30108f718f92721af3b95e74349a" in str(e.value)


def test_corrupt_archive_is_named(tmp_path):
    a = tmp_path / "cifar-10-python.tar.gz"
    a.write_bytes(b"\x1f\x8b garbage that is not gzip")
    import hashlib

    sums = tmp_path / "sums.md5"
    sums.write_text(f"{hashlib.md5(a.read_bytes()).hexdigest()}  cifar-10-python.tar.gz\n")
    with pytest.raises(UserError, match="corrupt archive"):
        load_cifar10(a, str(sums), url=None)


def test_missing_batch_file_is_named(tmp_path, subset_checksums):
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(UserError, match="data_batch_1: CIFAR-10 batch file is missing"):
        load_cifar10(tmp_path, str(subset_checksums), url=None)


def test_restricted_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        _NumpyOnly(io.BytesIO(pickle.dumps({"data": Evil()}))).load()


@requires_cifar_subset()
@requires_cifair_lists()
def test_cifair_test_drops_every_listed_duplicate(subset_checksums):
    _, test = load_cifar10(CIFAR_SUBSET, str(subset_checksums), url=None)
    dup = duplicate_test_ids(CIFAIR_LISTS)
    cif = cifair_test_from_cifar(test, CIFAIR_LISTS)
    assert not set(cif.ids.tolist()) & dup
    assert 104 in dup and 104 not in cif.ids and 149 not in cif.ids  # pairs named in shared/data/README
    assert len(cif) == len(test) - len(dup & set(test.ids.tolist()))
