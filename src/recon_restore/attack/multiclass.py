"""The multiclass KKT attack (Buzaglo et al. 2023, "Deconstructing Data Reconstruction";
Haim et al. 2022's multiclass extension) behind the attack interface.

Target network ``d - h1 - h2 - C`` (ReLU, no bias; the first layer N(0, init_std^2), He
elsewhere), trained full-batch with the cross-entropy on class indices. A network trained
to a KKT point of the multiclass max-margin problem satisfies

    theta = sum_i sum_{j != y_i} lambda_ij grad_theta [Phi_{y_i}(x_i) - Phi_j(x_i)],  lambda_ij >= 0,

so the reconstruction finds candidates x_i (labels spread evenly over the C classes) and
multipliers lambda minimising, with Haim et al.'s 1/m factor and the same penalties,

    sum_p ||theta_p - g_p||^2 + L_box + 5 sum_i relu(lambda_min - sum_j lambda_ij)^2,

where g = (1/m) sum_i sum_{j != y_i} lambda_ij grad [Phi~_{y_i}(x_i) - Phi~_j(x_i)] with the
surrogate ReLU derivatives. ``multipliers: per_class`` (default) keeps one lambda per
(candidate, other class), as the KKT conditions have them; ``second_best`` keeps one per
candidate on the margin to the best other class, as the authors' released code does (facts
read from gonbuzaglo/decoreco; nothing copied). The lambda_min penalty acts on a candidate's
total multiplier (a choice: forcing every pair onto the margin would contradict complementary
slackness, under which only the closest classes carry weight).

The objective is computed by autograd double backward, batched over R runs (each run's
parameters are separate leaves, so one backward gives every run's gradients).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .attacks import Attack
from .model import Weights
from .objective import LAMBDA_WEIGHT, ObjectiveOut


def logits(w: Weights, x: torch.Tensor, act=torch.relu) -> torch.Tensor:
    """(R or 1, n, d) -> (R, n, C); ``w.w3`` holds the output layer (R, C, h2)."""
    z1 = torch.matmul(x, w.W1.transpose(1, 2))
    if w.b1 is not None:
        z1 = z1 + w.b1.unsqueeze(1)
    a2 = act(torch.matmul(act(z1), w.W2.transpose(1, 2)))
    return torch.matmul(a2, w.w3.transpose(1, 2))


def init_weights(runs: int, in_dim: int, hidden, classes: int, bias: bool = False, init_std: float = 1e-4,
                 generator=None, dtype=torch.float32, device="cpu") -> Weights:
    """The binary target's initialisation (``model.init_weights``) with C output rows."""
    from .model import init_weights as init

    return init(runs, in_dim, hidden, bias, init_std, generator, dtype, device, outputs=classes)


