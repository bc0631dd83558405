"""Bad input never crashes and never loses work; resumable state never mixes settings.

Every bad input ends in exit status 2 with one line naming the offending file, key or
value, and leaves what was already written unchanged."""

import numpy as np
import pytest
import torch
import yaml

from conftest import save_then_die

from recon_restore.cli import main
from recon_restore.restorers import checkpoint
from recon_restore.restorers.bfdncnn import BFDnCNN
from recon_restore.restorers.edm import EDMPrecond

SMALL_EDM = dict(in_channels=6, out_channels=3, resolution=32, model_channels=8, channel_mult=[1, 2], num_blocks=1,
                 attn_resolutions=[], dropout=0.0, augment_dim=9, channel_mult_emb=4, channel_mult_noise=1)


def run(*args) -> int:
    return main([str(a) for a in args])


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if not line[:4].isdigit()]  # drop log lines
    assert len(err) == 1 and err[0].startswith("recon-restore: error:"), err
    return err[0]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    torch.manual_seed(0)
    cfg = dict(depth=3, channels=8, image_channels=3)
    checkpoint.save(d / "bf.pt", "bfdncnn", cfg, BFDnCNN(**cfg).state_dict(), {})
    checkpoint.save(d / "edm.pt", "edm", {"network": SMALL_EDM, "sigma_data": 0.5}, EDMPrecond(SMALL_EDM, 0.5).state_dict(), {})
    return d


