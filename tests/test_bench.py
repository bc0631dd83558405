"""``recon-restore bench workflow``: job-seconds per rule from a Snakemake log."""

import pytest

from recon_restore.bench.workflow import rule_seconds, table
from recon_restore.errors import UserError

LOG = """Select jobs to execute...
[Sat Dec  5 07:42:36 2026]
localrule restorers_train:
    output: a.pt
    jobid: 3
    wildcards: method=edm

[Sat Dec  5 07:42:40 2026]
rule evaluate_match:
    jobid: 7

[Sat Dec  5 07:42:50 2026]
Finished jobid: 7 (Rule: evaluate_match)
[Sat Dec  5 07:43:36 2026]
Finished jobid: 3 (Rule: restorers_train)
[Sat Dec  5 07:43:37 2026]
rule evaluate_match:
    jobid: 8
[Sat Dec  5 07:43:41 2026]
Finished jobid: 8 (Rule: evaluate_match)
"""


def test_job_seconds_per_rule_from_a_snakemake_log(tmp_path):
    (tmp_path / "s.log").write_text(LOG)
    rules, wall = rule_seconds(tmp_path / "s.log")
    assert rules["restorers_train"]["jobs"] == 1 and rules["restorers_train"]["seconds"] == 60
    assert rules["evaluate_match"]["jobs"] == 2 and rules["evaluate_match"]["seconds"] == 14
    assert wall == 65
    t = table(rules, wall).splitlines()
    assert t[2].startswith("| restorers_train | 1 | 60 |") and "1.1 min wall" in t[-1]
    (tmp_path / "empty.log").write_text("nothing ran\n")
    with pytest.raises(UserError, match="no finished jobs"):
        rule_seconds(tmp_path / "empty.log")


# ---- bench gpu (make gpu-check): the tiny mode runs every part on the CPU --------------------------


def test_the_gpu_check_runs_every_part_at_toy_sizes_on_the_cpu(tmp_path, params_doc):
    import json

    import torch

    from recon_restore.bench.gpu import plan_rates
    from recon_restore.cli import main
    assert main(["bench", "gpu", "--preset", "paper", "--tiny", "--device", "cpu", "--out-dir", str(tmp_path)]) == 0
    r = json.loads((tmp_path / "cpu-tiny.json").read_text())
    assert r["failures"] == [] and len(r["correctness"]) == 6 and all(c["ok"] for c in r["correctness"])
    assert {(a["implementation"], a["precision"], a["runs"]) for a in r["attack"]} == {
        (i, p, n) for i, n in (("naive", 1), ("batched", 2)) for p in ("fp32", "tf32")}
    assert all(a["seconds_per_run"] > 0 for a in r["attack"])
    assert [e["precision"] for e in r["edm"]["train"]] == ["fp64", "fp32", "tf32", "bf16"]
    assert r["edm"]["restore"]["images_per_s_paper_samples"] == pytest.approx(r["edm"]["restore"]["images_per_s_one_sample"] / 20)
    assert {n["network"] for n in r["networks"]} == {"BF-DnCNN", "N2N U-Net"} and r["nccl"]["ok"] and r["nccl"]["backend"] == "gloo"
    assert "no plan kind" in r["plan"]["note"] and "| Heun step (fp32) |" in (tmp_path / "cpu-tiny.md").read_text()
    # the plan at the measured rates, as on an H100: every GPU stage gets hours, more for lower rates
    cfg = params_doc["presets"]["paper"]  # resolved (conftest)
    p = plan_rates(r, cfg, 0.4, "h100")
    assert {"attack", "dataset", "restorers", "evaluate"} <= set(p["gpu_hours_at_measured_rates"])
    assert all(v > 0 for v in p["gpu_hours_at_measured_rates"].values()) and 0 < p["measured_share_of_peak"]["attack"] < 1
    slow = dict(r, edm=dict(r["edm"], train=[dict(e, images_per_s=e["images_per_s"] / 2) for e in r["edm"]["train"]]))
    assert plan_rates(slow, cfg, 0.4, "h100")["gpu_hours_at_measured_rates"]["restorers"] == pytest.approx(
        2 * p["gpu_hours_at_measured_rates"]["restorers"])
    assert torch.cuda.is_available() or main(["bench", "gpu", "--preset", "paper", "--out-dir", str(tmp_path / "x")]) == 0
    assert not (tmp_path / "x").exists() or torch.cuda.is_available()  # no GPU: one line, nothing written


def test_a_wrong_answer_fails_the_gpu_check(tmp_path, monkeypatch):
    from recon_restore.bench import gpu
    from recon_restore.cli import main

    real = gpu.correctness
    monkeypatch.setattr(gpu, "correctness", lambda dev, s: real(dev, s)[:-1] + [
        {"what": "Heun step (fp32)", "relative_error": 0.5, "tolerance": 1e-3, "ok": False}])
    monkeypatch.setattr(gpu, "attack", lambda *a: [])  # timed above; here only the verdict matters
    assert main(["bench", "gpu", "--preset", "paper", "--tiny", "--device", "cpu", "--out-dir", str(tmp_path)]) == 1
    assert "**FAILED:** Heun step (fp32)" in (tmp_path / "cpu-tiny.md").read_text()


def test_the_gpu_checks_budget_at_the_papers_sizes_is_at_most_8_minutes(capsys):
    """The plan's own estimate (FLOP counts at 40% of an H100's peak, fp64 convolutions at the
    vector rate, plus fixed overheads) for every part adds up to at most 480 s."""
    from recon_restore.bench.gpu import BUDGET_S, estimate
    from recon_restore.cli import main
    from pathlib import Path

    from recon_restore.config import load_params

    est = estimate(load_params(Path(__file__).parent.parent / "params.yaml", "paper").cfg)
    assert set(est) == {"correctness", "attack", "edm", "networks", "nccl", "plan"} and all(v > 0 for v in est.values())
    assert sum(est.values()) <= BUDGET_S == 480
    assert main(["bench", "gpu", "--preset", "paper", "--estimate"]) == 0 and "budget 480 s" in capsys.readouterr().out


def test_the_gpu_check_halves_a_batch_that_does_not_fit(monkeypatch):
    """The paper's batch of 513 may not fit one GPU: each precision is measured at the largest
    halving that fits, and the row says which batch it was."""
    import torch

    from recon_restore.bench import gpu

    real = gpu._edm_train

    def small_gpu(dev, network, precision, batch, repeat):
        if batch > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(dev, network, precision, batch, repeat)

    monkeypatch.setattr(gpu, "_edm_train", small_gpu)
    s = gpu.SIZES["tiny"]
    out = gpu.edm(torch.device("cpu"), gpu.Size(**{**s.__dict__, "edm_batch": 513, "precisions": ("fp32",)}), samples=20)
    assert [(r["batch"], r["paper_batch"]) for r in out["train"]] == [(8, 513)] and out["train"][0]["images_per_s"] > 0
