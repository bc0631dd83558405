"""Training length: the evaluation network stopped after a fraction of its epochs
(``evaluate.train.epochs``). Haim et al.'s attack rests on the network having converged in
direction to a KKT point of the max-margin problem (paper section 1.2); a network stopped early
is further from one."""

from __future__ import annotations

from .defences import Defence, positive


class Length(Defence):
    name = "length"

    def values(self, cfg):
        return positive(cfg, "length", "positive fractions of evaluate.train.epochs")

    def epochs(self, train, value, cfg):
        return float(max(1, round(value * train["epochs"])))

    def train(self, attack, w, ts, train, value, cfg, seed, progress=False):
        epochs = int(self.epochs(train, value, cfg))
        res = attack.train(w, ts.x, ts.y, train["optimizer"], train["lr"], epochs, progress, f"train {epochs} epochs")
        return res, {"epochs": epochs}


DEFENCE = Length