@pytest.fixture
def images(tmp_path):
    x = np.random.default_rng(0).random((3, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    return tmp_path / "in.npy"


# ---- restore: numeric options are range-checked where they are parsed ----------------

@pytest.mark.parametrize("opt,val", [("--batch", -1), ("--batch", 0), ("--samples", 0), ("--steps", -3), ("--batch", "two")])
def test_restore_rejects_out_of_range_numbers(ckpts, images, tmp_path, capsys, opt, val):
    code = run("restore", "--checkpoint", ckpts / "bf.pt", "--input", images, "--output", tmp_path / "o.npy", opt, val)
    line = one_error_line(capsys)
    assert code == 2 and opt in line and str(val) in line
    assert not (tmp_path / "o.npy").exists()


def test_restore_batch_gives_the_same_result_whatever_its_size(ckpts, images, tmp_path):
    assert run("restore", "--checkpoint", ckpts / "bf.pt", "--input", images, "--output", tmp_path / "a.npy", "--batch", 1) == 0
    assert run("restore", "--checkpoint", ckpts / "bf.pt", "--input", images, "--output", tmp_path / "b.npy", "--batch", 256) == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert np.allclose(a, b, atol=1e-6) and not np.allclose(a, np.load(images), atol=1e-3)


# ---- restore: unreadable inputs -------------------------------------------------------

def _bad_inputs(tmp_path):
    from skimage.io import imsave

    cases = {}
    np.save(tmp_path / "empty.npy", np.zeros((0, 3, 32, 32), np.float32))
    cases["empty"] = (tmp_path / "empty.npy", "no images")
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((2, 3, 32, 32), np.float32))
    (tmp_path / "trunc.npy").write_bytes(good.read_bytes()[:100])
    cases["truncated"] = (tmp_path / "trunc.npy", "trunc.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    cases["object"] = (tmp_path / "obj.npy", "not a numeric")
    nan = np.full((1, 3, 32, 32), 0.5, np.float32)
    nan[0, 0, 0, :4] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    cases["nan"] = (tmp_path / "nan.npy", "4 pixels are NaN")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    imsave(mixed / "a.png", np.zeros((32, 32, 3), np.uint8), check_contrast=False)
    imsave(mixed / "b.png", np.zeros((16, 16, 3), np.uint8), check_contrast=False)
    cases["mixed sizes"] = (mixed, "b.png")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    cases["corrupt png"] = (corrupt, "x.png")
    np.save(tmp_path / "range.npy", np.full((1, 3, 32, 32), 2.0, np.float32))
    cases["range"] = (tmp_path / "range.npy", "in [0, 1]")
    np.save(tmp_path / "shape.npy", np.zeros((1, 3, 28, 28), np.float32))
    cases["shape"] = (tmp_path / "shape.npy", "(N, 3, 32, 32)")
    return cases


def test_restore_names_every_unreadable_input(ckpts, tmp_path, capsys):
    for what, (path, expect) in _bad_inputs(tmp_path).items():
        code = run("restore", "--checkpoint", ckpts / "bf.pt", "--input", path, "--output", tmp_path / f"o-{what}.npy")
        line = one_error_line(capsys)
        assert code == 2 and expect in line, (what, line)
        assert not (tmp_path / f"o-{what}.npy").exists()


def test_restore_refuses_an_unknown_output_type(ckpts, images, tmp_path, capsys):
    assert run("restore", "--checkpoint", ckpts / "bf.pt", "--input", images, "--output", tmp_path / "restored.txt") == 2
    assert "'.txt'" in one_error_line(capsys) and not (tmp_path / "restored.txt").exists()


def test_restore_checks_every_output_before_sampling(ckpts, images, tmp_path, capsys, monkeypatch):
    from recon_restore.restorers import restore as rs

    (tmp_path / "o_std.npy").write_bytes(b"kept")
    monkeypatch.setattr(rs, "restore_edm", lambda *a, **k: pytest.fail("sampled although an output exists"))
    code = run("restore", "--checkpoint", ckpts / "edm.pt", "--input", images, "--output", tmp_path / "o.npy", "--samples", 2, "--steps", 2)
    assert code == 2 and "o_std.npy" in one_error_line(capsys)
    assert not (tmp_path / "o.npy").exists() and (tmp_path / "o_std.npy").read_bytes() == b"kept"


# ---- params validate: cross-field rules -----------------------------------------------

CROSS = [
    (("attack", "reconstruct", "snapshots"), [25, 50, 5000], "outside 1..iterations"),
    (("attack", "reconstruct", "snapshots"), [50, 25], "sorted"),
    (("evaluate", "reconstruct", "snapshots"), [1000, 1000], "sorted and without repeats"),
    (("evaluate", "runs_per_batch"), 4, "more than runs_per_job"),
    (("dataset", "runs_per_batch"), 9, "more than runs_per_job"),
    (("evaluate", "reconstruct", "abort", "at"), 5000, "outside 1..iterations"),
    (("dataset", "wave_runs"), 12, "not a multiple of runs_per_job"),
]


@pytest.mark.parametrize("keys,value,expect", CROSS)
def test_params_validate_checks_cross_field_rules(tmp_path, params_doc, capsys, keys, value, expect):
    import copy

    doc = copy.deepcopy(params_doc)
    node = doc["presets"]["demo"]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(doc))
    assert run("params", "validate", "--params", p) == 2
    line = one_error_line(capsys)
    assert ".".join(("presets", "demo") + keys) in line and expect in line


def test_random_malformed_inputs_never_raise_a_traceback(ckpts, tmp_path, params_doc, capsys):
    """A seeded generator of malformed inputs for `restore` and `params validate`: each ends
    in exit 2 with one error line, or succeeds with a valid output. Never a traceback."""
    import copy

    rng = np.random.default_rng(12345)
    dtypes = [np.uint8, np.float32, np.float64, np.int16, np.bool_, np.complex64]
    for i in range(40):
        shape = tuple(int(s) for s in rng.choice([0, 1, 2, 3, 16, 32], size=int(rng.integers(1, 6))))
        dt = dtypes[rng.integers(len(dtypes))]
        arr = (rng.normal(0.5, 1.0, shape) * (255 if dt == np.uint8 else 1)).astype(dt) if np.prod(shape) < 1e6 else np.zeros(1)
        if rng.random() < 0.3 and arr.size:
            arr.flat[0] = np.nan if np.issubdtype(arr.dtype, np.floating) else arr.flat[0]
        f = tmp_path / f"m{i}.npy"
        np.save(f, arr)
        out = tmp_path / f"r{i}.npy"
        code = run("restore", "--checkpoint", ckpts / "bf.pt", "--input", f, "--output", out)
        if code == 0:
            r = np.load(out)
            assert r.ndim == 4 and r.shape[1:] == (3, 32, 32) and np.isfinite(r).all()
            capsys.readouterr()
        else:
            assert code == 2
            one_error_line(capsys)
    leaves = []

    def walk(node, path):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, path + (k,))
            else:
                leaves.append(path + (k,))

    walk(params_doc["presets"]["demo"], ())
    junk = [-1, 0, 10**9, "x", None, [], {}, 1.5, [3, 2, 1], True]
    for i in range(60):
        doc = copy.deepcopy(params_doc)
        keys = leaves[rng.integers(len(leaves))]
        node = doc["presets"]["demo"]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = junk[rng.integers(len(junk))]
        p = tmp_path / f"p{i}.yaml"
        p.write_text(yaml.safe_dump(doc))
        code = run("params", "validate", "--params", p)
        if code == 2:
            one_error_line(capsys)
        else:
            assert code == 0
            capsys.readouterr()


# ---- resumable state never mixes settings -----------------------------------------------

