"""The robustness study (paper 004): both attacks reach the known worst case of a function
(paper 004's DAG: the output equals its adversarial target; the bounded PGD: the corner of the
L-inf ball), budgets that never lower the error found, attacks that change nothing give a
PSNR ratio of exactly 1, the ratio's direction (> 1: the attack hurt), the diffusion restorer
as a differentiable function, and the stage's commands on the tiny pipeline (test_cli.py)."""

import pytest
import torch

from recon_restore.robustness.dag import active, attacked, dag
from recon_restore.robustness.pgd import image_error, pgd
from recon_restore.robustness.study import attack_table, psnr_ratios, summarise

CFG = {"attacks": ["dag", "bounded"], "dag": {"gamma": 0.02, "iterations": 20, "tolerance": 0.04, "norm": "linf"},
       "bounded": {"budgets": [1.0, 4.0], "default_budget": 4.0, "steps": 5, "step_frac": 2.5}}


def test_dag_reaches_its_adversarial_target_on_the_identity_and_stops():
    """f = identity: DAG's gradient is T (y - x_c), so each step moves every still-active pixel
    towards y with the largest move exactly gamma (eq. 13); it ends with every pixel of f(x_adv)
    within the tolerance of y, after which nothing moves."""
    g = torch.Generator().manual_seed(0)
    clean = 0.2 + 0.6 * torch.rand(3, 3, 8, 8, generator=g, dtype=torch.float64)
    noisy = (clean + 0.05 * torch.randn(3, 3, 8, 8, generator=g, dtype=torch.float64)).clamp(0, 1)
    one = dag(lambda z: z, clean, noisy, iterations=1, gamma=0.002)
    assert torch.allclose(one.flatten(1).abs().amax(1), torch.full((3,), 0.002, dtype=torch.float64))  # eq. 13
    assert (torch.sign(one) == torch.sign(noisy - clean) * (one != 0)).all()
    r = dag(lambda z: z, clean, noisy, iterations=2000, gamma=0.002, tolerance=0.01)
    assert active(attacked(clean, r), noisy, 0.01).sum() == 0  # the known optimum, to the tolerance
    assert torch.equal(dag(lambda z: z, clean, noisy, iterations=4000, gamma=0.002, tolerance=0.01), r)  # stopped: T is empty
    with pytest.raises(ValueError, match="gamma"):
        dag(lambda z: z, clean, noisy, iterations=1, gamma=0.0)
    two = dag(lambda z: z, clean, noisy, iterations=1, gamma=0.002, norm="l2")  # the authors' code: L2-normalised step
    assert torch.allclose(two.flatten(1).norm(dim=1), torch.full((3,), 0.002, dtype=torch.float64))


def test_pgd_finds_the_worst_case_of_a_known_function():
    # f = identity, reference = x + c (c per image): the worst perturbation in the L-inf ball is
    # delta = -eps sign(c) everywhere, with error (|c| + eps)^2
    g = torch.Generator().manual_seed(0)
    x = 0.3 + 0.4 * torch.rand(4, 3, 32, 32, generator=g, dtype=torch.float64)
    c = torch.tensor([0.01, -0.02, 0.005, -0.03], dtype=torch.float64).view(-1, 1, 1, 1)
    res = pgd(lambda z: z, x, x + c, [0.0, 0.01, 0.05], steps=5)
    for eps, (xa, err) in res.items():
        assert torch.allclose(err, (c.flatten().abs() + eps) ** 2, rtol=1e-9)
        assert (xa - x).abs().max() <= eps + 1e-12
    assert torch.equal(res[0.0][0], x)


def _net():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, 3, 3, padding=1)).double().eval()


