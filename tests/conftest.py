"""Shared fixtures. Real CIFAR-10 data lives in ../shared/data (never committed); tests
that need it skip with a reason when it is absent."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RECON_RESTORE_SHARED_DATA", REPO.parent / "shared" / "data"))
CIFAR_SUBSET = SHARED_DATA / "cifar10-subset" / "cifar-10-batches-py"
CIFAIR_LISTS = SHARED_DATA / "cifair"
# md5 of the subset files as documented in ../shared/data/README.md
SUBSET_MD5 = {
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    "data_batch_1": "a1ee01c884187f28fb53fcdd6f7b8297",
    "data_batch_2": "f5702c0ec78fe1e1b782284bc0c5fa9e",
    "data_batch_3": "826ae5ec5e11dea3a24c100e5338e0e2",
    "data_batch_4": "b0018c7de2873cd1b1e6895e575ac3ac",
    "data_batch_5": "d1b5805a7be472a0328d5c7cecb14d3d",
    "test_batch": "55972a3a49c4bbe6957aa61412dcc989",
}

torch.set_num_threads(min(2, os.cpu_count() or 1))


def requires_cifar_subset():
    return pytest.mark.skipif(not CIFAR_SUBSET.is_dir(), reason=f"real CIFAR-10 subset not found at {CIFAR_SUBSET}")


def requires_cifair_lists():
    return pytest.mark.skipif(not CIFAIR_LISTS.is_dir(), reason=f"ciFAIR duplicate lists not found at {CIFAIR_LISTS}")


def save_then_die(save):
    """``save`` that writes its state, then stops the process as a kill would (resume tests)."""

    def wrapper(*a, **k):
        save(*a, **k)
        raise KeyboardInterrupt

    return wrapper


@pytest.fixture(scope="session")
def raw_params_doc() -> dict:
    """params.yaml as written: ``paper`` in full, the other presets as differences."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture(scope="session")
def params_doc(raw_params_doc) -> dict:
    """params.yaml with every preset in full (what the stages read), a valid params file itself."""
    from recon_restore.config import resolve

    return resolve(raw_params_doc)


@pytest.fixture
def tiny_doc(params_doc) -> dict:
    """The demo preset shrunk to seconds (same components, smaller sizes)."""
    doc = copy.deepcopy(params_doc)
    p = doc["presets"]["demo"]
    p["data"]["demo"].update(pool_per_class=40, heldout_per_class=24)
    p["attack"]["target"]["hidden"] = [32, 32]
    p["attack"]["train"].update(images_per_class=4, epochs=200)
    p["attack"]["reconstruct"].update(candidates_per_class=4, iterations=60, snapshots=[30, 60])
    p["dataset"].update(phase1_runs=4, phase2_runs=2, wave_runs=2, runs_per_job=2, runs_per_batch=2, least_seen=20)
    e = p["restorers"]["edm"]
    e["network"].update(model_channels=8, channel_mult=[1, 2], num_blocks=1, attn_resolutions=[])
    e["train"].update(steps=6, batch=8, checkpoint_every=3, log_every=2)
    e["sampler"]["num_steps"] = 3
    e["samples"] = 2
    p["restorers"]["bfdncnn"]["network"].update(depth=3, channels=8)
    p["restorers"]["bfdncnn"]["train"].update(steps=6, batch=8, checkpoint_every=3, log_every=2, halve_after=4, halve_every=1)
    n = p["restorers"]["n2n"]
    n["network"]["width"] = 8
    n["train"].update(steps=6, batch=8, checkpoint_every=3, log_every=2)
    n["recon2recon"]["pairs"] = "any"
    # the adaptation study runs in its own CLI test (test_adaptation_through_the_cli) and in the demo
    p["restorers"]["adapt"].update(enabled=False, steps=4, batch=8, log_every=2)
    ev = p["evaluate"]
    ev.update(images_per_class=4, runs=3, runs_per_job=2, runs_per_batch=2)
    ev["train"]["epochs"] = 200
    ev["reconstruct"].update(candidates_per_class=4, iterations=60, snapshots=[30, 60])
    ev["reconstruct"]["abort"]["at"] = 10
    return doc


@pytest.fixture
def tiny_params(tmp_path, tiny_doc) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    return path


@pytest.fixture
def subset_checksums(tmp_path) -> Path:
    p = tmp_path / "subset.md5"
    p.write_text("".join(f"{v}  {k}\n" for k, v in SUBSET_MD5.items()))
    return p


# ---- slow tests: one local demo run shared by the end-to-end and SLURM tests -------------
import shutil as _shutil
import subprocess as _subprocess
import sys as _sys

BIN = Path(_sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")


def copy_repo(dst: Path) -> Path:
    """A fresh-clone-like copy: the files git tracks, committed in a new repository."""
    files = _subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src, out = REPO / f, dst / f
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), out)
        elif src.is_file():
            _shutil.copy2(src, out)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy"]):
        _subprocess.run(cmd, cwd=dst, check=True)
    return dst


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The demo workflow run locally (``make demo-run``: snakemake --cores 2, then dvc commit) in a temporary copy."""
    work = copy_repo(tmp_path_factory.mktemp("demo") / "repo")
    # exactly what `make demo` runs after installing (its `demo-run` target)
    p = _subprocess.run(["make", "demo-run", f"VENV={BIN.parent}", "CORES=2"], cwd=work, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-5000:]
    return work
