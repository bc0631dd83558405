"""The defences study (issue "what protects training data", item 3): the registry and its
settings, weight decay as the gradient of the regularised loss, DP-SGD through Opacus (the
network as modules, determinism, the accounted budget), test accuracy outside the training
images' groups, the table from match files, and the target command: a setting that changes
nothing trains exactly the undefended network."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import BIN, ENV, REPO

from recon_restore.attack import attacks
from recon_restore.attack.model import Weights, init_weights, phi
from recon_restore.data.store import ImageSet, write_image_set
from recon_restore.defences import defences
from recon_restore.errors import UserError

BINARY = attacks.get({"method": "kkt_binary"})
MULTI = attacks.get({"method": "kkt_multiclass", "multiclass": {"multipliers": "per_class"}})


def test_settings_are_named_by_defence_and_value_and_bad_ones_fail_clearly():
    cfg = {"dp_sgd": {"epsilon": [8, 1.0], "delta": 1e-5}, "length": [0.1], "weight_decay": [1e-4, 0.01], "restorers": None}
    assert defences.settings(cfg) == ["weight_decay-0.0001", "weight_decay-0.01", "length-0.1", "dp_sgd-8", "dp_sgd-1"]
    assert defences.parse("dp_sgd-1e-05") == ("dp_sgd", 1e-5)
    assert defences.module_of("length-0.1") == "recon_restore.defences.length"
    assert defences.setting_params(cfg, "dp_sgd-8") == {"defence": "dp_sgd", "value": 8.0, "params": {"delta": 1e-5}}
    for bad, msg in (("dp_sgd", "expected <defence>-<value>"), ("dp_sgd-x", "expected <defence>-<value>"),
                     ("weightdecay-1", "did you mean 'weight_decay'")):
        with pytest.raises(UserError, match=msg):
            defences.parse(bad)
    with pytest.raises(UserError, match="defences.weight_decay"):
        defences.settings({"weight_decay": [0.0]})
    with pytest.raises(UserError, match="defences.dp_sgd.delta"):
        defences.settings({"dp_sgd": {"epsilon": [1.0], "delta": 1.5}})


@pytest.mark.parametrize("attack", [BINARY, MULTI], ids=["binary", "multiclass"])
def test_a_weight_decay_step_follows_the_gradient_of_the_regularised_loss(attack):
    g = torch.Generator().manual_seed(3)
    C = 3 if attack is MULTI else 1
    w = attack.init(1, 10, {"hidden": [6, 5], "bias": False, "init_std": 0.5}, C, g, torch.float64, "cpu")
    x = torch.randn(1, 8, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (1, 8), generator=g) if attack is MULTI else torch.randint(0, 2, (1, 8), generator=g).double() * 2 - 1
    wd, lr = 0.3, 0.05
    step = attack.train(w, x, y, "gd", lr, 1, weight_decay=wd).weights
    leaf = [t.clone().requires_grad_(True) for t in (w.W1, w.W2, w.w3)]
    from recon_restore.attack.multiclass import logits

    lw = Weights(*leaf)
    out = logits(lw, x)[0] if attack is MULTI else phi(lw, x)[0][:, None]
    loss = attack.loss(out, y[0]) + wd / 2 * sum(t.pow(2).sum() for t in leaf)
    grads = torch.autograd.grad(loss, leaf)
    for new, old, gr in zip((step.W1, step.W2, step.w3), (w.W1, w.W2, w.w3), grads):
        torch.testing.assert_close(new, old - lr * gr, rtol=1e-10, atol=1e-12)
    plain = attack.train(w, x, y, "gd", lr, 1).weights
    assert not torch.allclose(plain.W1, step.W1)


@pytest.mark.parametrize("attack", [BINARY, MULTI], ids=["binary", "multiclass"])
def test_the_dp_sgd_modules_compute_the_attack_network(attack):
    from recon_restore.defences.dp_sgd import from_module, to_module

    C = 4 if attack is MULTI else 1
    w = init_weights(1, 12, [7, 5], False, 0.3, torch.Generator().manual_seed(0), torch.float64, outputs=None if C == 1 else C)
    x = torch.randn(1, 9, 12, dtype=torch.float64)
    net = to_module(w)
    with torch.no_grad():
        got = net(x[0])
    if attack is BINARY:
        torch.testing.assert_close(got[:, 0], phi(w, x)[0])
    else:
        from recon_restore.attack.multiclass import logits

        torch.testing.assert_close(got, logits(w, x)[0])
    back = from_module(net, w)
    for a, b in zip((back.W1, back.W2, back.w3), (w.W1, w.W2, w.w3)):
        assert a.shape == b.shape and torch.equal(a, b)


def _toy_set(n=40, d=12, seed=0):
    from recon_restore.attack.evaluation import TrainingSet

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, d, generator=g)
    y = torch.where(x[0, :, 0] > 0, 1.0, -1.0)[None]
    return TrainingSet(np.arange(n), np.zeros((n, 1, 1, d), np.uint8), y[0].numpy(), np.arange(n), torch.zeros(d), x, y)


def test_dp_sgd_spends_its_budget_deterministically_and_less_noise_buys_accuracy():
    ts = _toy_set()
    cfg = {"dp_sgd": {"epsilon": [1.0], "delta": 1e-5, "accountant": "rdp", "max_grad_norm": 1.0, "batch": 10, "epochs": 30,
                      "optimizer": "adam", "lr": 0.01}}
    dp = defences.get("dp_sgd")
    net = {"hidden": [16, 16], "bias": False, "init_std": 0.1}
    out = {}
    for eps in (1.0, 100.0):  # (the PRV accountant needs minutes and GBs at epsilon 1e4)
        w = BINARY.init(1, 12, net, 1, torch.Generator().manual_seed(1), torch.float32, "cpu")
        out[eps] = dp.train(BINARY, w, ts, {}, eps, cfg, seed=5)
        res, extra = out[eps]
        assert extra["sample_rate"] == 0.25 and extra["steps"] == 120 and extra["delta"] == 1e-5
        assert abs(extra["epsilon"] - eps) / eps < 0.05, extra  # Opacus accounts what its noise was chosen for
    assert out[1.0][1]["noise_multiplier"] > 5 * out[100.0][1]["noise_multiplier"]
    # with little noise DP-SGD learns the toy rule; at epsilon 1 on 40 images it cannot as well
    print({e: float(r.accuracy[0]) for e, (r, _) in out.items()})
    assert float(out[100.0][0].accuracy[0]) >= 0.9 and float(out[100.0][0].accuracy[0]) > float(out[1.0][0].accuracy[0])
    w = BINARY.init(1, 12, net, 1, torch.Generator().manual_seed(1), torch.float32, "cpu")
    again = dp.train(BINARY, w, ts, {}, 1.0, cfg, seed=5)[0]
    assert torch.equal(again.weights.W1, out[1.0][0].weights.W1)  # the same seed, the same noise and batches


class _SignOfFirstPixel:
    """A stand-in network's predictions: +1 where the first pixel is above the mean."""

    def training_labels(self, labels, classes):
        return np.asarray(labels)

    def predict(self, w, x):
        return torch.where(x[..., 0] > 0, 1.0, -1.0).double()


