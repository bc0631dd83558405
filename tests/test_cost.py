"""The dataset cost study (dataset/cost.py) and the fast dataset schedule (dataset/schedule.py)."""

import json

import numpy as np
import pytest
import yaml

from recon_restore import flops
from recon_restore.attack import flops as attack_flops
from recon_restore.cli import main
from recon_restore.config import load_params
from recon_restore.data.store import read_image_set
from recon_restore.dataset.cost import compare, measure, run_flops
from recon_restore.dataset.generate import pairs_of, reconstruct_batch
from recon_restore.dataset.waves import sample_run
from recon_restore.dataset.schedule import effective
from recon_restore.dataset.shards import read_shard, verify_shard
from recon_restore.seeding import derive_seed

import torch


def run(*args) -> int:
    return main([str(a) for a in args])


STUDY = dict(enabled=True, runs=2, hidden=[32, 32], images_per_class=[4], candidates_per_class=[4], epochs=[200, 60], iterations=[60, 25],
             paper_epochs=200, paper_iterations=60, paper_snapshots=[10, 20, 30, 45, 60], min_ratio=1.5)


@pytest.fixture
def pool(tmp_path, tiny_params):
    assert run("data", "prepare", "--params", tiny_params, "--pool", tmp_path / "pool.h5", "--heldout", tmp_path / "held.h5") == 0
    return tmp_path / "pool.h5"


def test_study_counts_pairs_per_counted_pflop_and_a_cutoff_is_a_stopped_run(pool, tiny_params):
    prm = load_params(tiny_params)
    cfg = prm.cfg
    images = read_image_set(pool)
    rows = measure(images, cfg, STUDY, prm.seed, torch.device("cpu"))
    assert [(r.epochs, r.iterations) for r in rows] == [(200, 60), (200, 25), (60, 60), (60, 25)]
    hidden = cfg["attack"]["target"]["hidden"]
    for r in rows:
        kept = len([s for s in STUDY["paper_snapshots"] if s <= r.iterations] + ([] if r.iterations in STUDY["paper_snapshots"] else [1]))
        assert r.snapshots == kept
        f = 2 * (r.epochs * attack_flops.target_epoch_flops(3072, hidden, 8) + r.iterations * attack_flops.reconstruction_iteration_flops(3072, hidden, 8)
                 + kept * 8 * 8 * flops.ssim_pair_flops("haim"))
        assert r.pflop == pytest.approx(f / 1e15) and r.pflop == pytest.approx(2 * run_flops(hidden, 8, 8, r.epochs, r.iterations, kept, "haim") / 1e15)
        assert r.pairs_per_pflop == pytest.approx(r.pairs / r.pflop)
        assert r.pairs >= r.candidates_matched and r.images_matched <= r.candidates_matched
        assert r.matches_per_candidate == pytest.approx(r.candidates_matched / (r.runs * 2 * r.candidates_per_class))
        assert r.pairs == 0 or r.pairs_per_pflop_lo <= r.pairs_per_pflop <= r.pairs_per_pflop_hi
    assert rows[0].paper and not any(r.paper for r in rows[1:])
    # the 25-iteration cutoff equals runs that stopped at 25 iterations (same images, seeds, snapshots)
    c = json.loads(json.dumps(cfg))
    c["attack"]["train"].update(images_per_class=4, epochs=200)
    c["attack"]["reconstruct"].update(candidates_per_class=4, iterations=25, snapshots=[10, 20, 25])
    runs = []
    for k in range(2):
        s = derive_seed(prm.seed, "cost-study", k)
        runs.append({"run": k, "seed": int(s), "indices": sample_run(images.labels, 4, np.random.default_rng(s)).tolist()})
    d = pairs_of(reconstruct_batch(images, runs, c, torch.device("cpu")), c["dataset"]["match"])
    assert len(d.pairs["ssim"]) == rows[1].pairs
    assert np.median(d.pairs["ssim"]) == pytest.approx(rows[1].ssim_median) if rows[1].pairs else True
    v = compare(rows, 1.5)
    assert v["settings"][rows[0].setting]["ratio"] == pytest.approx(1.0)
    for r in rows[1:]:
        assert v["settings"][r.setting]["ratio"] == pytest.approx(r.pairs_per_pflop / rows[0].pairs_per_pflop)
    if v["best"]:
        b = v["best"]
        assert v["settings"][b["setting"]]["ratio"] >= 1.5 and b["ssim_median"] >= rows[0].ssim_median


def test_study_command_writes_table_json_and_figure(pool, tmp_path, tiny_doc):
    tiny_doc["presets"]["demo"]["dataset"]["cost_study"].update(dict(STUDY, epochs=[60], iterations=[30]))
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    assert run("dataset", "cost-study", "--params", p, "--pool", pool, "--out-dir", tmp_path / "cost") == 0
    doc = json.loads((tmp_path / "cost" / "cost.json").read_text())
    assert len(doc["rows"]) == 1 and "verdict" in doc and "provenance" in doc
    assert "pairs / PFLOP" in (tmp_path / "cost" / "cost.md").read_text()
    assert (tmp_path / "cost" / "cost.png").read_bytes()[:4] == b"\x89PNG"
    assert run("dataset", "cost-study", "--params", p, "--pool", pool, "--out-dir", tmp_path / "cost") == 2  # no silent overwrite


