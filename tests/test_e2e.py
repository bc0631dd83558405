"""The demo workflow end to end in a temporary copy of the repository (slow: ~11 minutes
on 2 cores), then `dvc repro` on the same copy: it reproduces the same artifacts without
recomputing them, and `dvc metrics show` reads the metrics."""

import json
import subprocess

import h5py
import pandas as pd
import pytest

from conftest import BIN, ENV

from recon_restore import methods


@pytest.mark.slow
def test_demo_workflow_end_to_end(demo_run):
    out = demo_run / "results" / "demo"
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    print("demo good reconstructions:", {m: v["good"] for m, v in metrics["methods"].items()})
    assert metrics["methods"]["plain"]["good"] >= 1, "the demo must produce at least one good plain reconstruction"
    from recon_restore.config import load_params

    names = methods.names(load_params(demo_run / "params.yaml").section("restorers"))
    assert set(metrics["methods"]) | set(metrics["skipped"]) == set(names)
    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert manifest["pairs"] > 0 and len(manifest["shards"]) == 2
    for f in ("edm.pt", "bfdncnn.pt", "n2n_gaussian_l2.pt", "n2c_gaussian_l2.pt", "recon2recon_l2.pt"):
        assert (out / "restorers" / f).stat().st_size > 0
    assert (out / "adapt" / "bfdncnn_adapted.pt").stat().st_size > 0  # paper 001's adaptation runs in the demo
    rob = pd.read_csv(out / "report" / "robustness" / "robustness.csv")  # and the attacks on every trained restorer (paper 004)
    assert set(rob.method) == set(methods.trained(load_params(demo_run / "params.yaml").section("restorers")))
    summary = pd.read_csv(out / "report" / "tables" / "summary.csv")
    assert list(summary["method"]) == [m for m in names if m not in metrics["skipped"]]
    for c in ("good", "good_lo", "good_hi", "good_none", "null_mean", "null_min", "null_max", "excess", "mean_psnr",
              "auroc", "auroc_lo", "auroc_hi", "tpr_1", "tpr_1_lo", "tpr_1_hi", "tpr_5", "tpr_5_lo", "tpr_5_hi"):
        assert summary[c].notna().all(), c
    assert {"auroc", "tpr_1", "tpr_5", "tpr_1_lo", "tpr_5_hi"} <= set(metrics["methods"]["plain"])  # ROC-calibrated counts
    # the demo measures the attack, not chance: plain's null count is at most a fifth of its good count
    plain = summary.set_index("method").loc["plain"]
    assert plain["null_mean"] <= plain["good"] / 5, plain.to_dict()
    # the plain count, recomputed independently from evaluate/plain.h5 and the training images
    import torch

    from recon_restore.metrics import ssim

    tgt = torch.load(out / "attack" / "target.pt", weights_only=True)
    timg = tgt["images"].double() / 255
    with h5py.File(out / "evaluate" / "plain.h5") as f:
        recon = torch.from_numpy(f["images"][()]).double()
    s = torch.stack([ssim(recon, timg[j].expand_as(recon)) for j in range(len(timg))], 1)
    near, val = s.argmax(1), s.max(1).values
    best = [val[near == j].max().item() if (near == j).any() else -1.0 for j in range(len(timg))]
    assert int(plain["good"]) == sum(b > 0.4 for b in best)
    for f in ("fig1_grid", "fig2_sorted", "fig3_scatter", "fig4_hallucination", "fig5_halves", "hallucination_roc", "leakage_roc"):
        assert (out / "report" / "figures" / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
    with h5py.File(out / "evaluate" / "plain.h5") as f:
        assert f.attrs["runs_ok"] + f.attrs["runs_aborted"] + f.attrs["runs_failed"] == 6
    assert not list(out.rglob("*.parts")) and not list(out.rglob("*.train-state")) and not list(out.rglob(".*.tmp-*"))
    # the wrong-release control (part of the demo): the adaptation network's reconstructions scored against the
    # released network's training images, beside the demo's own counts
    from recon_restore.evaluate.match_file import read_match

    wrong = pd.read_csv(out / "evaluate" / "wrong_release" / "wrong_release.csv").set_index("method")
    assert {"plain", "bfdncnn", "edm_single", "edm_averaged"} == set(wrong.index)
    for m, r in wrong.iterrows():
        assert r["same_good"] == summary.set_index("method").loc[m, "good"]
        w = read_match(out / "evaluate" / "wrong_release" / "match" / f"{m}.h5")
        assert r["cross_good"] == w.counts(0.4, n_boot=0)["good"]
        with h5py.File(out / "adapt" / "plain.h5") as f:
            assert len(w.run) == len(f["images"])  # every reconstruction of the wrong release was matched
    print((out / "evaluate" / "wrong_release" / "wrong_release.md").read_text())


@pytest.mark.slow
def test_dvc_repro_reproduces_without_recomputing(demo_run):
    out = demo_run / "results" / "demo"
    st = subprocess.run([str(BIN / "dvc"), "status"], cwd=demo_run, env=ENV, capture_output=True, text=True)
    assert "Data and pipelines are up to date" in st.stdout, "after `make demo`, DVC must know the outputs are current: " + st.stdout
    before = {f: f.stat().st_mtime for f in out.rglob("*") if f.is_file() and "logs" not in f.parts}
    d = subprocess.run([str(BIN / "dvc"), "repro"], cwd=demo_run, env=ENV, capture_output=True, text=True)
    assert d.returncode == 0, d.stdout[-3000:] + d.stderr[-3000:]
    assert (demo_run / "dvc.lock").exists()
    after = {f: f.stat().st_mtime for f in out.rglob("*") if f.is_file() and "logs" not in f.parts}
    assert after == before, "dvc repro recomputed or deleted Snakemake outputs"
    m = subprocess.run([str(BIN / "dvc"), "metrics", "show", "--json"], cwd=demo_run, env=ENV, capture_output=True, text=True)
    assert m.returncode == 0 and '"good"' in m.stdout
    st = subprocess.run([str(BIN / "dvc"), "status"], cwd=demo_run, env=ENV, capture_output=True, text=True)
    assert "Data and pipelines are up to date" in st.stdout, st.stdout


@pytest.mark.slow
def test_snakemake_report_holds_every_figure_and_table(demo_run):
    p = subprocess.run([str(BIN / "snakemake"), "--report", "report.html", "--workflow-profile", "none"], cwd=demo_run, env=ENV,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    html = (demo_run / "report.html").read_text(errors="replace")
    for name in ("fig1_grid", "fig2_sorted", "fig3_scatter", "fig4_hallucination", "fig5_halves", "hallucination_roc",
                 "coverage", "appendix_01", "summary.md", "per_image.csv"):
        assert name in html, name


@pytest.mark.slow
def test_learning_curves_run_as_workflow_rules(demo_run, tmp_path):
    """`evaluate.curve` on a copy of the finished demo: Snakemake trains, restores and matches
    each (dataset, steps, seed) setting as its own job, writes the table (plain's row equals
    the demo's own count), and a second run finds nothing to do."""
    import shutil

    import yaml

    from recon_restore.evaluate.match_file import read_match

    work = tmp_path / "repo"
    shutil.copytree(demo_run, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    doc = yaml.safe_load((work / "params.yaml").read_text())
    doc["presets"]["demo"]["evaluate"]["curve"].update(enabled=True, fractions=[0.5, 1.0], steps=[5, 20], seeds=[2024])
    (work / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    target = "results/demo/evaluate/curve/curve.csv"
    sm = [str(BIN / "snakemake"), "--cores", "2", "--workflow-profile", "none"]
    p = subprocess.run([*sm, target], cwd=work, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    stats = p.stderr.split("Job stats:")[1].split("\n\n")[0].splitlines()   # the table, up to its blank line
    jobs = {w[0]: int(w[1]) for w in map(str.split, stats) if len(w) == 2 and w[1].isdigit() and w[0] != "total"}
    assert jobs == {
        "evaluate_curve_manifest": 2, "evaluate_curve_train": 4, "evaluate_curve_restore": 4, "evaluate_curve_match": 4,
        "evaluate_curve": 1}, jobs   # nothing of the finished demo reran
    rows = pd.read_csv(work / target)
    assert len(rows) == 5 and set(rows["steps"][1:]) == {5, 20} and rows["pairs"][1] < rows["pairs"][3]
    plain = read_match(work / "results/demo/evaluate/match/plain.h5").counts(0.4, n_boot=0)
    assert rows["good"][0] == plain["good"]
    p = subprocess.run([*sm, target, "-n"], cwd=work, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0 and "Nothing to be done" in p.stdout + p.stderr


@pytest.mark.slow
def test_cross_attack_study_runs_as_workflow_rules(demo_run, tmp_path):
    """`evaluate.cross_attack` on a copy of the finished demo: the held-out images attacked with
    the multiclass attack (the demo's two classes), every method's restorations and match files
    with their own null galleries, and the table beside the demo's own counts; nothing of the
    demo reruns."""
    import shutil

    import yaml

    from recon_restore.evaluate.match_file import read_match

    work = tmp_path / "repo"
    shutil.copytree(demo_run, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    doc = yaml.safe_load((work / "params.yaml").read_text())
    doc["presets"]["demo"]["evaluate"]["cross_attack"] = {"enabled": True, "method": "kkt_multiclass"}
    (work / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    target = "results/demo/evaluate/cross/kkt_multiclass/cross.csv"
    sm = [str(BIN / "snakemake"), "--cores", "2", "--workflow-profile", "none"]
    p = subprocess.run([*sm, target], cwd=work, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    stats = p.stderr.split("Job stats:")[1].split("\n\n")[0].splitlines()
    jobs = {w[0]: int(w[1]) for w in map(str.split, stats) if len(w) == 2 and w[1].isdigit() and w[0] != "total"}
    assert set(jobs) == {"evaluate_cross_target", "evaluate_cross_runs", "evaluate_cross_collect", "evaluate_cross_galleries",
                         "evaluate_cross_restore", "evaluate_cross_match", "evaluate_cross"}, jobs  # the demo's jobs stay done
    rows = pd.read_csv(work / target).set_index("method")
    for m, r in rows.iterrows():
        same = read_match(work / f"results/demo/evaluate/match/{m}.h5").counts(0.4, n_boot=0)
        assert r["same_good"] == same["good"]  # the demo's own counts, unchanged
        cross = read_match(work / f"results/demo/evaluate/cross/kkt_multiclass/match/{m}.h5").counts(0.4, n_boot=0)
        assert r["cross_good"] == cross["good"] and abs(r["cross_null"] - cross["null_mean"]) < 0.01
    assert {"plain", "bfdncnn", "edm_averaged"} <= set(rows.index)
    print((work / target.replace(".csv", ".md")).read_text())


@pytest.mark.slow
def test_defences_study_runs_as_workflow_rules(demo_run, tmp_path):
    """`snakemake defences_all` on a copy of the finished demo, with one weight decay, one
    training-length and one DP-SGD setting and BF-DnCNN: per setting a network on the demo's
    training images, its runs, restorations and matches against the demo's null galleries; the
    table's undefended row is the demo's own counts, every other row its setting's match files
    (DP-SGD's runs may all abort: then its plain file is empty and every count zero); nothing of
    the demo reruns."""
    import shutil

    import torch
    import yaml

    from recon_restore.evaluate.match_file import read_match

    work = tmp_path / "repo"
    shutil.copytree(demo_run, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
    doc = yaml.safe_load((work / "params.yaml").read_text())
    doc["presets"]["demo"]["defences"] = {"weight_decay": [1.0e-3], "length": [0.5], "dp_sgd": {"epsilon": [8.0], "batch": 40, "epochs": 20},
                                          "minibatch": [],  # a preset merges with its base key by key
                                          "restorers": ["bfdncnn"]}
    (work / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    sm = [str(BIN / "snakemake"), "--cores", "2", "--workflow-profile", "none"]
    p = subprocess.run([*sm, "defences_all"], cwd=work, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    stats = p.stderr.split("Job stats:")[1].split("\n\n")[0].splitlines()
    jobs = {w[0]: int(w[1]) for w in map(str.split, stats) if len(w) == 2 and w[1].isdigit() and w[0] != "total"}
    assert set(jobs) == {"defences_target", "defences_runs", "defences_collect", "defences_restore", "defences_match",
                         "defences_table", "defences_all"}, jobs  # the demo's jobs stay done
    assert jobs["defences_target"] == 3 and jobs["defences_restore"] == 3 and jobs["defences_match"] == 6
    out = work / "results/demo/defences"
    rows = pd.read_csv(out / "defences.csv")
    assert list(rows.setting.unique()) == ["none", "weight_decay-0.001", "length-0.5", "dp_sgd-8"]
    assert set(rows.method) == {"plain", "bfdncnn"}
    for r in rows.itertuples():
        folder = work / "results/demo/evaluate/match" if r.setting == "none" else out / r.setting / "match"
        d = read_match(folder / f"{r.method}.h5")
        c = d.counts(0.4, n_boot=0)
        assert r.good == c["good"] and abs(r.null - c["null_mean"]) < 0.01 and r.runs == len(d.runs)
        assert r.runs > 0 or r.good == 0
        assert 0 <= r.test_accuracy <= 1 and r.test_images > 0
    base = torch.load(work / "results/demo/attack/target.pt", weights_only=True)
    for s in ("weight_decay-0.001", "length-0.5", "dp_sgd-8"):
        t = torch.load(out / s / "target.pt", weights_only=True)
        assert torch.equal(t["ids"], base["ids"])  # the same training images, so the same null galleries
    assert torch.load(out / "length-0.5/target.pt", weights_only=True)["stats"]["epochs"] == 500
    assert (out / "defences.png").read_bytes()[:4] == b"\x89PNG"
    print((out / "defences.md").read_text())
    p = subprocess.run([*sm, "defences_all", "-n"], cwd=work, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0 and "Nothing to be done" in p.stdout + p.stderr
