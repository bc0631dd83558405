import json

import h5py
import numpy as np
import pytest
import torch

from recon_restore.dataset import augment
from recon_restore.dataset.manifest import build_manifest, load_manifest
from recon_restore.dataset.match import accept, match_candidates
from recon_restore.dataset.waves import counts_from_shards, make_wave
from recon_restore.dataset.sampler import BalancedSampler
from recon_restore.dataset.shards import ShardData, read_shard, verify_shard, write_shard
from recon_restore.errors import UserError


# ---- acceptance rule ---------------------------------------------------------------
def test_acceptance_rule_threshold_margin_and_ties():
    best = torch.tensor([0.41, 0.40, 0.60, 0.60, 0.70, 0.90])
    second = torch.tensor([0.30, 0.10, 0.56, 0.55, 0.70, -float("inf")])
    # strictly above 0.4; at least 0.05 above the runner-up; a tie never passes
    assert accept(best, second).tolist() == [True, False, False, True, False, True]


def test_match_keeps_every_snapshot_and_best_target():
    g = torch.Generator().manual_seed(0)
    targets = torch.rand(4, 3, 32, 32, generator=g)
    noise = lambda s: (torch.rand(3, 32, 32, generator=g) * s)  # noqa: E731
    # candidate 0 is target 2 at epoch 20 only; candidate 1 is noise; candidate 2 matches 1 then better 3
    snaps = {
        10: torch.stack([noise(1), noise(1), 0.5 * targets[1] + 0.5 * noise(1)]),
        20: torch.stack([targets[2], noise(1), targets[3]]),
    }
    m = match_candidates(snaps, targets)
    assert m.candidate.tolist() == [0, 2]
    assert m.target.tolist() == [2, 3]
    assert m.accept_epoch.tolist() == [20, 20]


# ---- augmentation ------------------------------------------------------------------
def test_zero_label_is_identity_and_flips_are_exact():
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    cfg = augment.AugmentConfig()
    assert torch.equal(augment.apply(x, np.zeros((3, 9), np.float32), cfg), x)
    lab = np.zeros((3, 9), np.float32)
    lab[0, 0] = 1
    lab[1, 1] = 1
    out = augment.apply(x, lab, cfg)
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1].flip(-2)) and torch.equal(out[2], x[2])


def test_label_matches_the_applied_transform():
    """A pure translation label of (t, 0) moves content t * 0.125 * 32 pixels right."""
    x = torch.zeros(1, 3, 32, 32, dtype=torch.float64)
    x[0, :, 12:20, 8:14] = 1.0
    lab = np.zeros((1, 9), np.float32)
    lab[0, 7] = 1.0  # 4 px to the right
    out = augment.apply(x, lab, augment.AugmentConfig())
    cx_in = (x[0, 0].sum(0) * torch.arange(32)).sum() / x[0, 0].sum()
    cx_out = (out[0, 0].sum(0) * torch.arange(32)).sum() / out[0, 0].sum()
    assert float(cx_out - cx_in) == pytest.approx(4.0, abs=0.05)
    # rotation by pi (cos - 1 = -2, sin = 0) of a smooth image equals both flips
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = torch.exp(-((yy - 10) ** 2 + (xx - 9) ** 2) / 18.0).double().expand(1, 3, 32, 32)
    lab = np.zeros((1, 9), np.float32)
    lab[0, 3] = -2.0
    rot = augment.apply(blob, lab, augment.AugmentConfig())
    assert torch.allclose(rot[0], blob[0].flip(-1).flip(-2), atol=0.01)


def test_label_statistics_follow_edm_cifar_settings():
    lab = augment.sample_labels(20000, augment.AugmentConfig(), np.random.default_rng(0))
    assert lab.shape == (20000, 9) and lab.dtype == np.float32
    assert abs(lab[:, 0].mean() - 0.5) < 0.02  # x-flip always enabled, bit ~ Bernoulli(0.5)
    assert abs(lab[:, 1].mean() - 0.06) < 0.01  # y-flip: p = 0.12, then Bernoulli(0.5)
    assert abs((lab[:, 2] != 0).mean() - 0.12) < 0.01


