"""The demo workflow end to end in a temporary copy of the repository (slow: ~10 minutes
on 2 cores), then `dvc repro` on the same copy: it reproduces the same artifacts without
recomputing them, and `dvc metrics show` reads the metrics."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pandas as pd
import pytest

from conftest import REPO

BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")


def copy_repo(dst: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src, out = REPO / f, dst / f
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), out)
        elif src.is_file():
            shutil.copy2(src, out)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dst, check=True)
    return dst


@pytest.mark.slow
def test_demo_workflow_end_to_end_and_dvc(tmp_path):
    work = copy_repo(tmp_path / "repo")
    p = subprocess.run([str(BIN / "snakemake"), "--cores", "2", "--workflow-profile", "none"], cwd=work, env=ENV,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-5000:]
    out = work / "results" / "demo"
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    print("demo good reconstructions:", {m: v["good"] for m, v in metrics["methods"].items()})
    assert metrics["methods"]["plain"]["good"] >= 1, "the demo must produce at least one good plain reconstruction"
    assert set(metrics["methods"]) == {"plain", "tv", "bfdncnn", "edm_single", "edm_averaged"}
    manifest = json.loads((out / "dataset" / "manifest.json").read_text())
    assert manifest["pairs"] > 0 and len(manifest["shards"]) == 3
    for f in ("edm.pt", "bfdncnn.pt"):
        assert (out / "restorers" / f).stat().st_size > 0
    summary = pd.read_csv(out / "report" / "tables" / "summary.csv")
    assert list(summary["method"]) == ["plain", "tv", "bfdncnn", "edm_single", "edm_averaged"]
    for f in ("fig1_grid", "fig2_sorted", "fig3_scatter", "fig5_halves"):
        assert (out / "report" / "figures" / f"{f}.png").read_bytes()[:4] == b"\x89PNG"
    with h5py.File(out / "evaluate" / "plain.h5") as f:
        assert f.attrs["runs_ok"] + f.attrs["runs_aborted"] + f.attrs["runs_failed"] == 6

    before = {f: f.stat().st_mtime for f in out.rglob("*.h5")}
    d = subprocess.run([str(BIN / "dvc"), "repro"], cwd=work, env=ENV, capture_output=True, text=True)
    assert d.returncode == 0, d.stdout[-3000:] + d.stderr[-3000:]
    assert (work / "dvc.lock").exists()
    assert {f: f.stat().st_mtime for f in out.rglob("*.h5")} == before, "dvc repro recomputed Snakemake outputs"
    m = subprocess.run([str(BIN / "dvc"), "metrics", "show", "--json"], cwd=work, env=ENV, capture_output=True, text=True)
    assert m.returncode == 0 and '"good"' in m.stdout
    dry = subprocess.run([str(BIN / "dvc"), "status"], cwd=work, env=ENV, capture_output=True, text=True)
    assert "Data and pipelines are up to date" in dry.stdout, dry.stdout
