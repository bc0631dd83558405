"""DP-SGD (Abadi et al. 2016) through Opacus: the evaluation network trained on minibatches drawn
by Poisson sampling (rate q = batch / n), each example's gradient clipped to ``max_grad_norm``,
Gaussian noise of standard deviation sigma * max_grad_norm added to their sum. Opacus chooses
sigma so that its accountant (``accountant``: prv, rdp or gdp) gives the target epsilon at
``delta`` after ``epochs`` epochs, and reports the epsilon it accounts after training; the
table states both with delta.

The network is the attack's own (bias-free ReLU MLP, the same initial draw) as torch modules;
its loss is the attack's (``Attack.loss``: logistic for the binary attack, cross-entropy for the
multiclass one). Where the paper setting trains full-batch for 10^6 epochs, DP-SGD trains for
``epochs`` with ``optimizer`` (choice: the DP literature's Adam or SGD with momentum 0.9)."""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from ..errors import UserError
from ..seeding import derive_seed, torch_generator
from .defences import Defence

log = logging.getLogger(__name__)


def to_module(w) -> nn.Sequential:
    """One run of ``Weights`` as Linear-ReLU-Linear-ReLU-Linear (copies)."""
    h1, d = w.W1.shape[1:]
    h2 = w.W2.shape[1]
    out = w.w3.reshape(1, -1, h2)[0]
    net = nn.Sequential(nn.Linear(d, h1, bias=w.b1 is not None), nn.ReLU(), nn.Linear(h1, h2, bias=False), nn.ReLU(),
                        nn.Linear(h2, out.shape[0], bias=False)).to(device=w.W1.device, dtype=w.W1.dtype)
    with torch.no_grad():
        net[0].weight.copy_(w.W1[0])
        if w.b1 is not None:
            net[0].bias.copy_(w.b1[0])
        net[2].weight.copy_(w.W2[0])
        net[4].weight.copy_(out)
    return net


def from_module(net: nn.Sequential, like):
    """The module's parameters as one run of ``Weights`` shaped like ``like``."""
    from ..attack.model import Weights

    with torch.no_grad():
        W1, W2, w3 = (net[i].weight.detach().clone()[None] for i in (0, 2, 4))
        b1 = net[0].bias.detach().clone()[None] if like.b1 is not None else None
    return Weights(W1, W2, w3.reshape(like.w3.shape), b1)


class DPSGD(Defence):
    name = "dp_sgd"

    def values(self, cfg):
        c = cfg["dp_sgd"]
        vals = [float(v) for v in c["epsilon"]]
        if any(v <= 0 for v in vals):
            raise UserError(f"params: key 'defences.dp_sgd.epsilon': {vals}; expected positive privacy budgets")
        if not 0 < float(c["delta"]) < 1:
            raise UserError(f"params: key 'defences.dp_sgd.delta': {c['delta']}; expected a probability in (0, 1)")
        return vals

    def epochs(self, train, value, cfg):
        return float(cfg["dp_sgd"]["epochs"])  # expected: Poisson batches of rate batch / n

    def train(self, attack, w, ts, train, value, cfg, seed, progress=False):
        from opacus import PrivacyEngine
        from tqdm import tqdm

        from ..attack.train import TrainResult

        c = cfg["dp_sgd"]
        x, y = ts.x[0], ts.y[0]
        n = len(x)
        if n < 2:
            raise UserError(f"DP-SGD needs at least 2 training images, the evaluation network has {n}")
        batch = min(int(c["batch"]), n)
        torch.manual_seed(derive_seed(seed, "dp-sgd-sampling", value))  # Opacus's Poisson sampler draws from it
        net = to_module(w)
        if c["optimizer"] == "sgd":
            opt = torch.optim.SGD(net.parameters(), lr=c["lr"], momentum=0.9)
        elif c["optimizer"] == "adam":
            opt = torch.optim.Adam(net.parameters(), lr=c["lr"])
        else:
            raise UserError(f"params: key 'defences.dp_sgd.optimizer': {c['optimizer']!r}; expected 'sgd' or 'adam'")
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)
        engine = PrivacyEngine(accountant=c["accountant"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus warns about secure mode (a research setting) and full backward hooks
            net, opt, loader = engine.make_private_with_epsilon(
                module=net, optimizer=opt, data_loader=loader, target_epsilon=value, target_delta=float(c["delta"]),
                epochs=int(c["epochs"]), max_grad_norm=float(c["max_grad_norm"]),
                noise_generator=torch_generator(seed, "dp-sgd-noise", value))
            steps = 0
            for _ in tqdm(range(int(c["epochs"])), desc=f"DP-SGD epsilon {value:g}", disable=not progress, mininterval=5):
                for xb, yb in loader:
                    opt.zero_grad(set_to_none=True)
                    if len(xb):
                        attack.loss(net(xb), yb).backward()
                    else:  # an empty Poisson batch: the step adds noise only (still accounted)
                        for p in net.parameters():
                            p.grad_sample = torch.zeros(0, *p.shape, dtype=p.dtype, device=p.device)
                    opt.step()
                    steps += 1
            spent = float(engine.get_epsilon(float(c["delta"])))
        final = from_module(net._module, w)
        with torch.no_grad():
            out = net._module(x)
            loss = attack.loss(out, y)
            pred = attack.predict(final, ts.x)[0]
            acc = (pred == y.to(pred.dtype)).to(torch.float32).mean()
            if out.shape[1] == 1:
                margin = (y * out[:, 0]).min()
            else:
                yl = y.long()
                margin = (out.gather(1, yl[:, None])[:, 0] - out.scatter(1, yl[:, None], float("-inf")).max(1).values).min()
            failed = ~torch.isfinite(loss) | ~torch.isfinite(out).all()
        extra = {"target_epsilon": value, "epsilon": spent, "delta": float(c["delta"]), "accountant": c["accountant"],
                 "noise_multiplier": float(opt.noise_multiplier), "max_grad_norm": float(c["max_grad_norm"]),
                 "sample_rate": batch / n, "steps": steps, "epochs": int(c["epochs"])}
        log.info("DP-SGD: %s", extra)
        return TrainResult(final, loss.reshape(1), margin.reshape(1), acc.reshape(1), failed.reshape(1)), extra


DEFENCE = DPSGD

