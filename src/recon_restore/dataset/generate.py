"""One dataset job: train target networks, reconstruct, match, write a shard (paper section 2).

For each run of the job (batched ``runs_per_batch`` at a time): take the run's planned
pool images, augment them (``augment.py``), subtract their mean, train the target network
(dataset setting: Adadelta, learning rate 1, float32), reconstruct with the fixed
hyperparameters (alpha 20, lambda_min 0.5, sigma 1e-3, Adadelta learning rate 1 for x
and lambda), postprocess every snapshot (paper 5.1 scaling) and match (``match.py``).
Each finished batch is saved as a part file; a restarted job skips finished batches
and assembles the shard at the end, so a killed job resumes.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..attack import attacks
from ..attack.model import Weights
from ..precision import dtype_of, matmul_mode
from ..attack.reconstruct import Hparams, ReconConfig, reconstruct
from ..data.store import ImageSet
from ..io import run_resumable
from ..status import RunStatus
from ..metrics import postprocess
from ..seeding import torch_generator
from . import augment
from .match import match_candidates, pair_ssim
from .shards import RUN_FIELDS, ShardData

log = logging.getLogger(__name__)


def _to_u8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


@dataclass
class Reconstructed:
    """A batch of runs after training and reconstruction, before matching."""

    runs: list[dict]
    X: torch.Tensor  # (R, n, C, H, W) augmented training images in [0, 1]
    auglab: list[np.ndarray]
    mean: torch.Tensor  # (R, C, H, W)
    failed: list[bool]
    snaps: list[dict[int, torch.Tensor]]  # per run: iteration -> (m, C, H, W) postprocessed ({} if failed)
    per_run: dict[str, list]  # train_loss, min_margin, stationarity, box, lam_penalty


def reconstruct_batch(pool: ImageSet, runs: list[dict], cfg: dict, device: torch.device, progress: bool = False) -> Reconstructed:
    """Train the batch's target networks and reconstruct (every snapshot, postprocessed)."""
    acfg = cfg["attack"]
    net, tr, rc = acfg["target"], acfg["train"], acfg["reconstruct"]
    prec = tr["precision"]
    dt = dtype_of(prec)
    aug_cfg = augment.AugmentConfig.from_params(cfg["dataset"]["augment"])
    R = len(runs)
    n = len(runs[0]["indices"])
    attack = attacks.get(acfg)
    train_labels = attack.training_labels(pool.labels, pool.classes)

    clean, labels, auglab = [], [], []
    for r in runs:
        rng = np.random.default_rng(r["seed"])
        idx = np.asarray(r["indices"])
        img = torch.from_numpy(pool.images[idx]).to(torch.float64) / 255
        lab = augment.sample_labels(n, aug_cfg, rng)
        clean.append(augment.apply(img, lab, aug_cfg))
        labels.append(torch.from_numpy(train_labels[idx]).to(torch.float64))
        auglab.append(lab)
    X = torch.stack(clean)  # (R, n, C, H, W) in [0, 1], augmented
    mean = X.mean(1)
    Xc = (X - mean.unsqueeze(1)).flatten(2).to(device=device, dtype=dt)
    Y = torch.stack(labels).to(device=device, dtype=dt)

    # one generator per run: a run's network does not depend on the batch it runs in
    outputs = attack.outputs(train_labels)
    w0 = Weights.cat([attack.init(1, Xc.shape[-1], net, outputs, torch_generator(r["seed"], "init"), dt, device) for r in runs])
    with matmul_mode(prec):
        trained = attack.train(w0, Xc, Y, tr["optimizer"], tr["lr"], tr["epochs"], progress, "train targets")
        full = lambda v: torch.full((R,), float(v), dtype=dt, device=device)  # noqa: E731
        hp = Hparams(full(rc["lr"]), full(rc["lambda_lr"]), full(rc["sigma"]), full(rc["lambda_min"]), full(rc["alpha"]))
        rcfg = ReconConfig.from_params(rc)
        res = reconstruct(trained.weights, hp, rcfg, Xc.shape[-1], [torch_generator(r["seed"], "reconstruct") for r in runs],
                          progress=progress, desc="reconstruct", attack=attack)
    failed, snaps = [], []
    for j in range(R):
        bad = bool(trained.failed[j]) or res.status[j] != "ok"
        failed.append(bad)
        snaps.append({} if bad else {ep: postprocess(s[j].view(-1, *mean.shape[1:]).double(), mean[j]) for ep, s in res.snapshots.items()})
    per_run = {"train_loss": [float(v) for v in trained.loss], "min_margin": [float(v) for v in trained.min_margin],
               "stationarity": [float(v) for v in res.stationarity], "box": [float(v) for v in res.box],
               "lam_penalty": [float(v) for v in res.lam_penalty]}
    return Reconstructed(runs, X, auglab, mean, failed, snaps, per_run)


