"""One interface per kind of part (docs/extending.md): a restorer is one module, one line in
the methods list and one params section. A toy restorer added to a copy of the repository
that way, and in no other place, runs through restoration, matching, the report, the
workflow's rules and the plan; and no code outside the registry branches on a restorer's
name."""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import BIN, ENV, REPO, copy_repo

from recon_restore import methods
from recon_restore.cli import main

TOY_MODULE = '''"""A toy restorer (the registry test): a k x k box blur, k = params restorers.toy.size."""

import torch.nn.functional as F

from .base import Restored, Restorer


class BoxBlur(Restorer):
    def restore(self, images, rows, seed, batch, progress=False):
        k = self.section["size"]
        x = F.pad(images.float(), (k // 2,) * 4, mode="replicate")
        return Restored({self.name: F.avg_pool2d(x, k, stride=1).clamp(0, 1)})

    def restore_flops(self):
        return float(self.section["size"] ** 2 * self.spec.dim)


RESTORER = BoxBlur
'''
TOY_LINE = '    Method("toy", "Toy box blur", "toy", kind="toy"),\n'


def _add_toy(repo: Path, params: Path) -> None:
    """The three places: the module, the registry line, the params section."""
    (repo / "src/recon_restore/restorers/toy.py").write_text(TOY_MODULE)
    reg = repo / "src/recon_restore/methods.py"
    text = reg.read_text()
    core = text.index("CORE: tuple[Method, ...] = (")
    end = text.index("\n)\n", core)
    reg.write_text(text[: end + 1] + TOY_LINE + text[end + 1 :])
    for p in (repo / "params.yaml", params):
        doc = yaml.safe_load(p.read_text())
        doc["presets"]["demo"]["restorers"]["toy"] = {"size": 3}
        p.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.mark.slow
