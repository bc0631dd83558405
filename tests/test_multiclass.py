"""The attack interface and the multiclass KKT attack (Buzaglo et al. 2023): the objective
against an independent autograd computation (float64, rtol 1e-8), against the binary one at
C = 2, training to zero error, and the reconstruction loop through the interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon_restore.attack import attacks
from recon_restore.attack.model import Weights
from recon_restore.attack.multiclass import init_weights, objective
from recon_restore.errors import UserError


def _independent(W1, W2, W3, x, lam, y, alpha, lambda_min, second_best=False):
    """One run, written from the KKT conditions with nn-free autograd: sum over candidates and
    the other classes of lambda_ij grad (Phi_yi - Phi_j), per-parameter squared residuals."""
    params = [W1.clone().requires_grad_(True), W2.clone().requires_grad_(True), W3.clone().requires_grad_(True)]
    x = x.clone().requires_grad_(True)
    lam = lam.clone().requires_grad_(True)
    m, C = x.shape[0], W3.shape[0]

    def act(z):
        soft = torch.nn.functional.softplus(z, beta=alpha, threshold=500)  # no linear cut-off: exact sigmoid derivative
        return torch.relu(z).detach() + soft - soft.detach()

    out = act(act(x @ params[0].T) @ params[1].T) @ params[2].T
    s = 0
    for i in range(m):
        others = [j for j in range(C) if j != int(y[i])]
        if second_best:
            j = max(others, key=lambda j: float(out[i, j].detach()))
            s = s + lam[i, 0] * (out[i, y[i]] - out[i, j])
        else:
            for j in others:
                s = s + lam[i, j] * (out[i, y[i]] - out[i, j])
    g = torch.autograd.grad(s / m, params, create_graph=True)
    stat = sum(((p.detach() - gi) ** 2).sum() for p, gi in zip(params, g))
    box = (torch.relu(x - 1) ** 2 + torch.relu(-1 - x) ** 2).sum()
    tot = lam[:, 0] if second_best else torch.stack([sum(lam[i, j] for j in range(C) if j != int(y[i])) for i in range(m)])
    lam_pen = 5 * (torch.relu(lambda_min - tot) ** 2).sum()
    gx, gl = torch.autograd.grad(stat + box + lam_pen, [x, lam])
    return stat.detach(), box.detach(), lam_pen.detach(), gx, gl


@pytest.mark.parametrize("second_best", [False, True])
def test_multiclass_objective_matches_an_independent_autograd_computation(second_best):
    torch.manual_seed(0)
    R, m, d, C = 2, 6, 5, 3
    w = init_weights(R, d, [7, 4], C, init_std=0.3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.randn(R, m, d, dtype=torch.float64) * 0.8
    x[0, 0, 0] = 1.7  # one pixel outside the box
    y = torch.arange(C).repeat_interleave(m // C)
    lam = torch.rand(R, m, 1 if second_best else C, dtype=torch.float64)
    if not second_best:
        lam = lam.scatter(2, y.view(1, m, 1).expand(R, m, 1), 0.0)
    alpha, lmin = torch.tensor([20.0, 7.0], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
    out = objective(w, x, lam, y, alpha, lmin, second_best)
    for r in range(R):
        stat, box, pen, gx, gl = _independent(w.W1[r], w.W2[r], w.w3[r], x[r], lam[r], y, float(alpha[r]), float(lmin[r]),
                                              second_best)
        torch.testing.assert_close(out.stationarity[r], stat, rtol=1e-8, atol=0)
        torch.testing.assert_close(out.box[r], box, rtol=1e-8, atol=0)
        torch.testing.assert_close(out.lam[r], pen, rtol=1e-8, atol=1e-300)
        torch.testing.assert_close(out.grad_x[r], gx, rtol=1e-8, atol=1e-14)
        want = gl if second_best else gl.scatter(1, y.view(m, 1), 0.0)  # a candidate's own class carries no multiplier
        torch.testing.assert_close(out.grad_lam[r], want, rtol=1e-8, atol=1e-14)
    assert out.lam[1] > 0  # lambda_min 2 is above the candidates' totals: the penalty is active (and matched above)
    if not second_best:  # the totals over the other classes (each ~U[0, 2)) mostly pass lambda_min 0.5: fewer penalised
        assert out.lam[0] < out.lam[1]


def test_two_classes_agree_with_the_binary_attack():
    """At C = 2 with output rows (-w3/2, +w3/2), Phi_1 - Phi_0 is the binary network's output:
    the gradient sums of the hidden layers are the same, so the first layer's residual (the blind
    abort's numerator) and the box penalty agree with the binary closed form."""
    from recon_restore.attack.objective import closed_form

    g = torch.Generator().manual_seed(3)
    R, m, d = 2, 8, 6
    b = attacks.get("kkt_binary").init(R, d, {"hidden": [9, 5], "bias": False, "init_std": 0.4}, 1, g, torch.float64, "cpu")
    mc = Weights(b.W1, b.W2, torch.stack([-b.w3 / 2, b.w3 / 2], 1))
    x = torch.randn(R, m, d, dtype=torch.float64, generator=g)
    lam_b = torch.rand(R, m, dtype=torch.float64, generator=g)
    y_b = torch.tensor([-1.0] * (m // 2) + [1.0] * (m // 2), dtype=torch.float64)
    y_c = (y_b > 0).long()
    lam_c = torch.zeros(R, m, 2, dtype=torch.float64).scatter(2, (1 - y_c).view(1, m, 1).expand(R, m, 1), lam_b.unsqueeze(2))
    alpha, lmin = torch.full((R,), 15.0, dtype=torch.float64), torch.full((R,), 0.3, dtype=torch.float64)
    ob = closed_form(b, x, lam_b, y_b, alpha, lmin)
    oc = objective(mc, x, lam_c, y_c, alpha, lmin)
    torch.testing.assert_close(oc.stat_first, ob.stat_first, rtol=1e-8, atol=0)
    torch.testing.assert_close(oc.box, ob.box, rtol=1e-12, atol=0)
    torch.testing.assert_close(oc.lam, ob.lam, rtol=1e-12, atol=0)
    assert not torch.allclose(oc.stationarity, ob.stationarity)  # the output layer differs (two rows), as it must


def test_multiclass_target_trains_to_zero_error_and_reconstruction_runs_through_the_interface():
    from recon_restore.attack.reconstruct import Hparams, ReconConfig, reconstruct

    attack = attacks.get({"method": "kkt_multiclass", "multiclass": {"multipliers": "per_class"}})
    g = torch.Generator().manual_seed(0)
    C, n, d = 3, 4, 12
    x = torch.randn(1, C * n, d, dtype=torch.float64, generator=g) * 0.3
    y = torch.arange(C).repeat_interleave(n).view(1, -1)
    w = attack.init(2, d, {"hidden": [16, 16], "bias": False, "init_std": 1e-2}, C, g, torch.float64, "cpu")
    res = attack.train(w, x, y.double(), "adadelta", 1.0, 300)
    assert (res.accuracy == 1).all() and (res.min_margin > 0).all() and not res.failed.any()
    cfg = ReconConfig(candidates_per_class=2, iterations=30, snapshots=[10, 30], abort_at=5, abort_criterion="none")
    hp = Hparams(*(torch.full((2,), v, dtype=torch.float64) for v in (0.1, 0.1, 1e-2, 0.3, 20.0)))
    out = reconstruct(res.weights, hp, cfg, d, [torch.Generator().manual_seed(k) for k in range(2)], attack=attack)
    assert out.snapshots[30].shape == (2, C * 2, d) and out.lam.shape == (2, C * 2, C)
    assert out.y.tolist() == [0, 0, 1, 1, 2, 2] and out.status == ["ok", "ok"]
    assert torch.isfinite(out.abort_score).all()  # the blind score goes through the interface too
    # the candidates moved towards explaining the weights: the objective fell from its start
    start = attack.objective(res.weights, torch.zeros(2, C * 2, d, dtype=torch.float64), torch.zeros(2, C * 2, C, dtype=torch.float64),
                             out.y, hp.alpha, hp.lambda_min)
    assert (out.stationarity < start.stationarity).all()


def test_unknown_attack_is_one_clear_error():
    with pytest.raises(UserError, match=r"attack\.method.*'kkt_multi'.*did you mean 'kkt_multiclass'"):
        attacks.get("kkt_multi")


def test_training_labels_and_galleries_follow_the_attack():
    from recon_restore.attack.evaluation import select_heldout

    classes = np.array([3, 3, 7, 7, 9, 9, 3, 7, 9])
    binary = np.where(classes == 7, 1, -1)
    mc = attacks.get("kkt_multiclass").training_labels(binary, classes)
    assert mc.tolist() == [0, 0, 1, 1, 2, 2, 0, 1, 2]
    assert (attacks.get("kkt_binary").training_labels(binary, classes) == binary).all()
    sel = select_heldout(mc, 2, "first", 0)
    assert sorted(mc[sel].tolist()) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(UserError, match="class \\+2"):
        select_heldout(mc, 3, "first", 0, np.array([0, 1, 2, 3, 4, 4, 6, 7, 8]))