def test_zero_budget_changes_nothing_and_larger_budgets_never_find_less():
    f = _net()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(6, 3, 32, 32, generator=g, dtype=torch.float64)
    ref = torch.rand(6, 3, 32, 32, generator=g, dtype=torch.float64)
    budgets = [0.0, 0.5 / 255, 1 / 255, 4 / 255, 8 / 255]
    res = pgd(f, x, ref, budgets, steps=4)
    with torch.no_grad():
        assert torch.equal(res[0.0][0], x) and torch.equal(res[0.0][1], image_error(f(x), ref))
    errs = torch.stack([res[b][1] for b in budgets])
    assert (errs[1:] >= errs[:-1]).all() and (errs[-1] > errs[0]).all()  # per image, monotone, and the attack bites
    for b in budgets:  # the reported error is the error of the returned input
        with torch.no_grad():
            assert torch.allclose(image_error(f(res[b][0]), ref), res[b][1])
    with pytest.raises(ValueError, match="increasing"):
        pgd(f, x, ref, [0.0, 2 / 255, 1 / 255], steps=2)


def test_the_diffusion_restorer_is_a_deterministic_differentiable_function():
    from recon_restore import methods
    from recon_restore.restorers.edm import EDMPrecond

    net = dict(in_channels=6, out_channels=3, resolution=32, model_channels=8, channel_mult=[1, 2], num_blocks=1,
               attn_resolutions=[], dropout=0.0, augment_dim=9, channel_mult_emb=2, channel_mult_noise=1)
    torch.manual_seed(0)
    model = EDMPrecond(net)
    with torch.no_grad():  # a non-trivial output layer (it is initialised near zero)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    f = methods.restorer("edm", {"edm": {"sampler": {}}}).differentiable(model, 3, {"edm_steps": 3})
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    y1, y2 = f(x), f(x)
    assert torch.equal(y1, y2)  # fixed sampler noise
    (g,) = torch.autograd.grad(y1.sum(), x)
    assert g.abs().sum() > 0


def _table(f, noisy, clean, cfg=CFG):
    t, hist = attack_table(f, noisy, clean, cfg)
    return t.assign(method="m", input="plain"), hist


def test_attacks_that_change_nothing_have_a_psnr_ratio_of_exactly_one():
    """A constant restorer: DAG's gradient is zero (no step), the bounded attack finds no
    larger error; every attacked output equals the unattacked one, so every ratio is 1."""
    g = torch.Generator().manual_seed(3)
    clean = torch.rand(4, 3, 8, 8, generator=g, dtype=torch.float64)
    noisy = clean + 0.1 * torch.randn(4, 3, 8, 8, generator=g, dtype=torch.float64)
    const = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    t, hist = _table(lambda z: const.expand_as(z) + 0 * z, noisy, clean)
    rat = psnr_ratios(t)
    assert set(rat.attack) == {"dag", "bounded"} and (rat.psnr_ratio == 1.0).all()
    assert hist["adversarial"][len(hist["adversarial"]) // 2] == clean.numel()  # r = 0 everywhere
    s = summarise(t)
    assert (s.ratio_mean == 1.0).all() and (s.hurt_share == 0).all() and (s.psnr_drop == 0).all()


def test_the_ratio_is_unattacked_over_attacked_and_exceeds_one_when_the_attack_hurts():
    f = _net()
    g = torch.Generator().manual_seed(4)
    clean = torch.rand(5, 3, 32, 32, generator=g, dtype=torch.float64)
    noisy = clean + 0.1 * torch.randn(5, 3, 32, 32, generator=g, dtype=torch.float64)
    t, hist = _table(f, noisy, clean)
    assert set(zip(t.attack, t.budget.fillna(0))) == {("none", 0), ("dag", 0), ("bounded", 1.0), ("bounded", 4.0)}
    rat = psnr_ratios(t)
    base = t[t.attack == "none"].set_index("image").psnr
    for r in rat.itertuples():
        assert r.psnr_ratio == pytest.approx(base[r.image] / r.psnr)
    b4 = rat[(rat.attack == "bounded") & (rat.budget == 4.0)]
    assert (b4.psnr_ratio >= 1 - 1e-12).all() and (b4.psnr_ratio > 1).any()  # the bounded attack only raises the error
    assert sum(hist["noise"]) == noisy.numel() and sum(hist["adversarial"]) == clean.numel()