def test_a_toy_restorer_needs_one_module_one_registry_line_and_one_params_section(tmp_path, tiny_doc):
    o = tmp_path / "out"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    P = ["--params", params]
    run = lambda *a: main([str(x) for x in a])  # noqa: E731  (the unchanged stages, in process)
    assert run("data", "prepare", *P, "--pool", o / "pool.h5", "--heldout", o / "held.h5") == 0
    assert run("attack", "target", *P, "--heldout", o / "held.h5", "--out", o / "target.pt") == 0
    for b in (0, 1):
        assert run("attack", "runs", *P, "--target", o / "target.pt", "--batch", b, "--out", o / f"runs-{b}.h5") == 0
    assert run("evaluate", "collect", *P, "--target", o / "target.pt", "--runs", o / "runs-0.h5", o / "runs-1.h5", "--out", o / "plain.h5") == 0
    assert run("evaluate", "galleries", *P, "--target", o / "target.pt", "--heldout", o / "held.h5", "--pool", o / "pool.h5",
               "--out", o / "galleries.h5") == 0

    repo = copy_repo(tmp_path / "repo")
    _add_toy(repo, params)
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True, check=True).stdout.split("\n")
    assert sorted(line[3:] for line in changed if line) == ["params.yaml", "src/recon_restore/methods.py",
                                                            "src/recon_restore/restorers/toy.py"]
    env = dict(ENV, PYTHONPATH=str(repo / "src"))

    def cli(*a):
        p = subprocess.run([sys.executable, "-m", "recon_restore", *map(str, a)], cwd=repo, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-3000:]
        return p.stdout

    common = ["--target", o / "target.pt", "--plain", o / "plain.h5", "--galleries", o / "galleries.h5"]
    cli("evaluate", "restore", *P, "--restorer", "toy", "--plain", o / "plain.h5", "--out", o / "r-toy.h5")
    cli("evaluate", "match", *P, "--method", "toy", *common, "--restored", o / "r-toy.h5", "--out", o / "m-toy.h5")
    cli("evaluate", "match", *P, "--method", "plain", *common, "--out", o / "m-plain.h5")
    cli("report", "build", *P, "--target", o / "target.pt", "--plain", o / "plain.h5", "--restored", o / "r-toy.h5",
        "--matches", o / "m-plain.h5", o / "m-toy.h5", "--out-dir", o / "report")
    cli("plan", *P, "--json", o / "plan.json")

    with h5py.File(o / "plain.h5") as f:
        plain = torch.from_numpy(f["images"][()]).float()
    with h5py.File(o / "r-toy.h5") as f:  # the restorations are the box blur of each reconstruction
        toy = f["toy"][()]
        assert f.attrs["restorer"] == "toy"
    blur = F.avg_pool2d(F.pad(plain, (1, 1, 1, 1), mode="replicate"), 3, stride=1).clamp(0, 1).numpy()
    assert np.allclose(toy, blur, atol=1e-6) and not np.allclose(toy, plain.numpy(), atol=1e-3)
    metrics = json.loads((o / "report" / "metrics.json").read_text())
    t = metrics["methods"]["toy"]
    assert {"good", "null_mean", "excess"} <= set(t) and t["excess"] == pytest.approx(t["good"] - t["null_mean"])
    assert "Toy box blur" in (o / "report" / "tables" / "summary.md").read_text()
    plan = json.loads((o / "plan.json").read_text())
    job = [j for j in plan["jobs"] if j["job"] == "toy"]
    n = len(plain)
    assert len(job) == 1 and job[0]["rule"] == "evaluate_restore" and job[0]["flops"] == 9 * 3 * 32 * 32 * n
    # the workflow's rules read the registry: the toy's restoration and match jobs are planned
    dry = subprocess.run([str(BIN / "snakemake"), "-n", "--cores", "1", "--workflow-profile", "none", "--forceall",
                          "results/demo/evaluate/match/toy.h5"], cwd=repo, env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert re.search(r"evaluate_restore\s+1", dry.stdout) and re.search(r"evaluate_match\s+1", dry.stdout), dry.stdout


def _string_literals(path: Path):
    """The module's string constants, except ``__all__``'s (names of functions, not of restorers)."""
    tree = ast.parse(path.read_text())
    exported = {id(c) for n in ast.walk(tree) if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
                for c in ast.walk(n.value)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in exported:
            yield node.lineno, node.value


def test_no_code_outside_the_registry_branches_on_a_restorer_name():
    """String literals naming a restorer or a method (or a name prefix such as 'restormer_') appear
    in src/ and workflow/ only in the registry (methods.py) and as params keys; a kind's module
    may name the variants the registry gives it (the classical denoisers), and the benchmarks
    name the networks they time."""
    names = (set(methods.NAMES) | set(methods.RESTORERS)) - {"plain"}
    prefixes = ("restormer_", "edm_", "n2n_", "n2c_", "bfdncnn_")
    schema = yaml.safe_load((REPO / "src/recon_restore/schemas/params.schema.yaml").read_text())
    keys = set()

    def walk(node):
        if isinstance(node, dict):
            keys.update(k for k in node.get("properties", {}) if isinstance(k, str))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    found = []
    for f in sorted((REPO / "src/recon_restore").rglob("*.py")):
        rel = f.relative_to(REPO).as_posix()
        if f.name == "methods.py" or "/bench/" in rel:
            continue
        variants = {m.variant for m in methods.METHODS if m.kind and rel.endswith(m.kind.replace(".", "/") + ".py")}
        for line, v in _string_literals(f):
            if (v in names or v.startswith(prefixes)) and v not in keys and v not in variants:
                found.append(f"{rel}:{line}: {v!r}")
    for f in sorted((REPO / "workflow").rglob("*.smk")):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            for v in re.findall(r'["\']([\w-]+)["\']', line):
                if v in names or v.startswith(prefixes):
                    found.append(f"{f.relative_to(REPO)}:{i}: {v!r}")
    assert not found, "\n".join(found)
