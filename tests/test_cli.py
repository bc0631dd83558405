"""Every stage's CLI on the tiny preset, in process: the pipeline without Snakemake,
resumption after a kill, the user-facing ``restore`` and one-line errors."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import save_then_die

from recon_restore import methods
from recon_restore.cli import main
from recon_restore.config import load_params
from recon_restore.dataset.shards import read_shard, verify_shard


def run(*args) -> int:
    return main([str(a) for a in args])


run_cli = run


@pytest.fixture
def pipeline(tmp_path, tiny_doc):
    """Run the whole pipeline on the tiny preset; returns the output folder. Restormer's real
    denoising setting runs from a randomly initialised weights file made here; the other two
    settings (no weights file) and BM3D (where not installed) are skipped with their notes."""
    from recon_restore.restorers.restormer import build

    torch.save({"params": build("real").state_dict()}, tmp_path / "real_denoising.pth")
    tiny_doc["presets"]["demo"]["restorers"]["restormer_real"]["weights"] = str(tmp_path / "real_denoising.pth")
    tiny_params = tmp_path / "params.yaml"
    tiny_params.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    P = ["--params", tiny_params]
    o = tmp_path / "out"
    assert run("data", "prepare", *P, "--pool", o / "pool.h5", "--heldout", o / "held.h5") == 0
    assert run("attack", "target", *P, "--heldout", o / "held.h5", "--out", o / "target.pt") == 0
    for b in (0, 1):
        assert run("attack", "runs", *P, "--target", o / "target.pt", "--batch", b, "--out", o / f"runs-{b}.h5") == 0
    assert run("dataset", "wave", *P, "--pool", o / "pool.h5", "--wave", 0, "--out", o / "wave-0.json") == 0
    for j in (0, 1):
        assert run("dataset", "shard", *P, "--pool", o / "pool.h5", "--wave-file", o / "wave-0.json", "--job", j, "--out", o / f"shard-{j}.h5") == 0
    assert run("dataset", "wave", *P, "--pool", o / "pool.h5", "--wave", 1, "--shards", o / "shard-0.h5", o / "shard-1.h5", "--out", o / "wave-1.json") == 0
    assert run("dataset", "shard", *P, "--pool", o / "pool.h5", "--wave-file", o / "wave-1.json", "--job", 2, "--out", o / "shard-2.h5") == 0
    shards = [o / f"shard-{j}.h5" for j in range(3)]
    assert run("dataset", "manifest", *P, "--shards", *shards, "--out", o / "manifest.json") == 0
    assert run("dataset", "coverage", *P, "--pool", o / "pool.h5", "--manifest", o / "manifest.json", "--out-json", o / "coverage.json", "--out-csv", o / "coverage.csv") == 0
    sections = tiny_doc["presets"]["demo"]["restorers"]
    for m in methods.trained(sections):  # EDM, BF-DnCNN and the preset's Noise2Noise variants
        data = ["--pool", o / "pool.h5"] if m.startswith(("n2n_", "n2c_")) else ["--manifest", o / "manifest.json"]
        assert run("restorers", "train", *P, "--method", m, *data, "--out", o / f"{m}.pt", "--history", o / f"{m}.csv") == 0
    assert run("evaluate", "collect", *P, "--target", o / "target.pt", "--runs", o / "runs-0.h5", o / "runs-1.h5", "--out", o / "plain.h5") == 0
    for r in methods.restorers(sections):  # classical (blind), pretrained, trained, and plug-and-play (BF-DnCNN's checkpoint)
        ck = methods.checkpoint_of(r)
        extra = ["--checkpoint", o / f"{ck}.pt"] if ck else []
        assert run("evaluate", "restore", *P, "--restorer", r, "--plain", o / "plain.h5", *extra, "--out", o / f"r-{r}.h5") == 0
    assert run("evaluate", "galleries", *P, "--target", o / "target.pt", "--heldout", o / "held.h5", "--pool", o / "pool.h5", "--out", o / "galleries.h5") == 0
    files = {m: None if methods.restorer_of(m) is None else o / f"r-{methods.restorer_of(m)}.h5" for m in methods.names(sections)}
    for m, f in files.items():
        extra = [] if f is None else ["--restored", f]
        assert run("evaluate", "match", *P, "--method", m, "--target", o / "target.pt", "--plain", o / "plain.h5", "--galleries", o / "galleries.h5", *extra, "--out", o / "match" / f"{m}.h5") == 0
    assert run("report", "build", *P, "--target", o / "target.pt", "--plain", o / "plain.h5", "--restored", *sorted({f for f in files.values() if f}),
               "--matches", *[o / "match" / f"{m}.h5" for m in files], "--coverage", o / "coverage.json", o / "coverage.csv",
               "--out-dir", o / "report") == 0
    return o


def test_pipeline_through_the_cli(pipeline):
    o = pipeline
    metrics = json.loads((o / "report" / "metrics.json").read_text())
    sections = load_params(o.parent / "params.yaml").section("restorers")
    names = methods.names(sections)
    absent = {m: methods.missing(r, sections[methods.section_of(r)]) for m in names if (r := methods.restorer_of(m))}
    absent = {m: why for m, why in absent.items() if why}
    assert set(metrics["methods"]) == set(names) - set(absent) and metrics["skipped"] == absent
    assert {"n2n_gaussian_l2", "n2c_gaussian_l2", "recon2recon_l2"} <= set(metrics["methods"])  # the demo's N2N variants
    assert "restormer_real" in metrics["methods"] and "restormer_deraining" in absent
    summary_md = (o / "report" / "tables" / "summary.md").read_text()
    assert all(f"Not evaluated: {methods.label(m)}: {why}." in summary_md for m, why in absent.items())
    with h5py.File(o / "r-tv.h5") as f:  # the blind choice is recorded with the restorations
        chosen = json.loads(f.attrs["chosen"])
        assert chosen["kwargs"]["weight"] in load_params().section("restorers", "tv")["weight"]
    assert metrics["images"] == 8 and metrics["runs"]["runs_total"] == 3
    per_image = pd.read_csv(o / "report" / "tables" / "per_image.csv")
    assert len(per_image) == 8
    for m in metrics["methods"]:
        assert metrics["methods"][m]["good"] == int((per_image[f"ssim_{m}"] > 0.4).sum())
    summary = (o / "report" / "tables" / "summary.tex").read_text()
    assert r"\begin{tabular}" in summary and "Ours averaged" in summary
    for f in ("fig1_grid", "fig2_sorted", "fig3_scatter", "fig5_halves", "appendix_01"):
        assert (o / "report" / "figures" / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
    curves = pd.read_csv(o / "report" / "curves" / "sorted_ssim.csv")
    c = curves["plain"].to_numpy()
    k = int(np.isfinite(c).sum())
    assert (np.diff(c[:k]) <= 0).all() and np.isnan(c[k:]).all()  # unmatched images last
    assert metrics["methods"]["plain"]["matched"] == k
    for m, v in metrics["methods"].items():  # every count stands beside its null control
        assert v["excess"] == pytest.approx(v["good"] - v["null_mean"]) and v["good_lo"] <= v["good"] <= v["good_hi"]
        assert v["good"] <= v["good_none"] and v["null_min"] <= v["null_mean"] <= v["null_max"]
    assert "Null" in (o / "report" / "tables" / "summary.md").read_text()
    for f in ("fig4_hallucination", "hallucination_roc", "leakage_roc"):
        assert (o / "report" / "figures" / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
    # the plain count, recomputed independently: per-pair SSIM of every reconstruction to
    # every training image, each to its nearest, best per image, > 0.4
    from recon_restore.data.store import read_image_set
    from recon_restore.metrics import ssim

    tgt = torch.load(o / "target.pt", weights_only=True)
    timg = tgt["images"].double() / 255
    with h5py.File(o / "plain.h5") as f:
        recon = torch.from_numpy(f["images"][()]).double()
    s = torch.stack([ssim(recon, timg[j].expand_as(recon)) for j in range(len(timg))], 1)
    near, val = s.argmax(1), s.max(1).values
    best = [val[near == j].max().item() if (near == j).any() else -1.0 for j in range(len(timg))]
    assert metrics["methods"]["plain"]["good"] == sum(b > 0.4 for b in best)
    # the null galleries hold no training image and no pool image (read from the files)
    with h5py.File(o / "galleries.h5") as f:
        gal = f["images"][()].reshape(-1, 3 * 32 * 32)
    pool = read_image_set(o / "pool.h5").images.reshape(-1, 3 * 32 * 32)
    train = tgt["images"].numpy().reshape(-1, 3 * 32 * 32)
    assert not {g.tobytes() for g in gal} & ({p.tobytes() for p in pool} | {t.tobytes() for t in train})
    summ = pd.read_csv(o / "report" / "tables" / "summary.csv")
    assert "spread_auroc" in summ.columns and summ.set_index("method")["spread_auroc"][["tv", "bfdncnn"]].isna().all()
    with h5py.File(o / "plain.h5") as f:
        assert f["images"].shape[1:] == (3, 32, 32) and f["images"][()].min() >= 0 and f["images"][()].max() <= 1
        assert f.attrs["runs_total"] == 3
    for j in range(3):
        verify_shard(o / f"shard-{j}.h5")
    # one run-status type: attack runs files and shards store RunStatus codes
    from recon_restore.status import RunStatus

    with h5py.File(o / "runs-0.h5") as f:
        assert json.loads(f.attrs["status_codes"]) == {"ok": 0, "aborted": 1, "failed": 2} == RunStatus.codes()
        assert set(f["status"][()].tolist()) <= {int(s) for s in RunStatus}
    assert set(read_shard(o / "shard-0.h5").runs["status"].tolist()) <= {int(RunStatus.OK), int(RunStatus.FAILED)}
    cov = json.loads((o / "coverage.json").read_text())
    manifest = json.loads((o / "manifest.json").read_text())
    assert cov["pool_images"] == 80 and cov["pairs"] == manifest["pairs"] and metrics["dataset"]["images_seen"] == cov["images_seen"]
    hist = pd.read_csv(o / "coverage.csv")
    assert hist["images"].sum() == 80 and int(hist["images"].iloc[0]) == 80 - cov["images_seen"]
    assert (o / "report" / "figures" / "coverage.png").exists()
    plan = json.loads((o / "wave-1.json").read_text())
    assert plan["phase"] == "least_seen" and len(plan["runs"]) == 2


def test_killed_shard_job_resumes_to_the_same_shard(pipeline, tmp_path, tiny_doc, monkeypatch):
    from recon_restore.dataset import generate

    o = pipeline
    calls = {"n": 0}

    orig_batch = generate.run_batch

    def dying_batch(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # killed while on its second batch of runs
        return orig_batch(*a, **k)

    tiny_doc["presets"]["demo"]["dataset"]["runs_per_batch"] = 1
    p2 = tmp_path / "p2.yaml"
    p2.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    out = tmp_path / "resumed.h5"
    monkeypatch.setattr(generate, "run_batch", dying_batch)
    with pytest.raises(KeyboardInterrupt):
        run("dataset", "shard", "--params", p2, "--pool", o / "pool.h5", "--wave-file", o / "wave-0.json", "--job", 0, "--out", out)
    assert not out.exists() and len(list((tmp_path / "resumed.h5.parts").glob("*.npz"))) == 1
    monkeypatch.setattr(generate, "run_batch", orig_batch)
    assert run("dataset", "shard", "--params", p2, "--pool", o / "pool.h5", "--wave-file", o / "wave-0.json", "--job", 0, "--out", out) == 0
    assert not (tmp_path / "resumed.h5.parts").exists()
    fresh = tmp_path / "fresh.h5"
    assert run("dataset", "shard", "--params", p2, "--pool", o / "pool.h5", "--wave-file", o / "wave-0.json", "--job", 0, "--out", fresh) == 0
    a, b = read_shard(out), read_shard(fresh)
    for k in a.pairs:
        assert np.array_equal(a.pairs[k], b.pairs[k]), k
    assert np.array_equal(a.targets["image"], b.targets["image"])


@pytest.mark.parametrize("method", ["bfdncnn", "n2n_impulse_l0", "recon2recon_l1"])
def test_killed_restorer_training_resumes_identically(pipeline, tmp_path, tiny_params, monkeypatch, method):
    """BF-DnCNN on the balanced sampler; a Noise2Noise variant whose loss depends on the step
    (annealed L0) on the pool; recon2recon on the shards."""
    from recon_restore.restorers import train as tr

    o = pipeline
    P = ["--params", tiny_params, "--method", method]
    P += ["--pool", o / "pool.h5"] if method.startswith("n2n") else ["--manifest", o / "manifest.json"]
    ref = tmp_path / "ref.pt"
    assert run("restorers", "train", *P, "--out", ref) == 0
    orig = tr._save_state
    monkeypatch.setattr(tr, "_save_state", save_then_die(orig))
    out = tmp_path / "resumed.pt"
    with pytest.raises(KeyboardInterrupt):
        run("restorers", "train", *P, "--out", out)
    assert not out.exists() and (tmp_path / "resumed.pt.train-state").exists()
    monkeypatch.setattr(tr, "_save_state", orig)
    assert run("restorers", "train", *P, "--out", out) == 0
    a = torch.load(ref, weights_only=True)["state_dict"]
    b = torch.load(out, weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_sharded_restoration_and_streamed_matching_equal_one_job(pipeline, tmp_path, tiny_doc):
    """The tiny preset's 3 evaluation runs in 3 restoration shards (one run each), merged, give
    the one-job restorations exactly (diffusion samples seeded per reconstruction), and
    matching them 7 reconstructions at a time gives the one-job match file exactly."""
    o = pipeline
    ev = tiny_doc["presets"]["demo"]["evaluate"]
    ev.update(restore_shard_runs={"edm": 1, "bfdncnn": 1}, match_chunk=7)
    params = tmp_path / "sharded.yaml"
    params.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    P = ["--params", params]
    with h5py.File(o / "plain.h5") as f:
        run = f["run"][()]
    assert len(np.unique(run)) > 1  # the shards are not all empty
    for r in ("edm", "bfdncnn"):
        parts = [tmp_path / f"{r}-part-{j}.h5" for j in range(3)]
        for j, part in enumerate(parts):
            assert run_cli("evaluate", "restore", *P, "--restorer", r, "--plain", o / "plain.h5", "--checkpoint", o / f"{r}.pt",
                           "--shard", j, "--out", part) == 0
            with h5py.File(part) as f:
                assert np.array_equal(f["rows"][()], np.nonzero(run == j)[0])
        merged = tmp_path / f"{r}-merged.h5"
        assert run_cli("evaluate", "merge", *P, "--plain", o / "plain.h5", "--parts", *parts[::-1], "--out", merged) == 0
        with h5py.File(merged) as a, h5py.File(o / f"r-{r}.h5") as b:
            assert sorted(a.keys()) == sorted(b.keys())
            for k in b:
                assert np.array_equal(a[k][()], b[k][()]), (r, k)
        assert run_cli("evaluate", "merge", *P, "--plain", o / "plain.h5", "--parts", *parts[:2], "--out", tmp_path / "x.h5") == 2
        assert not (tmp_path / "x.h5").exists()
    # matching the merged file gives the one-job match file exactly; matching 7 reconstructions at
    # a time gives the same assignments, and scores equal to float32 rounding (GEMM block shapes)
    for m, chunk in (("edm_averaged", 16384), ("plain", 7), ("edm_averaged", 7)):
        ev["match_chunk"] = chunk
        params.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
        extra = [] if m == "plain" else ["--restored", tmp_path / "edm-merged.h5"]
        out = tmp_path / f"{m}-{chunk}.h5"
        assert run_cli("evaluate", "match", *P, "--method", m, "--target", o / "target.pt", "--plain", o / "plain.h5",
                       "--galleries", o / "galleries.h5", *extra, "--out", out) == 0
        with h5py.File(out) as a, h5py.File(o / "match" / f"{m}.h5") as b:
            names = []
            b.visit(names.append)
            for k in (k for k in names if isinstance(b[k], h5py.Dataset)):
                x, y = a[k][()], b[k][()]
                if chunk == 16384 or x.dtype.kind == "i":
                    assert np.array_equal(x, y), (m, chunk, k)
                else:
                    assert np.allclose(x, y, rtol=1e-5, atol=1e-6), (m, chunk, k)


def test_classical_denoisers_are_not_sharded(pipeline, tmp_path, tiny_doc, capsys):
    tiny_doc["presets"]["demo"]["evaluate"]["restore_shard_runs"] = {"bfdncnn": 1}
    params = tmp_path / "sharded.yaml"
    params.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    o = pipeline
    assert run_cli("evaluate", "restore", "--params", params, "--restorer", "tv", "--plain", o / "plain.h5", "--shard", 0,
                   "--out", tmp_path / "tv.h5") == 2
    assert "blind calibration reads every reconstruction" in capsys.readouterr().err
    assert run_cli("evaluate", "restore", "--params", params, "--restorer", "bfdncnn", "--plain", o / "plain.h5",
                   "--checkpoint", o / "bfdncnn.pt", "--shard", 3, "--out", tmp_path / "b.h5") == 2
    assert "expected 0..2" in capsys.readouterr().err


def test_runs_that_all_abort_count_zero_through_every_method(pipeline, tmp_path, tiny_doc):
    """A network on which every evaluation run aborts (a defence that works, or one shard's runs
    at paper scale) leaks nothing to the attack: collect writes a plain file without
    reconstructions, every restorer (classical, trained, diffusion, plug-and-play; one job or a
    shard) writes its empty datasets, every method's match file counts zero good images against
    the null galleries' zero, and the defences table reads that setting as zero leakage."""
    from recon_restore.evaluate.match_file import read_match
    from recon_restore.status import RunStatus

    o = pipeline
    tiny_doc["presets"]["demo"]["evaluate"]["restore_shard_runs"] = {"edm": 1}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    P = ["--params", params]
    runs = []
    for b in (0, 1):  # the pipeline's runs, every one marked aborted at the abort iteration
        runs.append(tmp_path / f"runs-{b}.h5")
        runs[-1].write_bytes((o / f"runs-{b}.h5").read_bytes())
        with h5py.File(runs[-1], "r+") as f:
            f["status"][...] = RunStatus.ABORTED
    plain = tmp_path / "plain.h5"
    assert run("evaluate", "collect", *P, "--target", o / "target.pt", "--runs", *runs, "--out", plain) == 0
    with h5py.File(plain) as f:
        assert f["images"].shape == (0, 3, 32, 32) and len(f["run"]) == 0
        assert (f.attrs["runs_total"], f.attrs["runs_ok"], f.attrs["runs_aborted"]) == (3, 0, 3)
    sections = tiny_doc["presets"]["demo"]["restorers"]
    files = {}
    for r in methods.restorers(sections):
        ck = methods.checkpoint_of(r)
        extra = ["--checkpoint", o / f"{ck}.pt"] if ck else []
        assert run("evaluate", "restore", *P, "--restorer", r, "--plain", plain, *extra, "--out", tmp_path / f"r-{r}.h5") == 0
        with h5py.File(tmp_path / f"r-{r}.h5") as f:
            if "skipped" not in f.attrs:
                assert all(f[m].shape == (0, 3, 32, 32) for m in methods.methods_of(r)), r
                files.update({m: tmp_path / f"r-{r}.h5" for m in methods.methods_of(r)})
    parts = [tmp_path / f"edm-{j}.h5" for j in range(3)]  # the diffusion restorer's shards, all empty, merged
    for j, part in enumerate(parts):
        assert run("evaluate", "restore", *P, "--restorer", "edm", "--plain", plain, "--checkpoint", o / "edm.pt", "--shard", j,
                   "--out", part) == 0
    assert run("evaluate", "merge", *P, "--plain", plain, "--parts", *parts, "--out", tmp_path / "edm-merged.h5") == 0
    with h5py.File(tmp_path / "edm-merged.h5") as f:
        assert all(f[m].shape == (0, 3, 32, 32) for m in methods.methods_of("edm"))
    (tmp_path / "match").mkdir()
    names = methods.names(sections)
    for m in names:
        r = methods.restorer_of(m)
        extra = [] if r is None else ["--restored", tmp_path / f"r-{r}.h5"]
        assert run("evaluate", "match", *P, "--method", m, "--target", o / "target.pt", "--plain", plain, "--galleries",
                   o / "galleries.h5", *extra, "--out", tmp_path / "match" / f"{m}.h5") == 0
        if m in files or m == "plain":
            c = read_match(tmp_path / "match" / f"{m}.h5").counts(0.4, n_boot=20)
            assert (c["good"], c["good_lo"], c["good_hi"], c["null_mean"], c["tpr_1"], c["auroc"]) == (0, 0, 0, 0, 0, 0.5), m
    # the report: every method zero beside its zero null, the run counts saying why
    assert run("report", "build", *P, "--target", o / "target.pt", "--plain", plain, "--restored", *sorted(set(files.values())),
               "--matches", *[tmp_path / "match" / f"{m}.h5" for m in names], "--coverage", o / "coverage.json", o / "coverage.csv",
               "--out-dir", tmp_path / "report") == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["runs"]["runs_ok"] == 0 and metrics["runs"]["runs_aborted"] == 3
    assert set(metrics["methods"]) == {"plain", *files} and all(v["good"] == 0 == v["null_mean"] for v in metrics["methods"].values())
    # the defences table: the undefended network's own matches, and the same network as a setting whose runs all aborted
    out = tmp_path / "table"
    assert run("defences", "table", *P, "--heldout", o / "held.h5", "--target", f"none={o / 'target.pt'}",
               f"dp_sgd-8={o / 'target.pt'}", "--matches", f"none={o / 'match'}", f"dp_sgd-8={tmp_path / 'match'}",
               "--methods", *names, "--out-csv", out / "d.csv", "--out-md", out / "d.md", "--out-fig", out / "d.png") == 0
    rows = pd.read_csv(out / "d.csv").set_index(["setting", "method"])
    assert (rows.loc["dp_sgd-8"].good == 0).all() and (rows.loc["dp_sgd-8"].runs == 0).all()
    assert (rows.loc["none"].runs == 3).all() and rows.loc[("none", "plain"), "good"] == read_match(o / "match" / "plain.h5").counts(0.4, 0)["good"]
    assert "| dp_sgd | epsilon 8 (accounted nan), delta nan | " in (out / "d.md").read_text()


