"""The workflow on a real SLURM cluster (one node on localhost with two fake GPUs, started by the test).

Runs the demo preset through ``snakemake --profile`` with the repository's SLURM profile,
its site block edited for this cluster (status polling, memory, no cpus-per-gpu), and
checks that (1) the outputs equal the local run's, (2) GPU rules were submitted with a GPU
request on the gpu partition and other rules without, and (3) a job killed part-way with
``scancel`` is resubmitted through Snakemake's retries and the final output is identical,
(4) BF-DnCNN trains as one job on two GPUs (two gloo processes on CPU, ``train.gpus: 2``)
and its restoration runs as three shard jobs whose merged output equals one job's.
To keep CI short the SLURM run stops before the EDM restorer (its training and sampling are
8 of the demo's 11 minutes); every GPU rule still runs (BF-DnCNN training, TV and BF-DnCNN
restoration). Skips with a reason where SLURM cannot be started (not root, not installed).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from conftest import BIN, ENV, REPO, copy_repo
from slurm_cluster import LocalSlurm, unavailable

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
GPU_RULES = {"attack_target", "attack_runs", "dataset_shard", "restorers_train", "evaluate_restore"}
TARGETS = [f"results/demo/evaluate/match/{m}.h5" for m in ("plain", "tv", "bfdncnn")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = unavailable()
    if why:
        pytest.skip(why)
    c = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        c.stop()
        pytest.skip(f"SLURM daemons could not be started here: {e}")
    yield c
    c.stop()


def site_profile(dst: Path, logdir: Path) -> Path:
    """The repository's profile with its site block edited for the one-node test cluster."""
    prof = yaml.safe_load((REPO / "workflow/profiles/slurm/profile.yaml").read_text())
    prof.update({"slurm-init-seconds-before-status-checks": 2, "latency-wait": 5, "jobs": 4,
                 "slurm-logdir": str(logdir), "slurm-keep-successful-logs": True})
    for r in list(prof["set-resources"].values()) + [prof["default-resources"]]:
        r["mem_mb"] = min(r["mem_mb"], 4000)
        r["runtime"] = 60
        r.pop("cpus_per_gpu", None)
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "profile.yaml").write_text(yaml.safe_dump(prof))
    return dst


def run_on_slurm(work: Path, cluster: LocalSlurm, targets: list[str], background: bool = False):
    prof = site_profile(work / "ci-profile", work / "slurm-logs")
    cmd = [str(BIN / "snakemake"), "--profile", str(prof), "--", *targets]
    env = dict(cluster.env, PATH=ENV["PATH"])
    if background:
        return subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=3000)


def rule_of(job: dict) -> str | None:
    """The Snakemake rule of a job: the plugin comments 'rule_<name>' or 'rule_<name>_wildcards_<values>'."""
    c = job.get("Comment", "")
    return c[len("rule_"):].split("_wildcards_")[0] if c.startswith("rule_") else None


def shard_digest(path: Path) -> dict:
    with h5py.File(path) as f:
        return json.loads(f.attrs["content_sha256"])


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    work = copy_repo(tmp_path_factory.mktemp("slurm-run") / "repo")
    t0 = time.time()
    p = run_on_slurm(work, cluster, TARGETS)
    assert p.returncode == 0, (p.stdout[-3000:] + p.stderr[-5000:])
    print(f"SLURM run of the demo preset (all rules but the EDM restorer): {time.time() - t0:.0f} s")
    return work


def test_outputs_equal_a_local_run(slurm_run, demo_run):
    a, b = slurm_run / "results/demo", demo_run / "results/demo"
    shards = sorted(p.name for p in (b / "dataset/shards").glob("*.h5"))
    assert shards and shards == sorted(p.name for p in (a / "dataset/shards").glob("*.h5"))
    for s in shards:
        assert shard_digest(a / "dataset/shards" / s) == shard_digest(b / "dataset/shards" / s), s
    files = ["attack/runs/batch-0.h5", "attack/runs/batch-1.h5", "evaluate/plain.h5", "evaluate/restored/tv.h5", "evaluate/restored/bfdncnn.h5",
             "evaluate/null_galleries.h5"] + [f"evaluate/match/{m}.h5" for m in ("plain", "tv", "bfdncnn")]
    for f in files:
        with h5py.File(a / f) as fa, h5py.File(b / f) as fb:
            names = []
            fa.visit(names.append)
            assert any(isinstance(fa[k], h5py.Dataset) for k in names), f
            for k in names:
                if isinstance(fa[k], h5py.Dataset):
                    assert np.array_equal(fa[k][()], fb[k][()], equal_nan=fa[k].dtype.kind == "f"), f"{f}:{k}"


