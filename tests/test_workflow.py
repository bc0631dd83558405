"""The Snakemake workflow, the SLURM profile and the DVC pipeline plan correctly."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

BIN = Path(sys.executable).parent
ENV = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
GPU_RULES = {"attack_target", "attack_runs", "dataset_shard", "restorers_train", "evaluate_restore", "evaluate_restore_shard",
             "adapt_target", "adapt_runs", "restorers_adapt", "robustness_run", "dataset_cost", "evaluate_cross_target",
             "evaluate_cross_runs", "evaluate_cross_restore", "evaluate_wrong_restore", "evaluate_curve_train",
             "evaluate_curve_restore", "defences_target", "defences_runs", "defences_restore"}


def sm(*args, cwd=REPO, check=True):
    p = subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and p.returncode:
        raise AssertionError(p.stdout + p.stderr)
    return p


def test_demo_dry_run_plans_every_stage(tmp_path):
    out = sm("-n", "--forceall", "--cores", "2", "--workflow-profile", "none", "--quiet", "rules").stdout
    for rule in ("data_prepare", "attack_target", "attack_runs", "dataset_wave", "dataset_shard", "dataset_manifest",
                 "restorers_train", "evaluate_collect", "evaluate_restore", "evaluate_match", "report"):
        assert rule in out, rule


def test_slurm_profile_requests_gpus_for_gpu_rules_only():
    prof = yaml.safe_load((REPO / "workflow/profiles/slurm/profile.yaml").read_text())
    assert prof["executor"] == "slurm" and prof["slurm-status-command"] in ("squeue", "sacct") and prof["retries"] >= 1
    res = prof["set-resources"]
    assert set(res) == GPU_RULES
    for rule, r in res.items():
        if rule in ("restorers_train", "evaluate_curve_train"):  # the rule asks for train.gpus GPUs itself
            assert "gpu" not in r and "gres" not in r and r["slurm_partition"] == "gpu"
            continue
        assert ("gpu" in r) != ("gres" in r), rule  # one of the plugin's GPU resources, not both
        assert "--gres" not in str(r.get("slurm_extra", "")) and "--gpus" not in str(r.get("slurm_extra", ""))
        assert r["runtime"] > 0 and r["mem_mb"] > 0
    assert "gpu" not in prof["default-resources"]


def test_paper_preset_plans_on_slurm_with_gpu_requests():
    p = sm("-n", "--profile", "workflow/profiles/slurm", "--config", "preset=paper", "-p", "--", "results/paper/dataset/waves/wave-0.json",
           "results/paper/attack/runs/batch-0.h5", "results/paper/restorers/edm.pt", "results/paper/evaluate/restored/edm.h5")
    out = p.stdout + p.stderr
    blocks = out.split("rule ")
    seen = set()
    for b in blocks:
        name = b.split(":", 1)[0].strip()
        if name in GPU_RULES:
            seen.add(name)
            # the diffusion restorer trains as one job on 8 GPUs (train.gpus), every other GPU job asks for one
            gpus = 8 if name == "restorers_train" and "restorers/edm.pt" in b else 1
            assert f"gpu={gpus}," in b and "slurm_partition=gpu" in b, b[:600]
        elif name in ("dataset_wave", "data_prepare"):
            assert "gpu=" not in b and "slurm_partition=cpu" in b
    assert {"attack_target", "attack_runs", "dataset_shard", "restorers_train", "evaluate_restore_shard"} <= seen
    # 100k + 50k runs in jobs of 100 -> 1,500 shard jobs; 1 uniform wave + 50 least-seen waves of 1,000 runs
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert counts.get("dataset_shard") == 1500 and counts.get("dataset_wave") == 51, counts
    # the diffusion restorer's ~1.2M reconstructions in 152 restoration jobs of 2 runs, then one merge
    assert counts.get("evaluate_restore_shard") == 152 and counts.get("evaluate_merge") == 1, counts


def test_bad_params_stop_the_workflow_with_one_clear_line(tmp_path):
    doc = yaml.safe_load((REPO / "params.yaml").read_text())
    doc["presets"]["demo"]["evaluate"]["runz"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    p = sm("-n", "--cores", "1", "--configfile", str(bad), check=False)
    assert p.returncode != 0 and "unknown key 'presets.demo.evaluate.runz'" in p.stdout + p.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for DVC")
def test_dvc_pipeline_mirrors_the_stages(tmp_path):
    work = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        src = REPO / f
        if src.is_symlink():
            os.symlink(os.readlink(src), work / f)
        elif src.is_file():
            shutil.copy2(src, work / f)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    p = subprocess.run([str(BIN / "dvc"), "dag", "--dot"], cwd=work, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    edges = {tuple(s.strip().strip('"') for s in line.strip().rstrip(";").split("->")) for line in p.stdout.splitlines() if "->" in line}
    # the restorers read the shards, and the pool (the synthetic Noise2Noise variants)
    assert edges == {("params", s) for s in DVC_STAGE_RULES} | {("data", "dataset"), ("data", "evaluate"), ("dataset", "restorers"), ("data", "restorers"),
                     ("restorers", "evaluate"), ("evaluate", "report"),
                     ("data", "robustness"), ("dataset", "robustness"), ("restorers", "robustness"), ("evaluate", "robustness"),
                     ("data", "defences"), ("restorers", "defences"), ("evaluate", "defences")}
    # the first stage's command is a Snakemake target of the preset selected in params.yaml
    p = subprocess.run([str(BIN / "dvc"), "repro", "--dry", "data"], cwd=work, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0 and "snakemake results/demo/data/pool.h5" in p.stdout, p.stdout + p.stderr


def _rule_commands() -> dict[str, set]:
    """The commands the workflow's rules run, per rules file: (stage, verb, wildcard or None)."""
    import re

    out = {}
    for f in (REPO / "workflow/rules").glob("*.smk"):
        out[f.stem] = set()
        for block in re.split(r"^rule ", f.read_text(), flags=re.M)[1:]:
            m = re.search(r'cli\("(\w+) ([\w-]+)"\)', block)
            if m:
                wc = re.search(r'code=lambda w: code\("[\w -]+", w\.(\w+)\)', block)
                part = re.search(r'code=(?:lambda w: )?code\(\s*"[\w -]+", part=\[?(\w+)', block)
                out[f.stem].add((*m.groups(), wc.group(1) if wc else part.group(1) if part else None))
    return out