def test_user_restore_command(pipeline, tmp_path, capsys):
    o = pipeline
    imgs = np.random.default_rng(0).random((4, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "mine.npy", imgs)
    assert run("restore", "--checkpoint", o / "edm.pt", "--input", tmp_path / "mine.npy", "--output", tmp_path / "out.npy", "--samples", 2, "--steps", 3) == 0
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (4, 3, 32, 32) and 0 <= out.min() and out.max() <= 1
    assert np.load(tmp_path / "out_std.npy").shape == (4,)
    assert run("restore", "--checkpoint", o / "bfdncnn.pt", "--input", tmp_path / "mine.npy", "--output", tmp_path / "pngs") == 0
    assert len(list((tmp_path / "pngs").glob("*.png"))) == 4
    assert run("restore", "--checkpoint", o / "n2c_gaussian_l2.pt", "--input", tmp_path / "mine.npy", "--output", tmp_path / "n2c.npy") == 0
    assert np.load(tmp_path / "n2c.npy").shape == (4, 3, 32, 32)
    assert run("restore", "--checkpoint", o / "bfdncnn.pt", "--input", tmp_path / "pngs", "--output", tmp_path / "again.h5") == 0
    with h5py.File(tmp_path / "again.h5") as f:
        assert f["restored"].shape == (4, 3, 32, 32)
    # refuses to overwrite
    assert run("restore", "--checkpoint", o / "bfdncnn.pt", "--input", tmp_path / "mine.npy", "--output", tmp_path / "out.npy") == 2
    assert "already exists" in capsys.readouterr().err


def test_errors_are_one_clear_line(tmp_path, tiny_params, capsys):
    code = run("attack", "target", "--params", tiny_params, "--heldout", tmp_path / "nope.h5", "--out", tmp_path / "t.pt")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "nope.h5" in err[0] and "does not exist" in err[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny_params.read_text().replace("good_threshold:", "good_treshold:", 1))
    code = run("params", "validate", "--params", bad)
    err = capsys.readouterr().err
    assert code == 2 and "good_treshold" in err and "did you mean 'good_threshold'" in err
    (tmp_path / "corrupt.h5").write_bytes(b"definitely not hdf5")
    code = run("evaluate", "collect", "--params", tiny_params, "--target", tmp_path / "t.pt", "--runs", tmp_path / "corrupt.h5", "--out", tmp_path / "p.h5")
    assert code == 2 and "t.pt" in capsys.readouterr().err


def test_robustness_commands_on_the_tiny_pipeline(pipeline, tmp_path):
    o = pipeline
    P = ["--params", str(o.parent / "params.yaml")]
    trained = methods.trained(yaml.safe_load((o.parent / "params.yaml").read_text())["presets"]["demo"]["restorers"])
    cfg = load_params(o.parent / "params.yaml", "demo").section("robustness")
    outs, noise = [], []
    common = lambda m, ck: [*P, "--method", m, "--checkpoint", str(o / f"{ck}.pt"), "--target", str(o / "target.pt"),  # noqa: E731
                            "--plain", str(o / "plain.h5"), "--match", str(o / "match" / "plain.h5"), "--heldout", str(o / "held.h5"),
                            "--manifest", str(o / "manifest.json")]
    for m in trained:
        out, nz = tmp_path / f"{m}.csv", tmp_path / f"{m}.noise.json"
        assert run("robustness", "run", *common(m, m), "--out", str(out), "--noise-out", str(nz)) == 0
        t = pd.read_csv(out)
        assert set(t.input) == {"plain", "training"} and set(t.attack) == {"none", "dag", "bounded"}
        assert set(t[t.attack == "bounded"].budget) == set(cfg["bounded"]["budgets"])
        h = json.loads(nz.read_text())
        assert h["method"] == m and sum(h["plain"]["noise"]) > 0 and sum(h["training"]["adversarial"]) > 0
        outs.append(str(out))
        noise.append(str(nz))
    assert run("robustness", "run", *common("bfdncnn", "edm"), "--out", str(tmp_path / "x.csv"),
               "--noise-out", str(tmp_path / "x.json")) == 2  # wrong checkpoint: one error
    assert run(*["robustness", "report", *P, "--inputs", *outs, "--noise", *noise[:-1], "--out-dir", str(tmp_path / "rep")]) == 2
    assert run(*["robustness", "report", *P, "--inputs", *outs, "--noise", *noise, "--out-dir", str(tmp_path / "rep")]) == 0
    summary = pd.read_csv(tmp_path / "rep" / "robustness.csv")
    bounded = summary[summary.attack == "bounded"]
    assert (bounded.psnr_drop >= -1e-9).all() and (bounded.ratio_mean >= 1 - 1e-9).all()
    assert (summary[summary.attack == "none"].psnr_drop == 0).all()
    drops = json.loads((tmp_path / "rep" / "robustness.json").read_text())
    assert set(drops) == {f"{m}/{i}/{a}" for m in trained for i in ("plain", "training") for a in ("dag", "bounded")}
    for k in ("psnr_ratio", "psnr", "noise"):
        assert (tmp_path / "rep" / f"robustness_{k}.png").read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "rep" / "robustness.md").read_text()
    assert "| BF-DnCNN | plain | L-inf 2/255 |" in md and "| BF-DnCNN | plain | paper 004 (DAG) |" in md