def test_test_accuracy_counts_only_images_outside_the_training_groups():
    from recon_restore.defences.table import test_accuracy

    imgs = np.zeros((8, 1, 2, 2), np.uint8)
    imgs[:, 0, 0, 0] = [200, 200, 10, 10, 200, 10, 200, 10]
    labels = np.array([1, -1, -1, 1, 1, -1, -1, 1], np.int8)  # the stand-in is right on 0, 2, 4, 5
    held = ImageSet(imgs, labels, np.arange(100, 108), groups=np.array([0, 0, 1, 1, 2, 3, 4, 5]))
    w = Weights(torch.zeros(1, 1, 4), torch.zeros(1, 1, 1), torch.zeros(1, 1))
    tgt = {"ids": torch.tensor([100]), "mean": torch.full((1, 2, 2), 0.5), "w": w}
    acc, n = test_accuracy(_SignOfFirstPixel(), tgt, held)
    assert n == 6 and acc == pytest.approx(3 / 6)  # rows 2..7: right on 2, 4, 5; group 0 (rows 0, 1) left out
    with pytest.raises(UserError, match="does not hold"):
        test_accuracy(_SignOfFirstPixel(), dict(tgt, ids=torch.tensor([5])), held)


def _match(method, ssim_train, null_scale, runs=3, images=6, galleries=2, seed=0):
    from recon_restore.evaluate.match_file import MatchData

    rng = np.random.default_rng(seed)
    per = images
    run = np.repeat(np.arange(runs), per)
    assigned = np.tile(np.arange(images), runs)
    ssim = np.clip(np.tile(ssim_train, runs) + rng.normal(0, 0.01, runs * per), -1, 1)
    null_ssim = rng.uniform(0, null_scale, (galleries, runs * per))
    return MatchData(method, "ssim", run, np.arange(runs), assigned, ssim, np.zeros_like(ssim), np.zeros_like(ssim),
                     np.zeros((runs, images)), np.tile(assigned, (galleries, 1)), null_ssim, np.zeros((galleries, runs, images)))