def test_gpu_rules_were_submitted_with_a_gpu_request(slurm_run, cluster):
    jobs = [j for j in cluster.jobs() if rule_of(j)]
    rules = {rule_of(j) for j in jobs}
    assert GPU_RULES <= rules and {"data_prepare", "dataset_wave", "dataset_manifest", "evaluate_match"} <= rules
    for j in jobs:
        rule = rule_of(j)
        tres = j.get("TresPerJob", "") + j.get("TresPerNode", "")
        if rule in GPU_RULES:
            assert "gpu:1" in tres and j["Partition"] == "gpu", j
        else:
            assert "gpu" not in tres and j["Partition"] == "cpu", j
        assert j["JobState"] == "COMPLETED", j


def test_a_cancelled_job_is_resubmitted_and_the_output_is_identical(cluster, demo_run, tmp_path):
    work = copy_repo(tmp_path / "repo")
    target = "results/demo/dataset/shards/shard-0.h5"
    before = {j["JobId"] for j in cluster.jobs()}
    proc = run_on_slurm(work, cluster, [target], background=True)
    victim, deadline = None, time.time() + 600
    while victim is None and time.time() < deadline and proc.poll() is None:
        for j in cluster.jobs():
            running_for = j.get("RunTime", "00:00:00")
            if (j["JobId"] not in before and rule_of(j) == "dataset_shard" and j["JobState"] == "RUNNING"
                    and running_for >= "00:00:20"):
                victim = j["JobId"]
        time.sleep(1)
    assert victim is not None, "the shard job never ran long enough to be cancelled"
    subprocess.run(["scancel", victim], env=cluster.env, check=True)
    out, _ = proc.communicate(timeout=1800)
    assert proc.returncode == 0, out[-5000:]
    shard_jobs = [j for j in cluster.jobs() if j["JobId"] not in before and rule_of(j) == "dataset_shard"]
    states = sorted(j["JobState"] for j in shard_jobs)
    assert "CANCELLED" in states and "COMPLETED" in states, states
    assert shard_digest(work / target) == shard_digest(demo_run / target)


def test_two_gpu_training_and_sharded_restoration(slurm_run, cluster, tmp_path):
    """On a copy of the SLURM run: BF-DnCNN retrained as one job asking for 2 GPUs (two
    processes, gloo on CPU) and restored in 3 shards of 2 evaluation runs, then merged."""
    import shutil

    from conftest import BIN as bin_dir

    work = tmp_path / "repo"
    shutil.copytree(slurm_run, work, symlinks=True, ignore=shutil.ignore_patterns(".snakemake", "slurm-logs", "ci-profile"))
    doc = yaml.safe_load((work / "params.yaml").read_text())
    demo = doc["presets"]["demo"]
    demo["restorers"]["bfdncnn"]["train"].update(gpus=2, steps=200, halve_after=150, halve_every=25)
    demo["evaluate"]["restore_shard_runs"]["bfdncnn"] = 2   # merged into the demo's own (edm: one job)
    (work / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for f in ("restorers/bfdncnn.pt", "evaluate/restored/bfdncnn.h5", "evaluate/match/bfdncnn.h5"):
        (work / "results/demo" / f).unlink()
    before = {j["JobId"] for j in cluster.jobs()}
    p = run_on_slurm(work, cluster, ["results/demo/evaluate/match/bfdncnn.h5"])
    assert p.returncode == 0, (p.stdout[-3000:] + p.stderr[-5000:])
    jobs = [j for j in cluster.jobs() if j["JobId"] not in before and rule_of(j)]
    train = [j for j in jobs if rule_of(j) == "restorers_train"]
    assert len(train) == 1 and "gpu:2" in train[0].get("TresPerJob", "") + train[0].get("TresPerNode", ""), (jobs, p.stdout[-3000:])
    assert sorted(rule_of(j) for j in jobs if rule_of(j).startswith("evaluate_")) == (
        ["evaluate_match", "evaluate_merge"] + ["evaluate_restore_shard"] * 3)
    assert all(j["JobState"] == "COMPLETED" for j in jobs), jobs
    import torch

    ck = torch.load(work / "results/demo/restorers/bfdncnn.pt", weights_only=True)
    assert ck["provenance"]["gpus"] == 2
    log = (work / "results/demo/logs/restorers_train/bfdncnn.log").read_text()
    assert "1 process" not in log and "2 process" in log
    # the merged shards equal one restoration job of the same checkpoint
    one = tmp_path / "one.h5"
    subprocess.run([str(bin_dir / "recon-restore"), "evaluate", "restore", "--restorer", "bfdncnn", "--plain",
                    "results/demo/evaluate/plain.h5", "--checkpoint", "results/demo/restorers/bfdncnn.pt", "--out", str(one)],
                   cwd=work, env=ENV, check=True, capture_output=True)
    with h5py.File(one) as a, h5py.File(work / "results/demo/evaluate/restored/bfdncnn.h5") as b:
        assert b.attrs["parts"] == 3 and np.array_equal(a["bfdncnn"][()], b["bfdncnn"][()])