# ---- shards ------------------------------------------------------------------------
def _data(runs=(0, 1), pairs_per_run=(5, 3), n=4, seed=0):
    rng = np.random.default_rng(seed)
    p = {k: [] for k in ("recon", "target_row", "run", "epoch", "candidate", "ssim", "margin")}
    t = {k: [] for k in ("image", "aug_label", "source_index", "run")}
    r = {k: [] for k in ("run", "seed", "status", "mean", "train_loss", "min_margin", "stationarity", "box", "lam_penalty", "pairs")}
    for j, (run, k) in enumerate(zip(runs, pairs_per_run)):
        p["recon"].append(rng.integers(0, 256, (k, 3, 32, 32), dtype=np.uint8))
        p["target_row"].append(j * n + rng.integers(0, n, k))
        p["run"].append(np.full(k, run))
        p["epoch"].append(np.arange(k))
        p["candidate"].append(np.zeros(k))
        p["ssim"].append(rng.random(k))
        p["margin"].append(rng.random(k))
        t["image"].append(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))
        t["aug_label"].append(rng.random((n, 9)))
        t["source_index"].append(rng.choice(50, n, replace=False))
        t["run"].append(np.full(n, run))
        for key, v in (("run", run), ("seed", run), ("status", 0), ("train_loss", 0.1), ("min_margin", 1.0), ("stationarity", 1.0),
                       ("box", 0.0), ("lam_penalty", 0.0), ("pairs", k)):
            r[key].append(v)
        r["mean"].append(rng.random((3, 32, 32)))
    scalars = ("run", "seed", "status", "train_loss", "min_margin", "stationarity", "box", "lam_penalty", "pairs", "mean")
    cat = lambda d: {k: np.concatenate(v) if k not in scalars or d is not r else (np.stack(v) if k == "mean" else np.asarray(v)) for k, v in d.items()}  # noqa: E731
    return ShardData(cat(p), cat(t), cat(r))


def test_shard_round_trip_and_schema(tmp_path):
    d = _data()
    write_shard(tmp_path / "s.h5", d, {"seed": 7})
    back = read_shard(tmp_path / "s.h5")
    for k in d.pairs:
        assert np.array_equal(back.pairs[k], d.pairs[k].astype(back.pairs[k].dtype)), k
    assert np.array_equal(back.targets["image"], d.targets["image"])
    with h5py.File(tmp_path / "s.h5") as f:
        assert f.attrs["complete"] == 1 and f.attrs["pairs"] == 8
        assert f["pairs/recon"].chunks is None and f["pairs/recon"].compression is None  # memory-mappable
    assert verify_shard(tmp_path / "s.h5") == {"pairs": 8, "targets": 8}
    write_shard(tmp_path / "z.h5", d, {}, compression="gzip")
    with h5py.File(tmp_path / "z.h5") as f:
        assert f["pairs/recon"].compression == "gzip" and f["pairs/recon"].chunks is not None
    z = read_shard(tmp_path / "z.h5")
    assert all(np.array_equal(z.pairs[k], back.pairs[k]) for k in d.pairs)


def test_verify_detects_truncation_and_alteration(tmp_path):
    write_shard(tmp_path / "s.h5", _data(), {})
    raw = (tmp_path / "s.h5").read_bytes()
    (tmp_path / "t.h5").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match=r"t\.h5"):
        verify_shard(tmp_path / "t.h5")
    with h5py.File(tmp_path / "s.h5", "r+") as f:
        f["pairs/ssim"][0] = 42.0
    with pytest.raises(UserError, match=r"s\.h5: dataset 'pairs/ssim' does not match its checksum"):
        verify_shard(tmp_path / "s.h5")


def test_interrupted_writer_leaves_no_complete_looking_shard(tmp_path, monkeypatch):
    import recon_restore.dataset.shards as shards

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(shards, "set_attrs", boom)
    with pytest.raises(KeyboardInterrupt):
        write_shard(tmp_path / "s.h5", _data(), {})
    assert list(tmp_path.iterdir()) == []


def test_manifest_lists_checksums_and_detects_changes(tmp_path):
    write_shard(tmp_path / "a.h5", _data(), {})
    write_shard(tmp_path / "b.h5", _data(runs=(2, 3), seed=1), {})
    doc = build_manifest([tmp_path / "a.h5", tmp_path / "b.h5"], tmp_path / "m.json")
    assert doc["pairs"] == 16 and [e["path"] for e in doc["shards"]] == ["a.h5", "b.h5"]
    doc, paths = load_manifest(tmp_path / "m.json")
    with h5py.File(tmp_path / "b.h5", "r+") as f:
        f.attrs["note"] = "touched"
    with pytest.raises(UserError, match=r"b\.h5: shard does not match the SHA-256"):
        load_manifest(tmp_path / "m.json")


# ---- plans -------------------------------------------------------------------------
def test_plans_are_balanced_and_phase_two_uses_least_seen(tmp_path):
    labels = np.array([-1, 1] * 50, dtype=np.int8)
    plan = make_wave(labels, [0, 1, 2], per_class=5, seed=1)
    for r in plan["runs"]:
        assert sorted(labels[r["indices"]].tolist()) == [-1] * 5 + [1] * 5
    counts = np.arange(100)[::-1].copy()  # image 99 is least seen
    p2 = make_wave(labels, [3], per_class=5, seed=1, phase="least_seen", counts=counts, least_seen_n=20)
    assert min(p2["runs"][0]["indices"]) >= 80
    again = make_wave(labels, [0, 1, 2], per_class=5, seed=1)
    assert again == plan


