"""The compute plan of a preset: for every GPU rule of the SLURM profile, its job count,
the FLOPs of one job (counted from the models at the preset's sizes, ``flops``), and the
hours one job takes at a stated share of a GPU's peak, against the runtime the profile
gives the rule (paper scale: 150,000 dataset runs, a DDPM++ restorer of batch 513,
~1.2 M reconstructions restored 20 times with 35 network evaluations).

Counting rules (upper bounds where runs can stop early): every evaluation run succeeds
(blind aborts only lower the cost), every reconstruction is restored; a dataset job is
its runs' target training, reconstruction and snapshot matching; a training job is steps
x global batch x one example's forward and backward, spread over ``train.gpus`` GPUs;
diffusion restoration is samples x (2 N - 1) network evaluations; matching is the
all-pairs SSIM GEMM against the training images and every null gallery; the robustness
study is two inputs x its attacks' forward and backward passes (``attack_passes``; the
diffusion restorer through its 2 N - 1 evaluations). Element-wise work is not counted.

Peak dense throughput in TFLOP/s (NVIDIA A100 SXM and H100 SXM data sheets). fp64 has two
rates: the FP64 tensor-core rate, which cuBLAS reaches for fp64 GEMMs (the attack's MLP),
and the vector FP64 rate (half of it), the ceiling of cuDNN's fp64 convolutions, which do
not use tensor cores: the restorers' networks (``Job.conv``) in fp64 are timed at it. Both
are ceilings; ``recon-restore bench gpu`` measures what a GPU reaches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import flops, methods
from ..data.sources import spec_of
from ..attack import flops as attack_flops
from ..dataset.waves import layout
from ..dataset.schedule import effective
from ..evaluate.shards import restorer_shards

PEAK_TFLOPS = {
    "a100": {"fp64": 19.5, "fp64_vector": 9.7, "fp32": 19.5, "tf32": 156.0, "bf16": 312.0},
    "h100": {"fp64": 67.0, "fp64_vector": 33.5, "fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
}
PRECISIONS = ("fp64", "fp32", "tf32", "bf16")


@dataclass
class Job:
    rule: str
    what: str  # the job's wildcard (method, restorer) or "" for a rule of identical jobs
    count: int
    flops: float  # per job
    precision: str  # "cpu": a CPU job (FLOPs counted where they matter, no GPU hours)
    gpus: int = 1
    limit_h: float = float("nan")  # the profile's runtime for the rule
    hours: dict = field(default_factory=dict)  # GPU kind -> wall hours of one job
    conv: bool = False  # a convolutional network's job: fp64 runs at the vector rate

    @property
    def on_gpu(self) -> bool:
        return self.precision != "cpu"

    def gpu_hours(self, kind: str) -> float:
        return self.hours[kind] * self.gpus * self.count if self.on_gpu else 0.0

    def flagged(self, kind: str) -> bool:
        return self.hours[kind] > self.limit_h


def rate_key(precision: str, conv: bool) -> str:
    """The peak that applies: fp64 convolutions run on the vector FP64 units."""
    return "fp64_vector" if conv and precision == "fp64" else precision


def wall_hours(job_flops: float, precision: str, gpus: int, kind: str, utilisation: float, conv: bool = False) -> float:
    return job_flops / (gpus * PEAK_TFLOPS[kind][rate_key(precision, conv)] * 1e12 * utilisation) / 3600


def reconstructions(cfg: dict) -> int:
    """Plain reconstructions of the evaluation setting (every run successful)."""
    ev = cfg["evaluate"]
    return ev["runs"] * len(ev["reconstruct"]["snapshots"]) * 2 * ev["reconstruct"]["candidates_per_class"]


def attack_passes(rb: dict, net: dict) -> float:
    """FLOPs of one image's attacks per network evaluation: paper 004's attack is a forward
    and backward per iteration; the bounded PGD one per step and budget plus a forward per
    budget; every attacked input and the unattacked one are scored by a forward."""
    fb, fw = net["train"], net["forward"]
    total = fw  # the unattacked restoration
    if "dag" in rb["attacks"]:
        total += rb["dag"]["iterations"] * fb + fw
    if "bounded" in rb["attacks"]:
        b = rb["bounded"]
        total += fw + len(b["budgets"]) * (b["steps"] * fb + 2 * fw)
    return total


def jobs(cfg: dict) -> list[Job]:
    """Every GPU job of the preset ``cfg`` (limits and hours unset: see ``plan``)."""
    from ..attack import attacks
    from ..data.sources import num_classes

    spec = spec_of(cfg["data"])
    d, hidden = spec.dim, cfg["attack"]["target"]["hidden"]
    attack = attacks.get(cfg["attack"])
    C = attack.plan_classes(num_classes(cfg["data"]))
    ev, at, rc = cfg["evaluate"], cfg["attack"], cfg["restorers"]
    out: list[Job] = []
    n_eval, m_eval = C * ev["images_per_class"], C * ev["reconstruct"]["candidates_per_class"]
    batches = math.ceil(ev["runs"] / ev["runs_per_job"])
    target = ev["train"]["epochs"] * attack.epoch_flops(d, hidden, n_eval, C)
    eval_runs = ev["runs_per_job"] * attack_flops.dataset_run_flops(hidden, n_eval, m_eval, 0, ev["reconstruct"]["iterations"], 0,
                                                                    shape=spec.shape, attack=attack, classes=C)
    settings = [("attack", "")] + ([("adapt", "")] if (rc.get("adapt") or {}).get("enabled") else [])
    for stage, _ in settings:
        out.append(Job(f"{stage}_target", "", 1, target, ev["train"]["precision"]))
        out.append(Job(f"{stage}_runs", "", batches, eval_runs, ev["reconstruct"]["precision"]))
    ds = cfg["dataset"]
    at = effective(cfg)["attack"]  # dataset.schedule: paper | fast
    n_ds, m_ds = C * at["train"]["images_per_class"], C * at["reconstruct"]["candidates_per_class"]
    shard = ds["runs_per_job"] * attack_flops.dataset_run_flops(hidden, n_ds, m_ds, at["train"]["epochs"], at["reconstruct"]["iterations"],
                                                         len(at["reconstruct"]["snapshots"]), ds["match"]["ssim_variant"], spec.shape,
                                                                attack, C)
    out.append(Job("dataset_shard", "", len(layout(cfg)["jobs"]), shard, at["train"]["precision"]))
    study = ds["cost_study"]
    if study["enabled"]:
        from ..dataset.cost import settings as cost_settings

        last = max(study["iterations"])
        f = sum(study["runs"] * attack_flops.dataset_run_flops(study["hidden"], 2 * i, 2 * c, e, last, len(study["paper_snapshots"]),
                                                        ds["match"]["ssim_variant"], spec.shape)
                for e, c, i in cost_settings(study))
        out.append(Job("dataset_cost", "", 1, f, at["train"]["precision"]))
    per_image, restorer = {}, {r: methods.restorer(r, rc, spec) for r in methods.restorers(rc)}
    for r in methods.trained(rc):
        per_image[r] = restorer[r].flops()
        src = methods.adapted_from(r)
        if src:  # paper 001's stage 2: G trained, G0 evaluated, on the adaptation batch
            a = rc["adapt"]
            out.append(Job("restorers_adapt", r, 1, a["steps"] * a["batch"] * (per_image[r]["train"] + per_image[r]["forward"]), "fp32",
                           conv=True))
            continue
        t = rc[methods.section_of(r)]["train"]
        out.append(Job("restorers_train", r, 1, t["steps"] * t["batch"] * per_image[r]["train"], t["precision"], t.get("gpus", 1),
                       conv=True))
    n = reconstructions(cfg)
    for r, k in restorer.items():
        if not k.on_gpu:
            continue  # CPU jobs
        shards = restorer_shards(ev, r)
        out.append(Job("evaluate_restore_shard" if shards > 1 else "evaluate_restore", r, shards,
                       k.restore_flops() * math.ceil(n / shards), k.restore_precision(), conv=True))
    pair = flops.ssim_pair_flops(ev["best_match"]["ssim_variant"])
    match = n * n_eval * (1 + ev["null_galleries"]) * pair
    out.append(Job("evaluate_match", "", len(methods.names(rc)), match, "cpu"))
    rb = cfg.get("robustness") or {}
    if rb.get("enabled"):
        for r in methods.trained(rc):
            f = 2 * rb["images"] * restorer[r].robustness_evaluations(rb) * attack_passes(rb, per_image[r])
            out.append(Job("robustness_run", r, 1, f, "fp32", conv=True))
    # CPU jobs (bookkeeping, classical denoisers, matching): counted, not timed on a GPU
    classical = [r for r, k in restorer.items() if not k.on_gpu]
    sharded = [r for r in methods.restorers(rc) if restorer_shards(ev, r) > 1]
    cpu = [("data_prepare", 1), ("dataset_wave", len(layout(cfg)["waves"])), ("dataset_manifest", 1), ("dataset_coverage", 1),
           ("evaluate_collect", 1), ("evaluate_galleries", 1), ("evaluate_restore", len(classical)),
           ("evaluate_merge", len(sharded)), ("report", 1)]
    cpu += [("adapt_collect", 1)] if len(settings) > 1 else []
    cpu += [("robustness_report", 1)] if rb.get("enabled") else []
    out += [Job(rule, "classical" if rule == "evaluate_restore" else "", k, 0.0, "cpu") for rule, k in cpu if k]
    return out


def plan(cfg: dict, profile: dict, utilisation: float, kinds=("a100", "h100")) -> list[Job]:
    """The preset's GPU jobs with their hours per GPU kind and the profile's runtime limits."""
    res, default = profile.get("set-resources") or {}, profile.get("default-resources") or {}
    out = jobs(cfg)
    for j in out:
        j.limit_h = float((res.get(j.rule) or {}).get("runtime", default.get("runtime", float("nan")))) / 60
        j.hours = {k: float("nan") if j.precision == "cpu" else wall_hours(j.flops, j.precision, j.gpus, k, utilisation, j.conv)
                   for k in kinds}
    return out


def precision_options(job: Job, utilisation: float, kinds=("a100", "h100")) -> dict[str, dict[str, float]]:
    """Wall hours of one job at every precision (the paper's fp64 EDM training against fp32/tf32/bf16)."""
    return {p: {k: wall_hours(job.flops, p, job.gpus, k, utilisation, job.conv) for k in kinds} for p in PRECISIONS}
