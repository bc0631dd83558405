"""DP-SGD's non-private control (``defences.minibatch``): what DP-SGD changes besides privacy."""

from __future__ import annotations

import torch

from ..errors import UserError
from ..seeding import torch_generator
from .defences import Defence
from .dp_sgd import from_module, to_module


class Minibatch(Defence):
    """The non-private control of DP-SGD (``defences.minibatch``: epochs): the same network, loss,
    optimizer, learning rate and expected batch as ``dp_sgd``, shuffled minibatches, no clipping
    and no noise. What DP-SGD changes besides privacy (a minibatch optimizer, far fewer epochs
    than the full-batch training) shows here."""

    name = "minibatch"

    def values(self, cfg):
        vals = [float(v) for v in cfg["minibatch"]]
        if any(v < 1 or v != int(v) for v in vals):
            raise UserError(f"params: key 'defences.minibatch': {vals}; expected whole numbers of epochs")
        return vals

    def epochs(self, train, value, cfg):
        return float(value)

    def train(self, attack, w, ts, train, value, cfg, seed, progress=False):
        from ..attack.train import TrainResult

        c = cfg["dp_sgd"]
        x, y = ts.x[0], ts.y[0]
        n, batch = len(x), min(int(c["batch"]), len(x))
        net = to_module(w)
        opt = (torch.optim.SGD(net.parameters(), lr=c["lr"], momentum=0.9) if c["optimizer"] == "sgd"
               else torch.optim.Adam(net.parameters(), lr=c["lr"]))
        g = torch_generator(seed, "minibatch", value)
        for _ in range(int(value)):
            perm = torch.randperm(n, generator=g)
            for i in range(0, n, batch):
                idx = perm[i : i + batch].to(x.device)
                opt.zero_grad(set_to_none=True)
                attack.loss(net(x[idx]), y[idx]).backward()
                opt.step()
        final = from_module(net, w)
        with torch.no_grad():
            out = net(x)
            loss = attack.loss(out, y)
            acc = (attack.predict(final, ts.x)[0] == y.to(out.dtype)).to(torch.float32).mean()
            margin = (y * out[:, 0]).min() if out.shape[1] == 1 else torch.tensor(float("nan"))
            failed = ~torch.isfinite(loss) | ~torch.isfinite(out).all()
        return (TrainResult(final, loss.reshape(1), margin.reshape(1), acc.reshape(1), failed.reshape(1)),
                {"epochs": int(value), "batch": batch, "optimizer": c["optimizer"]})


DEFENCE = Minibatch