# ---- balanced resampling -----------------------------------------------------------
def _skewed_shard(path, seed=0):
    """Image 0 appears 110 times, images 1..20 three times each."""
    rng = np.random.default_rng(seed)
    n_t = 21
    rows = np.concatenate([np.zeros(110, int), np.repeat(np.arange(1, 21), 3)])
    N = len(rows)
    d = ShardData(
        {"recon": rng.integers(0, 256, (N, 3, 32, 32), dtype=np.uint8), "target_row": rows, "run": np.zeros(N),
         "epoch": np.zeros(N), "candidate": np.zeros(N), "ssim": np.ones(N), "margin": np.ones(N)},
        {"image": rng.integers(0, 256, (n_t, 3, 32, 32), dtype=np.uint8), "aug_label": np.zeros((n_t, 9)),
         "source_index": np.arange(n_t), "run": np.zeros(n_t)},
        {"run": np.array([0]), "seed": np.array([0]), "status": np.array([0]), "mean": np.full((1, 3, 32, 32), 0.5),
         "train_loss": np.zeros(1), "min_margin": np.zeros(1), "stationarity": np.zeros(1), "box": np.zeros(1),
         "lam_penalty": np.zeros(1), "pairs": np.array([N])},
    )
    write_shard(path, d, {})
    return d


def test_sampler_keep_rate_noise_share_and_determinism(tmp_path):
    d = _skewed_shard(tmp_path / "s.h5")
    s = BalancedSampler([tmp_path / "s.h5"], K=11, repeats=200, noise_fraction=0.1, seed=3, window=64)
    assert s.z[0] == 110 and s.z[1] == 3
    kept0, kept_rest, noise, total = 0, 0, 0, 0
    for r in range(200):
        ex = s.repeat_examples(r)
        total += len(ex)
        noise += int((ex < 0).sum())
        kept0 += int((ex[ex >= 0] < 110).sum())
        kept_rest += int((ex >= 110).sum())
    assert kept0 / (200 * 110) == pytest.approx(0.1, abs=0.01)  # K / z = 11 / 110
    assert kept_rest / (200 * 60) == 1.0  # K / z > 1: always kept
    assert noise / total == pytest.approx(0.1, abs=0.01)
    a = [b.recon for _, b in zip(range(5), s.batches(16))]
    s2 = BalancedSampler([tmp_path / "s.h5"], K=11, repeats=200, noise_fraction=0.1, seed=3, window=64)
    b = [b.recon for _, b in zip(range(5), s2.batches(16))]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    # resuming after 2 batches continues the same stream
    c = [b.recon for _, b in zip(range(3), s2.batches(16, start=32))]
    assert all(torch.equal(x, y) for x, y in zip(a[2:], c))


def test_sampler_pairs_and_noise_examples_are_consistent(tmp_path):
    d = _skewed_shard(tmp_path / "s.h5")
    s = BalancedSampler([tmp_path / "s.h5"], K=11, repeats=5, noise_fraction=0.3, seed=0, window=50)
    batch = next(s.batches(200))
    assert batch.recon.shape == (200, 3, 32, 32) and batch.recon.min() >= 0 and batch.recon.max() <= 1
    real = ~batch.noise
    # each real pair's target is the target row stored with it
    recon_u8 = (batch.recon[real] * 255).round().to(torch.uint8).numpy()
    flat = d.pairs["recon"].reshape(len(d.pairs["recon"]), -1)
    for rec, tgt in zip(recon_u8, (batch.target[real] * 255).round().to(torch.uint8).numpy()):
        i = np.nonzero((flat == rec.reshape(-1)).all(1))[0][0]
        assert np.array_equal(tgt, d.targets["image"][d.pairs["target_row"][i]])
    # noise examples: the run mean plus scaled noise, within [0, 1], targets from the run
    assert batch.noise.any()
    nz = batch.recon[batch.noise]
    assert (nz.flatten(1).std(1) > 0.05).all()


def test_sampler_reads_compressed_and_contiguous_shards_identically(tmp_path):
    d = _skewed_shard(tmp_path / "plain.h5")
    write_shard(tmp_path / "gz.h5", d, {}, compression="gzip")
    a = BalancedSampler([tmp_path / "plain.h5"], K=11, repeats=3, noise_fraction=0.2, seed=5, window=40)
    b = BalancedSampler([tmp_path / "gz.h5"], K=11, repeats=3, noise_fraction=0.2, seed=5, window=40)
    for _, x, y in zip(range(5), a.batches(32), b.batches(32)):
        assert torch.equal(x.recon, y.recon) and torch.equal(x.target, y.target) and torch.equal(x.aug_label, y.aug_label)
        assert torch.equal(x.noise, y.noise)


def test_counts_from_shards(tmp_path):
    d = _skewed_shard(tmp_path / "s.h5")
    z = counts_from_shards([tmp_path / "s.h5"], 30)
    assert z[0] == 110 and z[5] == 3 and z[25] == 0