def test_the_table_reads_every_setting_and_names_the_best_restorer(tmp_path, tiny_params):
    from recon_restore.attack.target_file import save_target
    from recon_restore.evaluate.match_file import read_match, write_match

    rng = np.random.default_rng(0)
    held = ImageSet(rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8), np.repeat([-1, 1], 10).astype(np.int8), np.arange(20))
    write_image_set(tmp_path / "heldout.h5", held, {})
    w = init_weights(1, 3 * 32 * 32, [8, 8], False, 0.1, torch.Generator().manual_seed(0))
    ids = np.array([0, 1, 2, 10, 11, 12])
    train = [0.9, 0.8, 0.3, 0.7, 0.2, 0.5]
    args = []
    for k, s in enumerate(["none", "weight_decay-0.001", "dp_sgd-8"]):
        save_target(tmp_path / f"{s}.pt", w, held.images[ids], held.labels[ids], ids, torch.zeros(3, 32, 32),
                    {"accuracy": 1.0, **({"epsilon": 7.99, "delta": 1e-5} if s.startswith("dp") else {})}, {})
        (tmp_path / s).mkdir()
        shrink = [0, 0.3, 0.6][k]
        write_match(tmp_path / s / "plain.h5", _match("plain", np.array(train) - shrink, 0.45, seed=k), {})
        write_match(tmp_path / s / "bfdncnn.h5", _match("bfdncnn", np.array(train) - shrink + 0.1, 0.3, seed=k + 9), {})
        write_match(tmp_path / s / "tv.h5", _match("tv", np.array(train) - shrink, 0.6, seed=k + 5), {})
        args.append((s, tmp_path / f"{s}.pt", tmp_path / s))
    out = tmp_path / "out"

    def table(targets, extra=()):
        return subprocess.run([str(BIN / "recon-restore"), "defences", "table", "--params", str(tiny_params), "--heldout",
                               str(tmp_path / "heldout.h5"), "--target", *targets, "--matches", *[f"{s}={d}" for s, _, d in args],
                               "--methods", "plain", "tv", "bfdncnn", "--out-csv", str(out / "d.csv"), "--out-md", str(out / "d.md"),
                               "--out-fig", str(out / "d.png"), *extra], env=ENV, capture_output=True, text=True)

    p = table([f"{s}={t}" for s, t, _ in args])
    assert p.returncode == 0, p.stderr
    rows = pd.read_csv(out / "d.csv")
    assert list(rows.setting.unique()) == ["none", "weight_decay-0.001", "dp_sgd-8"]
    for r in rows.itertuples():
        c = read_match(tmp_path / r.setting / f"{r.method}.h5").counts(0.4, n_boot=0)
        assert r.good == c["good"] and r.null == pytest.approx(c["null_mean"], abs=0.01) and r.tpr_1 == pytest.approx(c["tpr_1"], abs=1e-3)
        assert r.test_images == 14  # the 20 held-out images less the 6 trained on
    assert rows.set_index(["setting", "method"]).loc[("none", "plain"), "good"] > rows.set_index(["setting", "method"]).loc[
        ("dp_sgd-8", "plain"), "good"]
    md = (out / "d.md").read_text()
    best = {ln.split("|")[1].strip(): ln.split("|")[8].strip() for ln in md.split("Every method")[0].splitlines()
            if ln.startswith("| ") and "good" not in ln}
    excess = rows[rows.method != "plain"].sort_values("excess").groupby("setting").tail(1).set_index("setting").label
    for s in ("none", "weight_decay", "dp_sgd"):
        assert best[s] == excess[[k for k in excess.index if k.startswith(s)][0]]  # the best restorer: largest excess
    assert "accounted 7.99" in md and (out / "d.png").read_bytes()[:4] == b"\x89PNG"
    # a setting trained on other images, or a missing match file: one clear line, nothing written
    other = tmp_path / "other.pt"
    save_target(other, w, held.images[ids], held.labels[ids], ids + 1, torch.zeros(3, 32, 32), {}, {})
    p = table([f"none={args[0][1]}", f"weight_decay-0.001={other}", f"dp_sgd-8={args[2][1]}"], ["--overwrite"])
    assert p.returncode == 2 and "trained on other images" in p.stderr and str(other) in p.stderr
    (tmp_path / "dp_sgd-8" / "tv.h5").unlink()
    p = table([f"{s}={t}" for s, t, _ in args], ["--overwrite"])
    assert p.returncode == 2 and "tv.h5: no match file of method tv for setting dp_sgd-8" in p.stderr
    p = table([f"{s}={t}" for s, t, _ in args])
    assert p.returncode == 2 and "refusing to overwrite" in p.stderr


