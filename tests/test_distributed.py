"""Data-parallel restorer training (restorers/distributed.py): G gloo processes on CPU
train to the same weights as one process with the same global batch, each process reads
only its own rows of the balanced sampler's stream, and the split is exact."""

import numpy as np
import pytest
import torch
import yaml

from test_dataset import _data

from recon_restore.cli import main
from recon_restore.dataset.sampler import BalancedSampler
from recon_restore.dataset.shards import write_shard
from recon_restore.restorers.distributed import Group


def run(*args) -> int:
    return main([str(a) for a in args])


@pytest.fixture
def shards(tmp_path):
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    write_shard(paths[0], _data(runs=(0, 1), pairs_per_run=(9, 7), seed=0), {})
    write_shard(paths[1], _data(runs=(2, 3), pairs_per_run=(6, 8), seed=1), {})
    return paths


@pytest.mark.parametrize("batch,world", [(10, 3), (8, 2), (5, 5), (7, 1)])
def test_group_parts_cover_the_batch_once(batch, world):
    parts = [Group(r, world).part(batch) for r in range(world)]
    assert parts[0][0] == 0 and parts[-1][1] == batch
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
    assert max(h - lo for lo, h in parts) - min(h - lo for lo, h in parts) <= 1


@pytest.mark.parametrize("start", [0, 20, 130])
def test_sampler_parts_are_the_rows_of_the_whole_batches(shards, start):
    """Across windows, repeats and a resumed start: the parts' batches, put together, are the
    stream's batches, and a part reads nothing of the others (noise examples included)."""
    kw = dict(K=2, repeats=3, noise_fraction=0.2, seed=5, window=7)
    whole = BalancedSampler(shards, **kw).batches(10, start=start)
    parts = [BalancedSampler(shards, **kw).batches(10, start=start, part=Group(r, 3).part(10)) for r in range(3)]
    for _ in range(12):
        w = next(whole)
        ps = [next(p) for p in parts]
        assert [len(p.recon) for p in ps] == [4, 3, 3]
        for name in ("recon", "target", "aug_label", "noise"):
            assert torch.equal(getattr(w, name), torch.cat([getattr(p, name) for p in ps])), name


def test_sampler_part_reads_only_its_rows(shards, monkeypatch):
    from recon_restore.dataset import sampler as sm

    read = []
    orig = sm.gather_rows
    monkeypatch.setattr(sm, "gather_rows", lambda arr, rows: read.append(len(rows)) or orig(arr, rows))
    s = BalancedSampler(shards, K=100, repeats=2, noise_fraction=0.0, seed=1, window=100)
    next(s.batches(20, part=(0, 5)))
    n_part = sum(read)
    read.clear()
    next(BalancedSampler(shards, K=100, repeats=2, noise_fraction=0.0, seed=1, window=100).batches(20))
    assert 0 < n_part < sum(read)  # the window of 30 pairs: a quarter of each batch is read for part (0, 5)


def _params(tmp_path, tiny_doc, gpus: int) -> str:
    p = tiny_doc["presets"]["demo"]["restorers"]
    for m in ("edm", "bfdncnn", "n2n"):
        p[m]["train"].update(gpus=gpus, precision="fp64", steps=5, batch=6, checkpoint_every=0)
    p["edm"]["network"]["dropout"] = 0.0  # dropout masks come from each process's own stream
    path = tmp_path / f"params-{gpus}.yaml"
    path.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("method", ["bfdncnn", "edm", "recon2recon_l2"])
