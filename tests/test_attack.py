import shutil

import numpy as np
import pytest
import torch

from conftest import CIFAR_SUBSET, requires_cifar_subset
from recon_restore.attack import Hparams, ReconConfig, TargetMLP, init_weights, reconstruction_loss, train_target
from recon_restore.attack.reconstruct import reconstruct
from recon_restore.attack.model import Weights, phi, surrogate_relu
from recon_restore.attack.objective import autograd_objective, candidate_labels, closed_form
from recon_restore.attack import optim
from recon_restore.attack.optim import BatchedAdadelta, BatchedSGD

D64 = torch.float64


def _setup(R=3, m=6, d=20, h=(15, 12), bias=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = init_weights(R, d, list(h), bias=bias, init_std=0.3, generator=g, dtype=D64)
    x = torch.randn(R, m, d, generator=g, dtype=D64) * 0.7
    lam = torch.rand(R, m, generator=g, dtype=D64)
    alpha = torch.tensor([5.0, 20.0, 100.0][:R], dtype=D64)
    lmin = torch.tensor([0.1, 0.5, 0.9][:R], dtype=D64)
    return w, x, lam, candidate_labels(m, D64), alpha, lmin


def test_surrogate_forward_is_exact_relu_and_backward_is_sigmoid():
    z = torch.linspace(-3, 3, 101, dtype=D64, requires_grad=True)
    a = surrogate_relu(z, 7.0)
    assert torch.equal(a.detach(), torch.relu(z.detach()))
    (g,) = torch.autograd.grad(a.sum(), z, create_graph=True)
    assert torch.allclose(g, torch.sigmoid(7.0 * z.detach()), atol=1e-14)
    (g2,) = torch.autograd.grad(g.sum(), z)
    s = torch.sigmoid(7.0 * z.detach())
    assert torch.allclose(g2, 7.0 * s * (1 - s), atol=1e-12)
    model = TargetMLP(20, [15, 12])
    x = torch.randn(5, 20)
    assert torch.equal(model(x, surrogate_alpha=13.0), model(x))


@pytest.mark.parametrize("bias", [False, True])
def test_closed_form_equals_autograd(bias):
    w, x, lam, y, alpha, lmin = _setup(bias=bias)
    a = closed_form(w, x, lam, y, alpha, lmin)
    b = autograd_objective(w, x, lam, y, alpha, lmin)
    for name in ("stationarity", "box", "lam", "grad_x", "grad_lam"):
        A, B = getattr(a, name), getattr(b, name)
        assert (A - B).norm() <= 1e-10 * max(1.0, B.norm()), name



def test_closed_form_equals_autograd_with_one_shared_network():
    """The evaluation setting: R runs (their own candidates and hyperparameters) on one target."""
    from dataclasses import replace

    w, x, lam, y, alpha, lmin = _setup(bias=True)
    shared = replace(w, W1=w.W1[:1], W2=w.W2[:1], w3=w.w3[:1], b1=w.b1[:1])
    a = closed_form(shared, x, lam, y, alpha, lmin)
    b = autograd_objective(shared, x, lam, y, alpha, lmin)
    for name in ("stationarity", "box", "lam", "grad_x", "grad_lam"):
        A, B = getattr(a, name), getattr(b, name)
        assert (A - B).norm() <= 1e-10 * max(1.0, B.norm()), name
    # run 2 on the shared network equals run 2 alone
    alone = autograd_objective(shared, x[2:], lam[2:], y, alpha[2:], lmin[2:])
    assert torch.allclose(b.grad_x[2], alone.grad_x[0], rtol=1e-12, atol=0)


def test_objective_parts_follow_the_definition():
    """1/m factor, unweighted sum over all parameter tensors, box prior, 5 relu(l_min - l)^2."""
    w, x, lam, y, alpha, lmin = _setup(R=1, m=4, d=6, h=(5, 4))
    x = x * 0.1  # inside the box, then two pixels outside it
    x[0, 0, 0] = 1.5
    x[0, 1, 1] = -1.25
    lam[0, 0] = 0.05
    model = TargetMLP.from_weights(w)
    params = list(model.parameters())
    phis = []
    for i in range(4):
        model.zero_grad()
        model(x[0, i : i + 1], surrogate_alpha=float(alpha[0])).sum().backward()
        phis.append([p.grad.clone() for p in params])
    g = [sum(lam[0, i] * y[i] * phis[i][k] for i in range(4)) / 4 for k in range(len(params))]
    stat = sum(((p.detach() - gk) ** 2).sum() for p, gk in zip(params, g))
    total, parts = reconstruction_loss(model, x[0], lam[0], y, float(alpha[0]), float(lmin[0]))
    assert float(parts["stationarity"].detach()) == pytest.approx(float(stat), rel=1e-12)
    assert float(parts["box"]) == pytest.approx(0.5**2 + 0.25**2)
    assert float(parts["lambda"]) == pytest.approx(5 * float(torch.relu(lmin[0] - lam[0]).pow(2).sum()))


def test_batched_optimisers_equal_torch():
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(2, 5, generator=g, dtype=D64)
    grads = [torch.randn(2, 5, generator=g, dtype=D64) for _ in range(4)]
    for ours, theirs in ((BatchedSGD(torch.tensor([0.1, 0.1], dtype=D64), 0.9), lambda p: torch.optim.SGD([p], lr=0.1, momentum=0.9)),
                         (BatchedAdadelta(torch.tensor([1.0, 1.0], dtype=D64)), lambda p: torch.optim.Adadelta([p], lr=1.0))):
        a = p0.clone()
        b = p0.clone().requires_grad_(True)
        opt = theirs(b)
        for gr in grads:
            ours.step(a, gr)
            b.grad = gr.clone()
            opt.step()
        assert torch.allclose(a, b.detach(), atol=1e-13)


def _recon(w, R, cfg, seeds, lr=None, **hp):
    H = lambda v: torch.full((R,), v, dtype=D64)  # noqa: E731
    hps = Hparams(H(0.5) if lr is None else lr, H(0.5), H(1e-3), H(0.3), H(20.0))
    return reconstruct(w, hps, cfg, w.W1.shape[-1], [torch.Generator().manual_seed(s) for s in seeds], **hp)


def test_batched_reconstruction_equals_one_run_at_a_time():
    g = torch.Generator().manual_seed(0)
    w = init_weights(3, 12, [10, 8], init_std=0.3, generator=g, dtype=D64)
    cfg = ReconConfig(candidates_per_class=3, iterations=40, snapshots=[20, 40], optimizer="adadelta")
    batched = _recon(w, 3, cfg, [1, 2, 3])
    for r in range(3):
        single = _recon(w.select(torch.tensor([r])), 1, cfg, [r + 1])
        for it in (20, 40):
            assert torch.allclose(batched.snapshots[it][r], single.snapshots[it][0], atol=1e-6)
        assert torch.allclose(batched.lam[r], single.lam[0], atol=1e-10)


def test_shared_network_with_many_hyperparameter_draws():
    g = torch.Generator().manual_seed(0)
    w = init_weights(1, 12, [10, 8], init_std=0.3, generator=g, dtype=D64)
    cfg = ReconConfig(candidates_per_class=3, iterations=10, snapshots=[10], optimizer="sgd")
    res = _recon(w, 4, cfg, [0, 1, 2, 3], lr=torch.tensor([0.01, 0.1, 0.2, 0.3], dtype=D64))
    assert res.snapshots[10].shape == (4, 6, 12) and res.status == ["ok"] * 4
    assert not torch.allclose(res.snapshots[10][0], res.snapshots[10][1])


def test_a_diverging_run_fails_alone():
    g = torch.Generator().manual_seed(0)
    w = init_weights(1, 12, [10, 8], init_std=0.3, generator=g, dtype=D64)
    cfg = ReconConfig(candidates_per_class=3, iterations=30, snapshots=[30], optimizer="sgd")
    res = _recon(w, 3, cfg, [0, 1, 2], lr=torch.tensor([0.05, 1e30, 0.05], dtype=D64))
    assert res.status == ["ok", "failed", "ok"]
    assert torch.isnan(res.snapshots[30][1]).all() and torch.isfinite(res.snapshots[30][[0, 2]]).all()
    ref = _recon(w, 1, cfg, [2], lr=torch.tensor([0.05], dtype=D64))
    assert torch.allclose(res.snapshots[30][2], ref.snapshots[30][0], atol=1e-6)


def test_blind_abort_stops_runs_above_threshold():
    g = torch.Generator().manual_seed(0)
    w = init_weights(1, 30, [40, 40], init_std=1e-4, generator=g, dtype=D64)
    x = torch.randn(1, 6, 30, generator=g, dtype=D64) * 0.3
    y = torch.tensor([[-1.0] * 3 + [1.0] * 3], dtype=D64)
    trained = train_target(w, x, y, "adadelta", 1.0, 300).weights
    cfg = ReconConfig(3, 60, [20, 60], "adadelta", abort_at=50, abort_criterion="blind", abort_threshold=0.9)
    H = lambda v: torch.full((2,), v, dtype=D64)  # noqa: E731
    hp = Hparams(torch.tensor([1e-12, 1.0], dtype=D64), H(1.0), H(1e-3), H(0.3), H(20.0))
    res = reconstruct(trained, hp, cfg, 30, [torch.Generator().manual_seed(s) for s in (0, 1)])
    # a run that never moved still explains none of W1; a working run explains much of it
    assert res.abort_score[0] > 0.99 and res.abort_score[1] < 0.7
    assert res.status == ["aborted", "ok"] and int(res.stopped_at[0]) == 50
    assert torch.isnan(res.snapshots[60][0]).all() and torch.isfinite(res.snapshots[60][1]).all()


def test_killed_reconstruction_resumes_identically(tmp_path):
    g = torch.Generator().manual_seed(0)
    w = init_weights(2, 12, [10, 8], init_std=0.3, generator=g, dtype=D64)
    cfg = ReconConfig(3, 30, [10, 30], "sgd")
    ck = tmp_path / "state.pt"
    full = _recon(w, 2, cfg, [5, 6])

    class Killed(Exception):
        pass

    def kill(it, active):
        if it == 25:
            raise Killed

    with pytest.raises(Killed):
        _recon(w, 2, cfg, [5, 6], checkpoint=ck, checkpoint_every=20, on_step=kill)
    assert ck.exists()
    resumed = _recon(w, 2, cfg, [5, 6], checkpoint=ck, checkpoint_every=20)
    for it in (10, 30):
        assert torch.allclose(full.snapshots[it], resumed.snapshots[it], atol=1e-12, equal_nan=True)


def test_batched_training_equals_single_and_fits():
    g = torch.Generator().manual_seed(0)
    w = init_weights(2, 20, [16, 16], init_std=1e-4, generator=g, dtype=D64)
    x = torch.randn(2, 8, 20, generator=g, dtype=D64)
    y = torch.tensor([[-1.0] * 4 + [1.0] * 4] * 2, dtype=D64)
    both = train_target(w, x, y, "adadelta", 1.0, 150)
    one = train_target(w.select(torch.tensor([1])), x[1:], y[1:], "adadelta", 1.0, 150)
    assert torch.allclose(both.weights.W1[1], one.weights.W1[0], atol=1e-10)
    assert (both.accuracy == 1).all() and (both.min_margin > 0).all() and not both.failed.any()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("optimizer,lr", [("adadelta", 1.0), ("gd", 0.05)])
def test_training_equals_autograd_with_torch_optimisers(bias, optimizer, lr):
    """Closed-form gradients + batched updates = autograd + torch.optim, run by run."""
    g = torch.Generator().manual_seed(1)
    w = init_weights(2, 30, [10, 12], bias=bias, init_std=1e-4, generator=g, dtype=D64)
    x = torch.randn(2, 8, 30, generator=g, dtype=D64) * 0.3
    y = torch.tensor([[1.0, -1.0] * 4] * 2, dtype=D64)
    ours = train_target(w, x, y, optimizer, lr, 60)
    for r in range(2):
        model = TargetMLP.from_weights(w, r)
        opt = (torch.optim.Adadelta if optimizer == "adadelta" else torch.optim.SGD)(model.parameters(), lr=lr)
        for _ in range(60):
            opt.zero_grad()
            torch.nn.functional.softplus(-y[r] * model(x[r])).mean().backward()
            opt.step()
        ref = model.weights()
        for a, b in zip(ours.weights.tensors(), ref.tensors()):
            assert torch.allclose(a[r], b[0], rtol=1e-10, atol=1e-14)
    assert ours.loss[0] < 0.6931  # it trained: below log 2, the loss at Phi = 0


@pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None, reason="torch.compile needs a C++ compiler on CPU")
@pytest.mark.parametrize("train_opt,recon_opt", [("adadelta", "adadelta"), ("gd", "sgd")])
def test_fused_updates_equal_eager(train_opt, recon_opt):
    """params `compile`: the torch.compile'd updates give the eager results (within rounding)."""
    g = torch.Generator().manual_seed(2)
    w = init_weights(3, 24, [8, 8], bias=True, init_std=1e-4, generator=g, dtype=D64)
    x = torch.randn(3, 6, 24, generator=g, dtype=D64)
    y = torch.tensor([[1.0, -1.0] * 3] * 3, dtype=D64)
    cfg = ReconConfig(candidates_per_class=3, iterations=20, snapshots=[20], optimizer=recon_opt)
    runs = {}
    for on in (False, True):
        optim.set_compile(on)
        try:
            tr = train_target(w, x, y, train_opt, 1.0 if train_opt == "adadelta" else 0.05, 40)
            rc = _recon(tr.weights, 3, cfg, [1, 2, 3], lr=torch.full((3,), 0.05, dtype=D64))
            assert rc.status == ["ok"] * 3
            runs[on] = (tr, rc, optim.compiling())
        finally:
            optim.set_compile(False)
    assert runs[True][2], "torch.compile failed and fell back to eager"
    for a, b in zip(runs[True][0].weights.tensors(), runs[False][0].weights.tensors()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    assert torch.allclose(runs[True][1].snapshots[20], runs[False][1].snapshots[20], rtol=1e-6, atol=1e-9)


def test_failed_compilation_falls_back_to_eager_once(monkeypatch, caplog):
    """No C++ compiler (or any compile error): one warning, then the eager update, same result."""
    def broken_compile(fn, **kw):
        def call(*a):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(optim, "_COMPILE", {"on": False, "fns": {}, "broken": False})
    p0 = torch.randn(2, 5, dtype=D64)
    grads = [torch.randn(2, 5, dtype=D64) for _ in range(3)]
    a, b = p0.clone(), p0.clone()
    eager = BatchedAdadelta(torch.tensor([1.0, 0.5], dtype=D64))
    for gr in grads:
        eager.step(a, gr)
    optim.set_compile(True)
    fused = BatchedAdadelta(torch.tensor([1.0, 0.5], dtype=D64))
    with caplog.at_level("WARNING", logger="recon_restore.attack.optim"):
        for gr in grads:
            fused.step(b, gr)
    assert not optim.compiling()
    assert sum("running it eagerly" in r.message for r in caplog.records) == 1
    assert torch.equal(a, b)


@requires_cifar_subset()
def test_real_cifar_full_width_dataset_setting_reconstructs(subset_checksums):
    """10 images per class, full width 1000-1000, dataset setting (Adadelta, alpha 20,
    lambda_min 0.5, sigma 1e-3), shortened schedule: several good matches (SSIM > 0.4)."""
    from recon_restore.data.cifar import load_cifar10
    from recon_restore.metrics import best_matches, postprocess

    train, _ = load_cifar10(CIFAR_SUBSET, str(subset_checksums), url=None)
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.nonzero(train.labels == c)[0], 10, replace=False) for c in (-1, 1)])
    x = torch.from_numpy(train.images[idx]).float() / 255
    mean = x.mean(0)
    xc = (x - mean).flatten(1)[None]
    y = torch.from_numpy(train.labels[idx]).float()[None]
    g = torch.Generator().manual_seed(0)
    w = init_weights(1, 3072, [1000, 1000], init_std=1e-4, generator=g)
    tr = train_target(w, xc, y, "adadelta", 1.0, 1500)
    assert tr.accuracy[0] == 1
    cfg = ReconConfig(candidates_per_class=20, iterations=600, snapshots=[600], optimizer="adadelta")
    one = lambda v: torch.tensor([v])  # noqa: E731
    res = reconstruct(tr.weights, Hparams(one(1.0), one(1.0), one(1e-3), one(0.5), one(20.0)), cfg, 3072,
                      [torch.Generator().manual_seed(1)])
    cand = postprocess(res.snapshots[600][0].view(-1, 3, 32, 32).double(), mean.double())
    good = int((best_matches(cand.float(), x).target_best > 0.4).sum())
    print(f"real CIFAR-10, 20 images, width 1000: {good} good reconstructions")
    assert good >= 3