def pairs_of(rb: Reconstructed, mcfg: dict, keep: set[int] | None = None) -> ShardData:
    """Match a reconstructed batch (``dataset.match``) and collect its pairs; ``keep``: use only
    these snapshots (the dataset cost study: a run that stopped earlier, or kept fewer)."""
    X = rb.X
    n = X.shape[1]
    pairs = {k: [] for k in ("recon", "target_row", "run", "epoch", "candidate", "ssim", "margin")}
    targets = {"image": [], "aug_label": [], "source_index": [], "run": []}
    run_rows = {k: [] for k in RUN_FIELDS}
    for j, r in enumerate(rb.runs):
        snaps = {ep: s for ep, s in rb.snaps[j].items() if keep is None or ep in keep}
        base = j * n
        targets["image"].append(_to_u8(X[j]))
        targets["aug_label"].append(rb.auglab[j])
        targets["source_index"].append(np.asarray(r["indices"], dtype=np.int64))
        targets["run"].append(np.full(n, r["run"], dtype=np.int64))
        count, accepted = 0, 0
        if snaps:
            mt = match_candidates({k: v.float() for k, v in snaps.items()}, X[j].float(), mcfg["ssim_variant"], mcfg["threshold"], mcfg["margin"])
            accepted = len(mt.candidate)
            for c, t, mg in zip(mt.candidate, mt.target, mt.margin):
                eps = [ep for ep, s in snaps.items() if not torch.isnan(s[c]).any()]
                rec = torch.stack([snaps[ep][c] for ep in eps])
                sims = pair_ssim(rec, X[j][t].expand_as(rec), mcfg["ssim_variant"])
                pairs["recon"].append(_to_u8(rec))
                pairs["target_row"].append(np.full(len(eps), base + t, dtype=np.int32))
                pairs["run"].append(np.full(len(eps), r["run"], dtype=np.int64))
                pairs["epoch"].append(np.asarray(eps, dtype=np.int32))
                pairs["candidate"].append(np.full(len(eps), c, dtype=np.int32))
                pairs["ssim"].append(sims.float().numpy())
                pairs["margin"].append(np.full(len(eps), mg, dtype=np.float32))
                count += len(eps)
        run_rows["run"].append(r["run"])
        run_rows["seed"].append(r["seed"])
        run_rows["status"].append(int(RunStatus.FAILED if rb.failed[j] else RunStatus.OK))
        run_rows["mean"].append(rb.mean[j].float().numpy())
        for k, v in rb.per_run.items():
            run_rows[k].append(v[j])
        run_rows["pairs"].append(count)
        log.info("run %d: %s, %d pairs from %d accepted candidates", r["run"], "failed" if rb.failed[j] else "ok", count, accepted)

    empty = {"recon": np.zeros((0, *X.shape[2:]), np.uint8)}
    cat = lambda lst, key: np.concatenate(lst) if lst else empty.get(key, np.zeros(0))  # noqa: E731
    return ShardData(
        {k: cat(v, k) for k, v in pairs.items()},
        {k: np.concatenate(v) for k, v in targets.items()},
        {k: np.stack(v) if k == "mean" else np.asarray(v) for k, v in run_rows.items()},
    )


def run_batch(pool: ImageSet, runs: list[dict], cfg: dict, device: torch.device, progress: bool = False) -> ShardData:
    """Train, reconstruct and match a batch of runs; returns their pairs."""
    return pairs_of(reconstruct_batch(pool, runs, cfg, device, progress), cfg["dataset"]["match"])


def _save_part(path: Path, d: ShardData) -> None:
    with open(path, "wb") as f:
        np.savez(f, **{f"pairs.{k}": v for k, v in d.pairs.items()},
                 **{f"targets.{k}": v for k, v in d.targets.items()},
                 **{f"runs.{k}": v for k, v in d.runs.items()})


def _load_part(path: Path) -> ShardData:
    z = np.load(path)
    g = lambda pre: {k.split(".", 1)[1]: z[k] for k in z.files if k.startswith(pre + ".")}  # noqa: E731
    return ShardData(g("pairs"), g("targets"), g("runs"))


def generate_job(pool: ImageSet, runs: list[dict], cfg: dict, parts_dir: Path, device: torch.device,
                 progress: bool = False, fingerprint: str | None = None) -> ShardData:
    """Process a job's runs batch by batch, resuming from finished part files (only those
    made with the same ``fingerprint``: settings, inputs and code)."""
    per_batch = int(cfg["dataset"]["runs_per_batch"])
    batches = [runs[b : b + per_batch] for b in range(0, len(runs), per_batch)]
    jobs = [(f"runs-{b[0]['run']:08d}-{b[-1]['run']:08d}.npz", lambda b=b: run_batch(pool, b, cfg, device, progress))
            for b in batches]
    return ShardData.concat(run_resumable(parts_dir, jobs, _save_part, _load_part, fingerprint))


def remove_parts(parts_dir: Path) -> None:
    shutil.rmtree(parts_dir, ignore_errors=True)