def test_two_gloo_processes_train_the_weights_of_one(shards, tmp_path, tiny_doc, method):
    """The issue's check: 2 CPU processes (gloo) for a few steps give the weights of a single
    process with the same global batch, to rounding (fp64). BF-DnCNN's batch statistics are
    reduced over both processes; EDM's noise levels and noise are drawn for the global batch."""
    assert run("dataset", "manifest", "--params", _params(tmp_path, tiny_doc, 1), "--shards", *shards,
               "--out", tmp_path / "manifest.json") == 0
    out = {}
    for g in (1, 2):
        out[g] = tmp_path / f"{method}-{g}.pt"
        assert run("restorers", "train", "--params", _params(tmp_path, tiny_doc, g), "--method", method,
                   "--manifest", tmp_path / "manifest.json", "--out", out[g], "--history", tmp_path / f"h-{g}.csv") == 0
    a = torch.load(out[1], weights_only=True)
    b = torch.load(out[2], weights_only=True)
    assert b["provenance"]["gpus"] == 2 and a["provenance"]["gpus"] == 1
    for k, v in a["state_dict"].items():
        assert torch.allclose(v, b["state_dict"][k], rtol=1e-9, atol=1e-11), k
    import pandas as pd

    ha, hb = pd.read_csv(tmp_path / "h-1.csv"), pd.read_csv(tmp_path / "h-2.csv")
    assert np.allclose(ha["loss"], hb["loss"], rtol=1e-9)  # the logged loss is the global batch's


def test_the_masked_loss_of_two_gloo_processes_is_the_loss_of_one(shards, tmp_path, tiny_doc):
    """Bernoulli noise's masked loss (N2N) under data parallelism: the processes' rows have
    different valid-pixel counts, and each process dividing by its own count would weight
    them unequally; with the global count the weights equal one process's (fp64)."""
    from recon_restore.data.store import ImageSet, write_image_set

    rng = np.random.default_rng(0)
    pool = tmp_path / "pool.h5"
    write_image_set(pool, ImageSet(rng.integers(0, 256, (24, 3, 32, 32), dtype=np.uint8), np.repeat([-1, 1], 12),
                                   np.arange(24)), {})
    out = {}
    for g in (1, 2):
        out[g] = tmp_path / f"b-{g}.pt"
        assert run("restorers", "train", "--params", _params(tmp_path, tiny_doc, g), "--method", "n2n_bernoulli_l2",
                   "--pool", pool, "--out", out[g], "--history", tmp_path / f"hb-{g}.csv") == 0
    a, b = (torch.load(out[g], weights_only=True)["state_dict"] for g in (1, 2))
    for k, v in a.items():
        assert torch.allclose(v, b[k], rtol=1e-9, atol=1e-11), k


def test_split_changes_nothing_but_the_batch_statistics_would(shards, tmp_path, tiny_doc, monkeypatch):
    """Without the cross-process reduction of the batch statistics, BF-DnCNN's weights would
    differ: the equality above is a real check of it."""
    from recon_restore.restorers import distributed

    assert run("dataset", "manifest", "--params", _params(tmp_path, tiny_doc, 1), "--shards", *shards,
               "--out", tmp_path / "manifest.json") == 0
    common = ["--method", "bfdncnn", "--manifest", tmp_path / "manifest.json"]
    assert run("restorers", "train", "--params", _params(tmp_path, tiny_doc, 1), *common, "--out", tmp_path / "one.pt") == 0
    # one process, but the batch statistics of the first 3 rows only (as an unsynchronised rank 0 would see)
    orig = distributed.batch_variance
    monkeypatch.setattr("recon_restore.restorers.bfdncnn.batch_variance", lambda x: orig(x[: x.shape[0] // 2]))
    assert run("restorers", "train", "--params", _params(tmp_path, tiny_doc, 1), *common, "--out", tmp_path / "local.pt") == 0
    a = torch.load(tmp_path / "one.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "local.pt", weights_only=True)["state_dict"]
    assert not all(torch.allclose(a[k], b[k], rtol=1e-9, atol=1e-11) for k in a)


def test_gpus_above_the_visible_gpus_or_the_batch_is_one_clear_error(shards, tmp_path, tiny_doc, capsys):
    path = _params(tmp_path, tiny_doc, 7)
    assert run("dataset", "manifest", "--params", path, "--shards", *shards, "--out", tmp_path / "manifest.json") == 0
    assert run("restorers", "train", "--params", path, "--method", "bfdncnn", "--manifest", tmp_path / "manifest.json",
               "--out", tmp_path / "x.pt") == 2
    err = capsys.readouterr().err
    assert "batch of 6 cannot be split over 7 processes" in err and not (tmp_path / "x.pt").exists()