def test_run_resumable_discards_parts_of_other_settings(tmp_path, caplog):
    from recon_restore.io import run_resumable

    calls = []

    def job(v):
        return lambda: calls.append(v) or v

    save = lambda p, d: p.write_text(str(d))  # noqa: E731
    load = lambda p: int(p.read_text())  # noqa: E731
    parts = tmp_path / "x.parts"
    assert run_resumable(parts, [("a", job(1)), ("b", job(2))], save, load, "params A code C") == [1, 2]
    (parts / "b").unlink()  # killed before the second part
    assert run_resumable(parts, [("a", job(10)), ("b", job(20))], save, load, "params A code C") == [1, 20]  # resumed
    caplog.clear()
    assert run_resumable(parts, [("a", job(100)), ("b", job(200))], save, load, "params B code C") == [100, 200]  # discarded
    assert "discarding partial results made with other settings" in caplog.text
    assert (parts / "FINGERPRINT").read_text().strip() == "params B code C"


def test_restorer_training_state_of_other_settings_is_not_resumed(tmp_path, tiny_params, tiny_doc, capsys, monkeypatch):
    """Kill training, change the learning rate, rerun: the old state is refused with a
    message saying how to proceed (deleting it could lose hours), never silently mixed."""
    from recon_restore.restorers import train as tr

    P = ["--params", tiny_params]
    o = tmp_path
    assert run("data", "prepare", *P, "--pool", o / "pool.h5", "--heldout", o / "held.h5") == 0
    assert run("dataset", "wave", *P, "--pool", o / "pool.h5", "--wave", 0, "--out", o / "w.json") == 0
    assert run("dataset", "shard", *P, "--pool", o / "pool.h5", "--wave-file", o / "w.json", "--job", 0, "--out", o / "s.h5") == 0
    assert run("dataset", "manifest", *P, "--shards", o / "s.h5", "--out", o / "m.json") == 0
    orig = tr._save_state
    monkeypatch.setattr(tr, "_save_state", save_then_die(orig))
    with pytest.raises(KeyboardInterrupt):
        run("restorers", "train", *P, "--method", "bfdncnn", "--manifest", o / "m.json", "--out", o / "bf.pt")
    monkeypatch.setattr(tr, "_save_state", orig)
    state = o / "bf.pt.train-state"
    before = state.read_bytes()
    tiny_doc["presets"]["demo"]["restorers"]["bfdncnn"]["train"]["lr"] = 5e-4
    p2 = o / "p2.yaml"
    p2.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    capsys.readouterr()
    assert run("restorers", "train", "--params", p2, "--method", "bfdncnn", "--manifest", o / "m.json", "--out", o / "bf.pt") == 2
    line = one_error_line(capsys)
    assert "bf.pt.train-state" in line and "other settings" in line and "delete it" in line
    assert state.read_bytes() == before and not (o / "bf.pt").exists()
    # same settings: resumes and finishes
    assert run("restorers", "train", *P, "--method", "bfdncnn", "--manifest", o / "m.json", "--out", o / "bf.pt") == 0


def test_shard_and_attack_parts_of_other_settings_are_discarded(tmp_path, tiny_params, tiny_doc, caplog):
    P = ["--params", tiny_params]
    o = tmp_path
    assert run("data", "prepare", *P, "--pool", o / "pool.h5", "--heldout", o / "held.h5") == 0
    assert run("dataset", "wave", *P, "--pool", o / "pool.h5", "--wave", 0, "--out", o / "w.json") == 0
    assert run("attack", "target", *P, "--heldout", o / "held.h5", "--out", o / "t.pt") == 0
    tiny_doc["presets"]["demo"]["attack"]["reconstruct"]["alpha"] = 7.0
    tiny_doc["presets"]["demo"]["evaluate"]["reconstruct"]["lambda_lr"] = 3e-4
    p2 = o / "p2.yaml"
    p2.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    for out, cmd in ((o / "s.h5", ["dataset", "shard", "--pool", o / "pool.h5", "--wave-file", o / "w.json", "--job", 0]),
                     (o / "r.h5", ["attack", "runs", "--target", o / "t.pt", "--batch", 0])):
        parts = out.with_name(out.name + ".parts")
        parts.mkdir()
        (parts / "FINGERPRINT").write_text("params old code old\n")
        stale = parts / ("runs-00000000-00000001.npz" if "shard" in cmd else "runs-000000-000001.pt")
        stale.write_bytes(b"left by a run with other settings")
        caplog.clear()
        assert run(*cmd, "--params", p2, "--out", out) == 0
        assert "discarding partial results" in caplog.text and out.exists() and not parts.exists()
        fresh = out.with_name("fresh-" + out.name)
        assert run(*cmd, "--params", p2, "--out", fresh) == 0
        import h5py

        with h5py.File(out) as a, h5py.File(fresh) as b:
            names = []
            a.visit(names.append)
            for k in names:
                if isinstance(a[k], h5py.Dataset):
                    assert np.array_equal(a[k][()], b[k][()], equal_nan=a[k].dtype.kind == "f"), k