def test_each_setting_trains_from_the_undefended_networks_images_and_draw(tmp_path, tiny_doc):
    """``defences target``: the same images and initial weights as ``attack target``; a length of
    1 (every epoch) gives exactly the undefended network; weight decay and DP-SGD differ from it
    and record what they did."""
    from recon_restore.attack.target_file import load_target

    p = tiny_doc["presets"]["demo"]
    p["defences"] = {"weight_decay": [0.5], "length": [1.0, 0.05],
                     "dp_sgd": dict(p["defences"]["dp_sgd"], epsilon=[8.0], batch=4, epochs=2), "restorers": ["bfdncnn"]}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_doc, sort_keys=False))
    rng = np.random.default_rng(1)
    held = ImageSet(rng.integers(0, 256, (30, 3, 32, 32), dtype=np.uint8), np.repeat([-1, 1], 15).astype(np.int8), np.arange(30))
    write_image_set(tmp_path / "heldout.h5", held, {})

    def run(*args):
        return subprocess.run([str(BIN / "recon-restore"), *args, "--params", str(params)], env=ENV, capture_output=True, text=True,
                              cwd=tmp_path)

    assert run("attack", "target", "--heldout", "heldout.h5", "--out", "none.pt").returncode == 0
    settings = run("defences", "settings").stdout.split()
    assert settings == ["weight_decay-0.5", "length-1", "length-0.05", "dp_sgd-8"]
    for s in settings:
        r = run("defences", "target", "--setting", s, "--heldout", "heldout.h5", "--out", f"{s}.pt")
        assert r.returncode == 0, r.stderr
    base = load_target(tmp_path / "none.pt")
    got = {s: load_target(tmp_path / f"{s}.pt") for s in settings}
    for s, t in got.items():
        assert torch.equal(t["ids"], base["ids"]) and torch.equal(t["mean"], base["mean"])
        assert t["stats"]["defence"] == s.split("-")[0] and t["provenance"]["defence"] == s
    assert torch.equal(got["length-1"]["w"].W1, base["w"].W1)  # nothing changed: the undefended network, bit for bit
    for s in ("weight_decay-0.5", "length-0.05", "dp_sgd-8"):
        assert not torch.allclose(got[s]["w"].W2, base["w"].W2), s
    assert got["weight_decay-0.5"]["w"].W2.norm() < base["w"].W2.norm()
    assert got["length-0.05"]["stats"]["epochs"] == 10
    dp = got["dp_sgd-8"]["stats"]
    assert dp["delta"] == 1e-5 and dp["accountant"] == "prv" and abs(dp["epsilon"] - 8) < 0.4 and dp["steps"] == 2 * 2
    r = run("defences", "target", "--setting", "dp_sgd-3", "--heldout", "heldout.h5", "--out", "x.pt")
    assert r.returncode == 2 and "not a setting of params defences" in r.stderr and not (tmp_path / "x.pt").exists()


