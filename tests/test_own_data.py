"""Bring your own data, end to end (slow, a few minutes on 2 cores): the whole workflow on a
``folder`` source holding scikit-learn's digits (1 x 8 x 8, grey; an .npz with images and
labels), so that nothing can assume 3 x 32 x 32: data, the attack, the dataset, a trained
diffusion restorer and BF-DnCNN, matching with the null control, and the report."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import yaml

from conftest import ENV, copy_repo

DIGITS = {
    "base": "demo",
    "data": {"source": "folder", "positive": ["0", "2", "4", "6", "8"],
             "folder": {"pool": "data/own/digits.npz", "channels": 1, "size": [8, 8]}},
    "attack": {"target": {"hidden": [64, 64]}, "train": {"images_per_class": 6, "epochs": 600},
               "reconstruct": {"candidates_per_class": 12, "iterations": 600, "snapshots": [100, 200, 400, 600]}},
    "dataset": {"least_seen": 100},
    "restorers": {
        "edm": {"network": {"channel_mult": [1, 2], "attn_resolutions": [4]},
                "train": {"steps": 150, "checkpoint_every": 50, "log_every": 25}, "samples": 2, "sampler": {"num_steps": 4}},
        "bfdncnn": {"train": {"steps": 150, "halve_after": 100, "halve_every": 25, "checkpoint_every": 50, "log_every": 25}},
        "n2n": {"evaluate": []},  # Lehtinen et al.'s U-Net pools five times: it needs sides that are multiples of 32
        "adapt": {"steps": 20},
    },
    "evaluate": {"images_per_class": 10, "runs": 3, "runs_per_job": 3, "runs_per_batch": 3,
                 "reconstruct": {"candidates_per_class": 20, "iterations": 600, "snapshots": [600], "abort": {"at": 100}}},
    "robustness": {"enabled": False},
}


@pytest.mark.slow
def test_folder_source_of_1x8x8_digits_runs_the_whole_pipeline(tmp_path):
    from sklearn.datasets import load_digits

    repo = copy_repo(tmp_path / "repo")
    d = load_digits()
    (repo / "data/own").mkdir(parents=True)
    np.savez(repo / "data/own/digits.npz", images=np.round(d.images / 16 * 255).astype(np.uint8), labels=d.target)
    doc = yaml.safe_load((repo / "params.yaml").read_text())
    doc["presets"]["digits"] = DIGITS
    doc["preset"] = "digits"
    (repo / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    p = subprocess.run(["snakemake", "--cores", "2", "--workflow-profile", "none", "--quiet", "rules"], cwd=repo, env=ENV,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    out = repo / "results" / "digits"
    import h5py

    with h5py.File(out / "data" / "pool.h5") as f:
        assert f["images"].shape[1:] == (1, 8, 8) and (f.attrs["channels"], f.attrs["height"], f.attrs["width"]) == (1, 8, 8)
    with h5py.File(out / "evaluate" / "plain.h5") as f:
        assert f["images"].shape[1:] == (1, 8, 8)
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    for m in ("plain", "bfdncnn", "edm_averaged"):  # a trained restorer through matching and the null control
        assert m in metrics["methods"], sorted(metrics["methods"])
        assert {"good", "null_mean", "excess"} <= set(metrics["methods"][m])
    assert metrics["images"] == 20  # 10 per binary class (digits split into even and odd by data.positive)
    assert (out / "report" / "figures" / "fig1_grid.png").read_bytes()[:4] == b"\x89PNG"
    print("digits good reconstructions:", {m: v["good"] for m, v in metrics["methods"].items()})
