"""``recon-restore plan`` and the FLOP counts behind it: the counts agree with hand counts,
the plan's jobs are the ones Snakemake plans, and the paper preset fits its profile."""

import copy
import json

import pytest
import yaml

from conftest import REPO
from test_workflow import sm

from recon_restore import flops
from recon_restore.attack import flops as attack_flops
from recon_restore.cli import main
from recon_restore.config import load_params
from recon_restore.plan.compute import PEAK_TFLOPS, jobs, wall_hours


def test_conv_network_flops_equal_a_hand_count():
    """BF-DnCNN, depth 3, 8 channels, 32x32: 2 x H x W x 9 x Cin x Cout per convolution."""
    from recon_restore import methods

    f = methods.restorer("bfdncnn", {"bfdncnn": {"network": {"depth": 3, "channels": 8, "image_channels": 3}}}).flops()
    per = lambda cin, cout: 2 * 32 * 32 * 9 * cin * cout  # noqa: E731
    fwd = per(3, 8) + per(8, 8) + per(8, 3)
    assert f["forward"] == fwd
    # backward: every weight gradient (= forward) and the input gradients of all but the first convolution
    assert f["train"] == 2 * fwd + per(8, 8) + per(8, 3)


def test_attack_flops_equal_a_hand_count():
    d, (h1, h2), n, m = 12, (5, 7), 4, 6
    mm = lambda a, b, c: 2 * a * b * c  # noqa: E731  (a x b) @ (b x c)
    fwd = mm(n, d, h1) + mm(n, h1, h2) + mm(n, h2, 1)
    # closed-form backward: dW1, dW2, dw3 and the first activations' gradient through W2 (the one
    # through w3 is an outer product, element-wise work, not counted)
    assert attack_flops.target_epoch_flops(d, [h1, h2], n) == fwd + mm(d, n, h1) + mm(h1, n, h2) + mm(h2, n, 1) + mm(n, h2, h1)
    # one iteration of attack.objective.closed_form: the forward and delta products, the four
    # candidate Gram matrices, and the products of the reverse pass
    per_iter = (mm(m, d, h1) + mm(m, h1, h2) + mm(m, h2, h1)  # W1 x, W2 a1, W2^T u
                + mm(m, d, m) + mm(m, h1, m) + mm(m, h1, m) + mm(m, h2, m)  # K, G1, A1, U
                + mm(m, m, h1) + mm(m, m, h2) + mm(m, m, h1)  # q1, q2, (U c) a1
                + mm(m, h1, h2) + mm(m, h2, h1) + mm(m, h1, d) + mm(m, m, d))  # dv W2^T, dz2 W2, gx, (G1 c) x
    assert attack_flops.reconstruction_iteration_flops(d, [h1, h2], m) == per_iter


def test_wall_hours_is_flops_over_throughput():
    assert wall_hours(3600 * 19.5e12 * 0.5, "fp32", 1, "a100", 0.5) == pytest.approx(1.0)
    assert wall_hours(3600 * 19.5e12, "fp32", 4, "a100", 1.0) == pytest.approx(0.25)
    assert PEAK_TFLOPS["h100"]["bf16"] > PEAK_TFLOPS["h100"]["tf32"] > PEAK_TFLOPS["h100"]["fp32"]


def _dry_run_counts(preset: str, configfile=None, targets=()) -> dict[str, int]:
    args = ["-n", "--forceall", "--cores", "2", "--workflow-profile", "none", "--quiet", "rules", "--config", f"preset={preset}"]
    if configfile:
        args += ["--configfile", str(configfile)]
    args += ["--", *targets] if targets else []
    out = sm(*args).stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_the_plans_jobs_are_the_jobs_snakemake_waves():
    cfg = load_params(REPO / "params.yaml", "paper").cfg
    planned: dict[str, int] = {}
    for j in jobs(cfg):
        planned[j.rule] = planned.get(j.rule, 0) + j.count
    counts = _dry_run_counts("paper")
    for r in ("all", "total"):
        counts.pop(r)
    for r in ("restorers_all", "evaluate_all", "robustness_all"):
        counts.pop(r, None)
    assert planned == counts
    assert counts["evaluate_restore_shard"] == 152 and counts["restorers_train"] == len(
        [j for j in jobs(cfg) if j.rule == "restorers_train"])


def test_paper_plan_times_fp64_convolutions_at_the_vector_rate(tmp_path, capsys):
    """The paper's fp64 EDM training (8 GPUs) is timed at the vector FP64 rate (cuDNN's fp64
    convolutions use no tensor cores): over its 48 h on A100s, within it on H100s, and the
    plan says so (exit 2); the attack's fp64 GEMMs keep the tensor-core rate."""
    assert main(["plan", "--preset", "paper", "--json", str(tmp_path / "plan.json")]) == 2
    cap = capsys.readouterr()
    assert "| restorers_train | edm | 1 |" in cap.out and "OVER LIMIT: restorers_train edm" in cap.out
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["flagged"] == ["restorers_train edm on a100"] and plan["gpu_hours"]["dataset"]["a100"] > 0
    edm = next(j for j in plan["jobs"] if j["rule"] == "restorers_train" and j["job"] == "edm")
    assert edm["gpus"] == 8 and edm["precision"] == "fp64" and edm["hours"]["h100"] < edm["limit_h"] < edm["hours"]["a100"]
    assert edm["hours"]["a100"] == pytest.approx(wall_hours(edm["flops"], "fp64", 8, "a100", 0.4) * 19.5 / 9.7)
    runs = next(j for j in plan["jobs"] if j["rule"] == "attack_runs")
    assert runs["precision"] == "fp64" and runs["hours"]["a100"] == pytest.approx(wall_hours(runs["flops"], "fp64", 1, "a100", 0.4))