def test_candidate_labels_are_minus_then_plus_and_need_an_even_count():
    assert candidate_labels(4).tolist() == [-1.0, -1.0, 1.0, 1.0] and candidate_labels(4, D64).dtype == D64
    with pytest.raises(ValueError, match="must be even .* got 5"):
        candidate_labels(5)


def test_training_shares_one_training_set_across_runs_and_reports_each_runs_loss():
    from recon_restore.attack.train import loss_and_grads

    g = torch.Generator().manual_seed(3)
    w = init_weights(2, 12, [8, 8], init_std=0.3, generator=g, dtype=D64)
    x = torch.randn(1, 6, 12, generator=g, dtype=D64)
    y = torch.tensor([[-1.0] * 3 + [1.0] * 3], dtype=D64)
    shared = train_target(w, x, y, "gd", 0.05, 20)  # one training set for both runs
    explicit = train_target(w, x.expand(2, -1, -1).clone(), y.expand(2, -1).clone(), "gd", 0.05, 20)
    assert torch.equal(shared.weights.W1, explicit.weights.W1) and torch.equal(shared.loss, explicit.loss)
    out = phi(shared.weights, x.expand(2, -1, -1))  # margin and accuracy as defined, per run
    assert torch.equal(shared.min_margin, (y * out).min(1).values)
    assert torch.equal(shared.accuracy, (((out > 0).to(D64) * 2 - 1) == y).float().mean(1))
    # a run that diverges is flagged alone
    bad = Weights(w.W1.clone(), w.W2, w.w3)
    bad.W1[0, 0, 0] = float("nan")
    assert train_target(bad, x, y, "gd", 0.05, 3).failed.tolist() == [True, False]
    grads = Weights(*(torch.empty_like(t) for t in (w.W1, w.W2, w.w3)))
    xx, yy = x.expand(2, -1, -1), y.expand(2, -1)
    loss = loss_and_grads(w, xx, yy, grads)  # per run, not pooled
    assert loss.shape == (2,) and torch.allclose(loss, torch.nn.functional.softplus(-yy * phi(w, xx)).mean(1), rtol=1e-12)
    with pytest.raises(ValueError, match="unknown target optimizer 'adam'; expected 'adadelta' or 'gd'"):
        train_target(w, x, y, "adam", 1.0, 1)


def test_closed_form_equals_autograd_near_a_stationary_point():
    """Stationarity parts below 1 (a nearly converged run): the closed form must not clip them."""
    w, x, lam, y, alpha, lmin = _setup()
    w = Weights(*(None if t is None else t * 0.01 for t in (w.W1, w.W2, w.w3, w.b1)))
    lam = lam * 0.01
    a = closed_form(w, x, lam, y, alpha, lmin)
    b = autograd_objective(w, x, lam, y, alpha, lmin)
    assert (b.stationarity < 1e-2).all()
    assert torch.allclose(a.stationarity, b.stationarity, rtol=1e-9, atol=0)


def test_unknown_optimiser_is_named():
    with pytest.raises(ValueError, match="unknown optimizer 'adam'; expected 'sgd' or 'adadelta'"):
        optim.make("adam", torch.ones(1), 0.9)
