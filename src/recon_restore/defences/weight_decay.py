"""Weight decay (Buzaglo et al. 2023, section 5: weight decay makes more training images
reconstructable): the evaluation network trained as in paper section 5.1 with
lambda / 2 ||theta||^2 added to its loss. At a KKT point of the regularised loss the
parameters are still a combination of the training points' gradients, so the attack applies
unchanged."""

from __future__ import annotations

from .defences import Defence, positive


class WeightDecay(Defence):
    name = "weight_decay"

    def values(self, cfg):
        return positive(cfg, "weight_decay", "positive coefficients")

    def train(self, attack, w, ts, train, value, cfg, seed, progress=False):
        res = attack.train(w, ts.x, ts.y, train["optimizer"], train["lr"], train["epochs"], progress,
                           f"train weight decay {value:g}", weight_decay=value)
        return res, {"weight_decay": value, "epochs": train["epochs"]}


DEFENCE = WeightDecay