def test_fast_schedule_cuts_epochs_and_iterations_and_makes_valid_shards(pool, tmp_path, tiny_doc):
    cfg = tiny_doc["presets"]["demo"]
    cfg["dataset"]["schedule"] = "fast"
    cfg["dataset"]["fast"] = {"epochs": 50, "iterations": 45}
    e = effective(cfg)
    assert e["attack"]["train"]["epochs"] == 50 and e["attack"]["reconstruct"]["iterations"] == 45
    assert e["attack"]["reconstruct"]["snapshots"] == [30, 45] and cfg["attack"]["reconstruct"]["iterations"] == 60  # a copy
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    P = ["--params", p]
    assert run("dataset", "wave", *P, "--pool", pool, "--wave", 0, "--out", tmp_path / "wave-0.json") == 0
    assert run("dataset", "shard", *P, "--pool", pool, "--wave-file", tmp_path / "wave-0.json", "--job", 0, "--out", tmp_path / "s.h5") == 0
    verify_shard(tmp_path / "s.h5")
    d = read_shard(tmp_path / "s.h5")
    assert len(d.pairs["epoch"]) > 0 and set(d.pairs["epoch"].tolist()) <= {30, 45}
    cfg["dataset"]["fast"] = {"epochs": 50, "iterations": 90}
    from recon_restore.errors import UserError

    with pytest.raises(UserError, match="must not exceed"):
        effective(cfg)


def test_fast_schedule_in_the_plan_costs_what_the_study_counts():
    from recon_restore.plan.compute import jobs

    from conftest import REPO

    paper = load_params(REPO / "params.yaml", "cifar-small").cfg
    assert paper["dataset"]["schedule"] == "paper"  # until a study where not every candidate matches shows the fast one
    doc = json.loads(json.dumps(paper))
    doc["dataset"]["schedule"] = "fast"
    f = {s: next(j.flops for j in jobs(c) if j.rule == "dataset_shard") for s, c in (("fast", doc), ("paper", paper))}
    a, fast = doc["attack"], doc["dataset"]["fast"]
    hidden, n, m = a["target"]["hidden"], 2 * a["train"]["images_per_class"], 2 * a["reconstruct"]["candidates_per_class"]
    snaps = len({s for s in a["reconstruct"]["snapshots"] if s <= fast["iterations"]} | {fast["iterations"]})
    per_run = run_flops(hidden, n, m, fast["epochs"], fast["iterations"], snaps, "haim")
    assert f["fast"] == pytest.approx(doc["dataset"]["runs_per_job"] * per_run) and f["fast"] < f["paper"] / 3


def test_compare_picks_the_cheapest_setting_that_qualifies_and_says_when_matching_is_saturated():
    from recon_restore.dataset.cost import Row

    def row(name, pflop, pairs, ssim, paper=False, matched=0.5):
        return Row(name, 1, 1, 1, 4, 4, 2, 0, pairs, 1, 1, ssim, ssim, ssim, pflop, pairs / pflop, paper, matched)

    rows = [row("paper", 10.0, 100, 0.60, True), row("cheap", 1.0, 40, 0.61), row("cheaper", 0.5, 18, 0.62),
            row("cheapest-but-worse", 0.2, 50, 0.50), row("too-few", 2.0, 40, 0.70)]
    v = compare(rows, 3.0)  # ratios: cheap 4, cheaper 3.6, cheapest-but-worse 25 (lower SSIM), too-few 2
    assert v["best"]["setting"] == "cheaper" and not v["saturated"]  # the cheapest qualifying, not the highest ratio
    assert compare([row("paper", 10.0, 100, 0.6, True, 0.95), row("x", 1.0, 40, 0.6, matched=0.99)], 3.0)["saturated"]


def test_compare_judges_fewer_epochs_on_the_same_snapshot_set():
    """A setting with fewer epochs is also compared with the paper's epochs at its own iteration
    cutoff (the same snapshots): if its pairs are worse there, it is not picked even when it
    beats the paper schedule (whose extra snapshots lower the median); yield is matches per
    candidate against the same row."""
    from recon_restore.dataset.cost import Row

    def row(name, epochs, iterations, pflop, pairs, ssim, matched, paper=False):
        return Row(name, epochs, iterations, 1, 4, 4, 2, 0, pairs, 1, 1, ssim, ssim, ssim, pflop, pairs / pflop, paper, matched)

    rows = [row("E50-I100", 50, 100, 10.0, 100, 0.60, 0.5, True), row("E50-I40", 50, 40, 8.0, 80, 0.64, 0.5),
            row("E2-I40", 2, 40, 1.0, 40, 0.62, 0.25), row("E2-I100", 2, 100, 2.0, 90, 0.61, 0.45)]
    v = compare(rows, 3.0)
    s = v["settings"]
    assert s["E2-I40"]["same_snapshots"] == "E50-I40" and s["E2-I40"]["ssim_delta_same_snapshots"] == pytest.approx(-0.02)
    assert s["E2-I40"]["yield_ratio_same_snapshots"] == pytest.approx(0.5) and s["E2-I40"]["ssim_ok"] and s["E2-I40"]["ratio"] >= 3
    assert s["E2-I100"]["same_snapshots"] == "E50-I100" and s["E2-I100"]["ssim_delta_same_snapshots"] == pytest.approx(0.01)
    assert v["best"]["setting"] == "E2-I100"  # E2-I40 is cheaper but worse than the paper's epochs on its snapshots
    rows[1] = row("E50-I40", 50, 40, 8.0, 80, 0.62, 0.5)
    assert compare(rows, 3.0)["best"]["setting"] == "E2-I40"  # equal on the same snapshots: the cheapest qualifies