def test_adaptation_through_the_cli(pipeline, tmp_path):
    """Paper 001's stage 2 as the workflow runs it: an adaptation network on pool images (none
    of them the evaluated network's), its evaluation-setting runs, the adapted BF-DnCNN, and
    its restorations matched like any method."""
    o = pipeline
    P = ["--params", o.parent / "params.yaml"]
    a = tmp_path / "adapt"
    assert run("attack", "target", *P, "--heldout", o / "pool.h5", "--out", a / "target.pt") == 0
    from recon_restore.data.store import read_image_set

    ta, te = (torch.load(p, weights_only=True)["images"].numpy() for p in (a / "target.pt", o / "target.pt"))
    pool = {im.tobytes() for im in read_image_set(o / "pool.h5").images}
    assert {im.tobytes() for im in ta} <= pool and not {im.tobytes() for im in ta} & {im.tobytes() for im in te}
    for b in (0, 1):
        assert run("attack", "runs", *P, "--target", a / "target.pt", "--batch", b, "--out", a / f"runs-{b}.h5") == 0
    assert run("evaluate", "collect", *P, "--target", a / "target.pt", "--runs", a / "runs-0.h5", a / "runs-1.h5", "--out", a / "plain.h5") == 0
    common = ["--method", "bfdncnn_adapted", "--checkpoint", o / "bfdncnn.pt", "--reconstructions", a / "plain.h5", "--pool", o / "pool.h5",
              "--evaluation-target", o / "target.pt"]
    # the evaluated network itself as the adaptation network: refused, nothing written
    assert run("restorers", "adapt", *P, *common, "--adaptation-target", o / "target.pt", "--out", a / "bad.pt") == 2
    assert not (a / "bad.pt").exists()
    assert run("restorers", "adapt", *P, *common[:2], "--checkpoint", o / "edm.pt", *common[4:], "--adaptation-target", a / "target.pt",
               "--out", a / "bad.pt") == 2  # G0 must be BF-DnCNN
    assert run("restorers", "adapt", *P, *common, "--adaptation-target", a / "target.pt", "--out", a / "bfdncnn_adapted.pt",
               "--history", a / "h.csv") == 0
    ck = torch.load(a / "bfdncnn_adapted.pt", weights_only=True)
    assert ck["kind"] == methods.restorer_class("bfdncnn").network_kind and ck["provenance"]["method"] == "bfdncnn_adapted"
    assert pd.read_csv(a / "h.csv").fidelity.iloc[0] >= 0
    assert run("evaluate", "restore", *P, "--restorer", "bfdncnn_adapted", "--plain", o / "plain.h5", "--checkpoint", a / "bfdncnn_adapted.pt",
               "--out", a / "r.h5") == 0
    assert run("evaluate", "restore", *P, "--restorer", "bfdncnn", "--plain", o / "plain.h5", "--checkpoint", a / "bfdncnn_adapted.pt",
               "--out", a / "r2.h5") == 2  # an adapted checkpoint is not the stage-1 restorer
    assert run("evaluate", "match", *P, "--method", "bfdncnn_adapted", "--target", o / "target.pt", "--plain", o / "plain.h5",
               "--galleries", o / "galleries.h5", "--restored", a / "r.h5", "--out", a / "m.h5") == 0


