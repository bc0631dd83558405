"""The robustness study (paper 004): projected gradient ascent with exact optima on a
function whose worst case is known, budgets that never lower the error found, a zero budget
that changes nothing, the diffusion restorer as a differentiable function, and the stage's
commands on the tiny pipeline (test_cli.py)."""

import pytest
import torch

from recon_restore.robustness.pgd import image_error, pgd


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