def _parts(kind: str) -> list:
    """Every module a ``part=`` of the rules may name (the registries' modules: DVC tracks the union)."""
    from recon_restore.attack.attacks import ATTACKS
    from recon_restore.data.sources import SOURCES

    if kind == "SOURCE_MODULE":
        return [f"recon_restore.data.{m.partition(':')[0]}" for m in SOURCES.values()]
    return [f"recon_restore.attack.{m}" for m in ATTACKS.values()]


# DVC stage -> the rules files whose commands it runs
DVC_STAGE_RULES = {"data": ["data"], "dataset": ["dataset"], "restorers": ["restorers"], "evaluate": ["attack", "evaluate", "adapt"],
                   "report": ["report"], "robustness": ["robustness"], "defences": ["defences"]}


def test_dvc_deps_are_the_closure_of_each_stages_commands():
    """dvc.yaml tracks exactly the package sources that the stage's commands run (the same
    closures that the rules hash, with every restorer's module where a rule runs a restorer),
    so `dvc repro` and Snakemake rerun on the same changes."""
    from recon_restore import methods
    from recon_restore.fingerprint import closure_dirs, command_closure

    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert set(dvc["stages"]) == set(DVC_STAGE_RULES) | {"params"}
    rules = _rule_commands()
    for stage, files in DVC_STAGE_RULES.items():
        deps = sorted(d for d in dvc["stages"][stage]["deps"] if d.startswith("src/"))
        want = set()
        for f in files:
            for st, verb, wc in rules[f]:
                if wc in ("ATTACK_MODULE", "SOURCE_MODULE", "CROSS_MODULE"):
                    for part in _parts(wc):
                        want |= set(command_closure(st, verb, part))
                    continue
                for r in (methods.RESTORERS if wc else [None]):
                    want |= set(command_closure(st, verb, r and methods.kind_module(r)))
        assert deps == closure_dirs(want), stage