def test_a_curve_setting_replaces_steps_and_seed_and_the_table_counts_it(pipeline, tmp_path, tiny_doc, tiny_params):
    """The learning curves' commands (run by the evaluate_curve rules): `restorers train --steps
    --seed` at the preset's own values reproduces the pipeline's BF-DnCNN exactly, another
    length or seed does not; `evaluate curve` tabulates plain's and every setting's counts from
    their match files; a malformed setting or a missing manifest is one error."""
    from recon_restore.evaluate.match_file import read_match
    from recon_restore.restorers import checkpoint

    o, out = pipeline, tmp_path / "curve"
    seed, steps = tiny_doc["presets"]["demo"]["seed"], tiny_doc["presets"]["demo"]["restorers"]["bfdncnn"]["train"]["steps"]
    P = ["--params", tiny_params]

    def train(n, s):
        ck = out / f"{n}-s{s}.pt"
        assert run("restorers", "train", *P, "--method", "bfdncnn", "--manifest", o / "manifest.json", "--steps", n, "--seed", s,
                   "--out", ck) == 0
        return checkpoint.load(ck)[1].state_dict()

    same, want = train(steps, seed), checkpoint.load(o / "bfdncnn.pt")[1].state_dict()
    assert all(torch.equal(same[k], want[k]) for k in want)
    for n, s in ((2, seed), (steps, seed + 1)):
        other = train(n, s)
        assert not all(torch.equal(other[k], want[k]) for k in want), (n, s)
    assert run("evaluate", "restore", *P, "--method", "bfdncnn", "--plain", o / "plain.h5", "--checkpoint", out / f"2-s{seed}.pt",
               "--seed", seed, "--out", out / "r.h5") == 0
    assert run("evaluate", "match", *P, "--method", "bfdncnn", "--target", o / "target.pt", "--plain", o / "plain.h5",
               "--galleries", o / "galleries.h5", "--restored", out / "r.h5", "--out", out / "m.h5") == 0
    short, full = f"all:2:{seed}:bfdncnn={out / 'm.h5'}", f"all:{steps}:{seed}:bfdncnn={o / 'match' / 'bfdncnn.h5'}"
    args = ["evaluate", "curve", *P, "--plain-match", o / "match" / "plain.h5", "--manifest", f"all={o / 'manifest.json'}",
            "--match", short, full, "--out-csv", out / "curve.csv", "--out-md", out / "curve.md"]
    assert run(*args) == 0
    rows = pd.read_csv(out / "curve.csv")
    assert list(rows["method"]) == ["plain", "bfdncnn", "bfdncnn"] and list(rows["steps"]) == [0, 2, steps]
    for i, f in ((0, o / "match" / "plain.h5"), (1, out / "m.h5"), (2, o / "match" / "bfdncnn.h5")):
        c = read_match(f).counts(0.4, n_boot=0)
        assert rows["good"][i] == c["good"] and rows["null"][i] == pytest.approx(c["null_mean"], abs=0.01)
    assert rows["pairs"][1] == json.loads((o / "manifest.json").read_text())["pairs"]
    assert "| all |" in (out / "curve.md").read_text()
    assert run(*args) == 2                                             # written outputs are kept
    bad = [*args[:-4], "--out-csv", out / "c2.csv", "--out-md", out / "c2.md"]
    assert run(*[f"all:2:bfdncnn={out / 'm.h5'}" if a == short else a for a in bad]) == 2
    assert run(*[f"other={o / 'manifest.json'}" if a == f"all={o / 'manifest.json'}" else a for a in bad]) == 2
    assert not (out / "c2.csv").exists()


def test_a_shorter_training_keeps_the_shape_of_its_schedule():
    from recon_restore.restorers.recipes import with_steps

    t = {"steps": 40000, "halve_after": 25000, "halve_every": 5000, "lr": 1e-3}
    assert with_steps(t, 4000) == dict(t, steps=4000, halve_after=2500, halve_every=500)
    assert with_steps({"steps": 100, "lr": 1.0}, 10) == {"steps": 10, "lr": 1.0}
    assert with_steps(t, 1)["halve_every"] == 1