def test_a_job_over_its_profile_runtime_is_flagged(tmp_path, capsys):
    prof = yaml.safe_load((REPO / "workflow/profiles/slurm/profile.yaml").read_text())
    prof["set-resources"]["restorers_train"]["runtime"] = 60
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(prof))
    assert main(["plan", "--preset", "paper", "--profile", str(tmp_path / "p.yaml")]) == 2
    cap = capsys.readouterr()
    assert "OVER LIMIT: restorers_train edm" in cap.out and "exceed their profile runtime" in cap.err


def test_the_plan_runs_with_every_optional_study_on(tmp_path, capsys, params_doc):
    """The dataset cost study, the robustness study and the adaptation all on: every one is a
    job of the plan (before, the cost study's import shadowed a local list: a TypeError)."""
    doc = copy.deepcopy(params_doc)
    p = doc["presets"]["demo"]
    p["dataset"]["cost_study"]["enabled"] = True
    p["robustness"]["enabled"] = True
    p["restorers"]["adapt"]["enabled"] = True
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["plan", "--params", str(tmp_path / "params.yaml"), "--preset", "demo", "--json", str(tmp_path / "plan.json")]) == 0
    rules = {j["rule"] for j in json.loads((tmp_path / "plan.json").read_text())["jobs"]}
    assert {"dataset_cost", "robustness_run", "robustness_report", "restorers_adapt", "adapt_runs", "adapt_collect"} <= rules


def test_with_every_study_and_the_defences_the_plans_jobs_are_the_jobs_snakemake_plans(tmp_path, params_doc):
    """The demo with every study on (cost, robustness, adaptation, learning curves, cross attack,
    wrong release) and the defences, its diffusion restorer in shards of one run: the plan
    counts, rule by rule, the jobs a dry run of `all defences_all` plans; every evaluation's
    diffusion restoration is sharded (main, cross attack, wrong release, each defence)."""
    doc = copy.deepcopy(params_doc)
    p = doc["presets"]["demo"]
    p["dataset"]["cost_study"]["enabled"] = True
    p["robustness"]["enabled"] = True
    p["restorers"]["adapt"]["enabled"] = True
    p["evaluate"]["curve"]["enabled"] = True
    p["evaluate"]["cross_attack"]["enabled"] = True
    p["evaluate"]["wrong_release"]["enabled"] = True
    p["evaluate"]["restore_shard_runs"] = {"edm": 1}
    p["defences"]["restorers"] = ["bfdncnn", "edm", "tv"]
    cfgfile = tmp_path / "params.yaml"
    cfgfile.write_text(yaml.safe_dump(doc, sort_keys=False))
    cfg = load_params(cfgfile, "demo").cfg
    planned: dict[str, int] = {}
    for j in jobs(cfg, defences=True):
        planned[j.rule] = planned.get(j.rule, 0) + j.count
    counts = _dry_run_counts("demo", cfgfile, ["all", "defences_all"])
    for r in ("all", "total", "defences_all", "restorers_all", "evaluate_all", "robustness_all", "dataset_cost_all"):
        counts.pop(r, None)
    assert planned == counts
    settings = len(p["defences"]["weight_decay"]) + len(p["defences"]["length"]) + len(p["defences"]["dp_sgd"]["epsilon"])
    evaluations = 3 + settings  # main, cross attack, wrong release, each defence
    assert counts["evaluate_restore_shard"] == evaluations * p["evaluate"]["runs"] and counts["evaluate_merge"] == evaluations
    assert "evaluate_cross_restore" in counts and "defences_restore" in counts  # the other restorers stay one job each



def test_a_multiclass_presets_restorations_count_every_classs_candidates():
    """The multiclass attack reconstructs candidates_per_class candidates of each of the ten
    classes: the plan restores and matches runs x snapshots x 10 x candidates_per_class."""
    from recon_restore import methods

    cfg = load_params(REPO / "params.yaml", "subset-multiclass").cfg
    ev = cfg["evaluate"]
    n = ev["runs"] * len(ev["reconstruct"]["snapshots"]) * 10 * ev["reconstruct"]["candidates_per_class"]
    job = next(j for j in jobs(cfg) if j.rule == "evaluate_restore" and j.what == "bfdncnn")
    assert job.flops == pytest.approx(n * methods.restorer("bfdncnn", cfg["restorers"]).restore_flops())
    match = next(j for j in jobs(cfg) if j.rule == "evaluate_match")
    images = 10 * ev["images_per_class"]
    assert match.flops == pytest.approx(n * images * (1 + ev["null_galleries"]) * flops.ssim_pair_flops(ev["best_match"]["ssim_variant"]))