def test_the_defences_rules_plan_every_setting_and_method(tmp_path):
    """``snakemake defences_all`` (dry run, demo preset): per setting one target, the evaluation's
    run batches, a collect, every restorer and every method's match, then one table."""
    from recon_restore import methods
    from recon_restore.config import load_params
    from recon_restore.workflow import Plan

    plan = Plan(load_params(REPO / "params.yaml", "demo"))
    p = subprocess.run([str(BIN / "snakemake"), "-n", "defences_all", "--workflow-profile", "none", "--config", "preset=demo"],
                       cwd=REPO, env=ENV, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    stats = (p.stdout + p.stderr).split("Job stats:")[1].split("\n\n")[0].splitlines()
    jobs = {w[0]: int(w[1]) for w in map(str.split, stats) if len(w) == 2 and w[1].isdigit()}
    S, M = len(plan.defence_settings()), plan.defence_methods()
    R = len([r for r in methods.restorers(plan.cfg["restorers"]) if set(methods.methods_of(r)) & set(M)])
    assert jobs["defences_target"] == S and jobs["defences_runs"] == S * plan.eval_batches and jobs["defences_collect"] == S
    assert jobs["defences_restore"] == S * R and jobs["defences_match"] == S * len(M) and jobs["defences_table"] == 1


def test_the_non_private_control_trains_like_dp_sgd_without_clipping_or_noise():
    """``minibatch``: DP-SGD's optimizer, lr and batch size with neither clipping nor noise; it learns
    the toy rule that DP-SGD at epsilon 1 cannot, and the same seed gives the same network."""
    cfg = {"minibatch": [30], "dp_sgd": {"epsilon": [], "delta": 1e-5, "batch": 10, "optimizer": "adam", "lr": 0.01}}
    assert defences.settings(cfg) == ["minibatch-30"] and defences.module_of("minibatch-30") == "recon_restore.defences.minibatch"
    with pytest.raises(UserError, match="defences.minibatch"):
        defences.settings(dict(cfg, minibatch=[2.5]))
    ts, net = _toy_set(), {"hidden": [16, 16], "bias": False, "init_std": 0.1}
    runs = []
    for _ in range(2):
        w = BINARY.init(1, 12, net, 1, torch.Generator().manual_seed(1), torch.float32, "cpu")
        runs.append(defences.get("minibatch").train(BINARY, w, ts, {}, 30.0, cfg, seed=5))
    res, extra = runs[0]
    assert extra == {"epochs": 30, "batch": 10, "optimizer": "adam"} and float(res.accuracy[0]) >= 0.95
    assert torch.equal(res.weights.W1, runs[1][0].weights.W1)


def test_each_defence_states_its_training_epochs_for_the_plan():
    """The compute plan asks each defence how many epochs its training makes (no defence names in
    the plan): weight decay trains the undefended epochs, length a fraction, DP-SGD its own
    epochs, its control the value; the plan's target FLOPs follow."""
    from recon_restore.config import load_params
    from recon_restore.defences.defences import get
    from recon_restore.plan.compute import jobs

    cfg = load_params(REPO / "params.yaml", "paper").cfg
    train, d = cfg["evaluate"]["train"], cfg["defences"]
    assert get("weight_decay").epochs(train, 1e-3, d) == train["epochs"]
    assert get("length").epochs(train, 0.1, d) == round(0.1 * train["epochs"])
    assert get("dp_sgd").epochs(train, 8.0, d) == d["dp_sgd"]["epochs"] and get("minibatch").epochs(train, 200, d) == 200
    t = {j.what: j.flops for j in jobs(cfg, defences=True) if j.rule == "defences_target"}
    base = next(j.flops for j in jobs(cfg) if j.rule == "attack_target")
    assert t["weight_decay-0.001"] == pytest.approx(base) and t["length-0.1"] == pytest.approx(base / 10)
    assert t["dp_sgd-8"] == pytest.approx(base * d["dp_sgd"]["epochs"] / train["epochs"])