def surrogate(z: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """ReLU values with softplus_alpha derivatives: softplus(alpha z) / alpha, value detached. Its
    derivative is sigmoid(alpha z) also at z = 0 exactly (where a dead hidden layer puts every
    pre-activation); past alpha z = 30 it is linear (derivative 1 - 1e-13), which keeps float32
    from overflowing at the large alphas of the evaluation's random draws."""
    soft = F.softplus(alpha * z, beta=1.0, threshold=30.0) / alpha
    return torch.relu(z).detach() + (soft - soft.detach())


def margins(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Phi_y(x) - max_{j != y} Phi_j(x) per image: (R, n, C), (R, n) -> (R, n)."""
    oy = out.gather(2, y.unsqueeze(2)).squeeze(2)
    other = out.scatter(2, y.unsqueeze(2), float("-inf")).max(2).values
    return oy - other


def train_multiclass(w: Weights, x: torch.Tensor, y: torch.Tensor, optimizer: str, lr: float, epochs: int,
                     progress: bool = False, desc: str = "train targets", weight_decay: float = 0.0):
    """Full-batch cross-entropy training of R networks (each on its own mean loss); x (R|1, n, d),
    y (R|1, n) class indices. Adadelta or plain gradient descent, as the binary target, with the
    same ``weight_decay`` convention."""
    from tqdm import tqdm

    from . import optim
    from .train import FlatWeights, TrainResult

    if optimizer not in ("adadelta", "gd"):
        raise ValueError(f"unknown target optimizer {optimizer!r}; expected 'adadelta' or 'gd'")
    y = y.long()
    x = x.expand(w.runs, *x.shape[1:]) if x.shape[0] == 1 else x
    y = y.expand(w.runs, *y.shape[1:]) if y.shape[0] == 1 else y
    params = FlatWeights(w)
    flat = params.flat
    lrs = torch.full((w.runs,), float(lr), dtype=flat.dtype, device=flat.device)
    opt = optim.make("adadelta" if optimizer == "adadelta" else "sgd", lrs, momentum=0.0)
    bar = tqdm(total=epochs, desc=desc, disable=not progress, mininterval=5)
    C = w.w3.shape[1]
    for _ in range(epochs):
        leaf = flat.detach().requires_grad_(True)
        out = logits(params.view(leaf), x)
        loss = F.cross_entropy(out.reshape(-1, C), y.reshape(-1), reduction="none").view(w.runs, -1).mean(1)
        (g,) = torch.autograd.grad(loss.sum(), leaf)
        with torch.no_grad():
            if weight_decay:
                g.add_(flat, alpha=weight_decay)
            opt.step(flat, g)
        bar.update(1)
    bar.close()
    with torch.no_grad():
        final = Weights(*(None if t is None else t.clone() for t in
                          (params.weights.W1, params.weights.W2, params.weights.w3, params.weights.b1)))
        out = logits(final, x)
        loss = F.cross_entropy(out.reshape(-1, C), y.reshape(-1), reduction="none").view(w.runs, -1).mean(1)
        mg = margins(out, y)
        acc = (out.argmax(2) == y).to(torch.float32).mean(1)
        failed = ~torch.isfinite(loss) | ~torch.isfinite(flat).all(1)
    return TrainResult(final, loss, mg.min(1).values, acc, failed)


def objective(w: Weights, x: torch.Tensor, lam: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor, lambda_min: torch.Tensor,
              second_best: bool = False) -> ObjectiveOut:
    """Parts and gradients for R runs. x (R, m, d); lam (R, m, C) (per_class; the entry of a
    candidate's own class is unused and kept at 0) or (R, m, 1) (second_best); y (m,) class
    indices; alpha, lambda_min (R,)."""
    R, m, _ = x.shape
    C = w.w3.shape[1]
    with torch.enable_grad():
        xs = x.detach().requires_grad_(True)
        ls = lam.detach().requires_grad_(True)
        leaves = [None if t is None else t.detach().expand(R, *t.shape[1:]).clone().requires_grad_(True)
                  for t in (w.W1, w.W2, w.w3, w.b1)]
        wr = Weights(*leaves)
        params = [t for t in (wr.W1, wr.b1, wr.W2, wr.w3) if t is not None]
        a = alpha.to(x.dtype).view(R, 1, 1)
        out = logits(wr, xs, lambda z: surrogate(z, a))  # (R, m, C)
        yy = y.long().view(1, m, 1).expand(R, m, 1)
        own = out.gather(2, yy)
        if second_best:
            mask = torch.ones_like(out, dtype=torch.bool).scatter(2, yy, False)
            other = out.masked_fill(~mask, float("-inf")).max(2, keepdim=True).values
            s = (ls * (own - other)).sum() / m
            total_lam = ls.squeeze(2)
        else:
            mask = torch.ones(m, C, dtype=x.dtype, device=x.device).scatter(1, y.long().view(m, 1), 0.0)
            s = (ls * mask * (own - out)).sum() / m
            total_lam = (ls * mask).sum(2)
        grads = torch.autograd.grad(s, params, create_graph=True)
        per_layer = [(p.detach() - g).pow(2).flatten(1).sum(1) for p, g in zip(params, grads)]
        stat = sum(per_layer)
        box = (xs - xs.detach().clamp(-1, 1)).pow(2).flatten(1).sum(1)
        lam_pen = LAMBDA_WEIGHT * torch.relu(lambda_min.to(x.dtype).view(R, 1) - total_lam).pow(2).sum(1)
        gx, gl = torch.autograd.grad((stat + box + lam_pen).sum(), [xs, ls])
    if not second_best:
        gl = gl * mask
    first = per_layer[0] + (per_layer[1] if w.b1 is not None else 0)
    return ObjectiveOut(stat.detach(), box.detach(), lam_pen.detach(), gx, gl, first.detach())


class KKTMulticlass(Attack):
    name = "kkt_multiclass"

    def __init__(self, cfg: dict | None = None):
        self.second_best = ((cfg or {}).get("multiclass") or {}).get("multipliers", "per_class") == "second_best"

    def training_labels(self, labels, classes):
        """Class indices renumbered 0..C-1 over the classes present (in the source's order)."""
        return np.searchsorted(np.unique(classes), classes).astype(np.int64)

    def outputs(self, train_labels) -> int:
        return int(len(np.unique(train_labels)))

    def classes(self, w) -> int:
        return int(w.w3.shape[1])

    def plan_classes(self, source_classes):
        return int(source_classes)

    def init(self, runs, in_dim, net, outputs, generator, dtype, device):
        return init_weights(runs, in_dim, net["hidden"], outputs, net["bias"], net["init_std"], generator, dtype, device)

    def train(self, w, x, y, optimizer, lr, epochs, progress=False, desc="train targets", weight_decay=0.0):
        return train_multiclass(w, x, y, optimizer, lr, epochs, progress, desc, weight_decay)

    def predict(self, w, x):
        return logits(w, x).argmax(2)

    def loss(self, out, y):
        return F.cross_entropy(out, y.long())

    def candidate_labels(self, per_class, classes, dtype, device):
        return torch.arange(classes, device=device).repeat_interleave(per_class)

    def lambda_shape(self, m, classes):
        return (m, 1) if self.second_best else (m, classes)

    def objective(self, w, x, lam, y, alpha, lambda_min, cache=None):
        return objective(w, x, lam, y, alpha, lambda_min, self.second_best)

    def iteration_flops(self, d, hidden, m, classes):
        from ..flops import count

        w = init_weights(1, d, hidden, classes, generator=torch.Generator().manual_seed(0))
        x, lam = torch.randn(1, m, d) * 1e-2, torch.rand(1, *self.lambda_shape(m, classes))
        y = self.candidate_labels(max(1, m // classes), classes, None, "cpu")[:m]
        one = torch.ones(1)
        return count(lambda: self.objective(w, x, lam, y, one * 20, one * 0.5))

    def epoch_flops(self, d, hidden, n, classes):
        from ..flops import count

        w = init_weights(1, d, hidden, classes, generator=torch.Generator().manual_seed(0))
        x, y = torch.rand(1, n, d), torch.arange(n).remainder(classes).view(1, n)

        def step():
            leaf = [t.clone().requires_grad_(True) for t in (w.W1, w.W2, w.w3)]
            out = logits(Weights(*leaf), x)
            torch.autograd.grad(F.cross_entropy(out.reshape(-1, classes), y.reshape(-1)), leaf)

        return count(step)


ATTACK = KKTMulticlass