def test_a_command_hash_covers_its_own_command_and_restorer_only(tmp_path):
    """Editing Restormer or the EDM network changes no dataset job's code hash (720 minutes
    each at paper scale) and no other restorer's restoration; editing the attack's objective
    changes the dataset's; the closure follows imports inside the command's function."""
    import shutil

    from recon_restore import methods
    from recon_restore.attack import attacks
    from recon_restore.fingerprint import PACKAGE, command_closure, command_hash

    root = tmp_path / "recon_restore"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))

    def hashes():
        command_hash.cache_clear()
        command_closure.cache_clear()
        def module(c, r):  # a restorer's module, or the attack's where the rule names it (part=ATTACK_MODULE)
            return methods.kind_module(r) if r else attacks.module_of("kkt_binary") if c.startswith("dataset") else None

        return {(c, r): command_hash(*c.split(), module(c, r), root=root) for c, r in
                [("dataset shard", None), ("dataset wave", None), ("evaluate restore", "edm"), ("evaluate restore", "tv"),
                 ("evaluate restore", "restormer_real"), ("evaluate match", None), ("restorers train", "bfdncnn")]}

    before = hashes()
    for f in ("restorers/restormer.py", "restorers/edm/network.py"):
        (root / f).write_text((root / f).read_text() + "\n# edited\n")
    after = hashes()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {("evaluate restore", "edm"), ("evaluate restore", "restormer_real")}, changed
    (root / "attack/objective.py").write_text((root / "attack/objective.py").read_text() + "\n# edited\n")
    again = hashes()
    assert again[("dataset shard", None)] != after[("dataset shard", None)]
    assert again[("evaluate match", None)] == after[("evaluate match", None)]  # matching runs no attack code
    # the multiclass attack's module is not the binary attack's: editing it leaves the (binary) dataset alone
    (root / "attack/multiclass.py").write_text((root / "attack/multiclass.py").read_text() + "\n# edited\n")
    assert hashes() == again
    rel = {p.relative_to(PACKAGE).as_posix() for p in command_closure("evaluate", "restore", methods.kind_module("edm"))}
    assert "restorers/edm/sampler.py" in rel and "restorers/classical.py" not in rel and "report/build.py" not in rel
    command_hash.cache_clear()
    command_closure.cache_clear()


def test_every_rule_hashes_its_own_command():
    import re

    for f in (REPO / "workflow/rules").glob("*.smk"):
        for block in re.split(r"^rule ", f.read_text(), flags=re.M)[1:]:
            shell = re.search(r'cli\("(\w+ [\w-]+)"\)', block)
            code = re.search(r'code=(?:lambda w: )?code\(\s*"([\w -]+)"', block)
            assert bool(shell) == bool(code), (f.name, block[:40])
            if shell:
                assert shell.group(1) == code.group(1), (f.name, block[:40])  # each rule hashes the command it runs


def test_workflow_is_lint_clean_and_snakefmt_formatted():
    lint = sm("--lint", "--workflow-profile", "none", check=False)
    assert lint.returncode == 0 and "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    fmt = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/"], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed for DVC")
def test_dvc_sees_a_value_the_demo_inherits_from_paper(tmp_path):
    """The demo states only its differences from ``paper``; DVC still tracks every value it
    uses (params.resolved.yaml, the first stage's output): changing a paper value the demo
    inherits makes the demo's stages that read it stale, and one the demo overrides does not."""
    work = tmp_path / "repo"
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files + ["params.resolved.yaml"]:
        (work / f).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / f).is_file() and not (REPO / f).is_symlink():
            shutil.copy2(REPO / f, work / f)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    dvc_doc = yaml.safe_load((work / "dvc.yaml").read_text())
    for stage in dvc_doc["stages"].values():   # stand-ins for the outputs, so that `dvc commit` records a lock
        for kind in ("outs", "metrics", "plots"):
            for o in stage.get(kind, []):
                p = work / (next(iter(o)) if isinstance(o, dict) else o).replace("${preset}", "demo")
                if p.exists():
                    continue
                if p.suffix:
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text("{}" if p.suffix == ".json" else "rank,ssim\n0,1\n")
                else:
                    p.mkdir(parents=True)
                    (p / "x").write_text("x")

    def dvc(*args):
        p = subprocess.run([str(BIN / "dvc"), *args], cwd=work, env=ENV, capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    def stale():
        import json

        return {s for s, changes in json.loads(dvc("status", "--json")).items() if changes}

    dvc("commit", "-f")
    assert stale() == set()
    raw = yaml.safe_load((work / "params.yaml").read_text())
    assert "good_threshold" not in raw["presets"]["demo"]["evaluate"]
    assert "epochs" in raw["presets"]["demo"]["attack"]["train"]
    raw["presets"]["paper"]["evaluate"]["good_threshold"] = 0.45      # inherited by the demo
    raw["presets"]["paper"]["attack"]["train"]["epochs"] = 123        # overridden by the demo
    (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert stale() == {"params"}                                     # `dvc repro` runs it first
    p = subprocess.run([str(BIN / "recon-restore"), "params", "resolve"], cwd=work, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert stale() == {"params", "evaluate", "report"}
    raw["presets"]["paper"]["evaluate"]["good_threshold"] = 0.4
    (work / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    subprocess.run([str(BIN / "recon-restore"), "params", "resolve"], cwd=work, env=ENV, check=True, capture_output=True)
    assert stale() == {"params"}, "a paper value the demo overrides made a demo stage stale"
