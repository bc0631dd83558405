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
    stage: str = ""  # the study it belongs to, for the GPU-hours by stage (default: the rule's stage)

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


def reconstructions(cfg: dict, candidates: int) -> int:
    """Plain reconstructions of the evaluation setting (every run successful) with ``candidates``
    candidates per run (classes x candidates_per_class)."""
    ev = cfg["evaluate"]
    return ev["runs"] * len(ev["reconstruct"]["snapshots"]) * candidates


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


def jobs(cfg: dict, defences: bool = False) -> list[Job]:
    """Every job of the preset ``cfg``'s default target ``all`` with its enabled studies, and with
    ``defences`` the defences study's (``defences_all``); limits and hours unset: see ``plan``."""
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
    names = methods.names(rc)
    n = reconstructions(cfg, m_eval)
    out += evaluation(cfg, restorer, names, 1, "evaluate_restore", "evaluate_match", n, n_eval)
    if ev["cross_attack"]["enabled"]:  # the held-out images attacked by another attack, every method
        other = attacks.get({"method": ev["cross_attack"]["method"]})
        c2 = other.plan_classes(num_classes(cfg["data"]))
        n2, m2 = c2 * ev["images_per_class"], c2 * ev["reconstruct"]["candidates_per_class"]
        out.append(Job("evaluate_cross_target", "", 1, ev["train"]["epochs"] * other.epoch_flops(d, hidden, n2, c2),
                       ev["train"]["precision"], stage="cross"))
        out.append(Job("evaluate_cross_runs", "", batches, ev["runs_per_job"] * attack_flops.dataset_run_flops(
            hidden, n2, m2, 0, ev["reconstruct"]["iterations"], 0, shape=spec.shape, attack=other, classes=c2),
            ev["reconstruct"]["precision"], stage="cross"))
        out += evaluation(cfg, restorer, names, 1, "evaluate_cross_restore", "evaluate_cross_match", reconstructions(cfg, m2), n2,
                          "cross")
        out += [Job(r, "", 1, 0.0, "cpu") for r in ("evaluate_cross_collect", "evaluate_cross_galleries", "evaluate_cross")]
    if ev["wrong_release"]["enabled"]:  # the adaptation network's reconstructions (counted with adapt_*)
        wrong = methods.study_methods(rc, ev["wrong_release"]["restorers"])
        out += evaluation(cfg, restorer, wrong, 1, "evaluate_wrong_restore", "evaluate_wrong_match", n, n_eval, "wrong release")
        out.append(Job("evaluate_wrong", "", 1, 0.0, "cpu"))
    curve = ev["curve"]
    if curve["enabled"]:  # learning curves: the curve method trained per dataset fraction, length and seed
        r, fractions = curve["method"], curve["fractions"]
        t, settings_n = rc[methods.section_of(r)]["train"], len(fractions) * len(curve["seeds"])
        for steps in curve["steps"]:
            out.append(Job("evaluate_curve_train", f"{r} {steps} steps", settings_n, steps * t["batch"] * per_image[r]["train"],
                           t["precision"], t.get("gpus", 1), conv=True, stage="curve"))
        settings_n *= len(curve["steps"])
        out.append(Job("evaluate_curve_restore", r, settings_n, restorer[r].restore_flops() * n,
                       restorer[r].restore_precision(), conv=True, stage="curve"))
        out += [Job("evaluate_curve_manifest", "", len(fractions), 0.0, "cpu"),
                Job("evaluate_curve_match", "", settings_n * len(methods.methods_of(r)), match_flops(cfg, n, n_eval), "cpu"),
                Job("evaluate_curve", "", 1, 0.0, "cpu")]
    rb = cfg.get("robustness") or {}
    if rb.get("enabled"):
        for r in methods.trained(rc):
            f = 2 * rb["images"] * restorer[r].robustness_evaluations(rb) * attack_passes(rb, per_image[r])
            out.append(Job("robustness_run", r, 1, f, "fp32", conv=True))
    # CPU jobs (bookkeeping, classical denoisers, matching): counted, not timed on a GPU
    cpu = [("data_prepare", 1), ("dataset_wave", len(layout(cfg)["waves"])), ("dataset_manifest", 1), ("dataset_coverage", 1),
           ("evaluate_collect", 1), ("evaluate_galleries", 1), ("report", 1)]
    cpu += [("adapt_collect", 1)] if len(settings) > 1 else []
    cpu += [("robustness_report", 1)] if rb.get("enabled") else []
    out += [Job(rule, "", k, 0.0, "cpu") for rule, k in cpu if k]
    if defences:
        out += defence_jobs(cfg, restorer, target, batches, eval_runs, n, n_eval)
    return out


def evaluation(cfg: dict, restorer: dict, names: list[str], copies: int, restore_rule: str, match_rule: str, n: int,
               images: int, stage: str = "") -> list[Job]:
    """Restoring and matching one evaluation's plain reconstructions (``copies`` alike: the
    defences' settings) by the restorers of ``names``: a sharded restorer in
    ``evaluate_restore_shard`` jobs and one ``evaluate_merge`` per copy (every evaluation
    shards alike), any other in ``restore_rule`` (a classical denoiser: a CPU job); ``n``
    reconstructions against ``images`` training images."""
    ev = cfg["evaluate"]
    out = []
    used = methods.study_restorers(cfg["restorers"], names)
    for r in used:
        k, shards = restorer[r], restorer_shards(ev, r)
        if not k.on_gpu:
            continue
        out.append(Job("evaluate_restore_shard" if shards > 1 else restore_rule, r, shards * copies,
                       k.restore_flops() * math.ceil(n / shards), k.restore_precision(), conv=True, stage=stage))
    classical = [r for r in used if not restorer[r].on_gpu]
    sharded = [r for r in used if restorer_shards(ev, r) > 1]
    out += [Job(restore_rule, "classical", len(classical) * copies, 0.0, "cpu")] if classical else []
    out += [Job("evaluate_merge", "", len(sharded) * copies, 0.0, "cpu")] if sharded else []
    out.append(Job(match_rule, "", len(names) * copies, match_flops(cfg, n, images), "cpu"))
    return out


def match_flops(cfg: dict, n: int, images: int) -> float:
    """One match job: ``n`` reconstructions against the training images and every null gallery."""
    ev = cfg["evaluate"]
    return n * images * (1 + ev["null_galleries"]) * flops.ssim_pair_flops(ev["best_match"]["ssim_variant"])


def defence_jobs(cfg: dict, restorer: dict, target: float, batches: int, eval_runs: float, n: int, images: int) -> list[Job]:
    """The defences study (``snakemake defences_all``, not part of ``all``): per setting an
    evaluation network (DP-SGD and its control: their epochs of minibatches, each epoch one pass
    over the training images like a full-batch epoch; per-example clipping not counted), its runs
    and the evaluation of its methods."""
    from ..defences.defences import get, parse, settings

    dcfg, ev = cfg["defences"], cfg["evaluate"]
    labels = settings(dcfg)
    if not labels:
        return []
    epochs = ev["train"]["epochs"]
    out = []
    for s in labels:
        name, value = parse(s)
        e = get(name).epochs(ev["train"], value, dcfg)
        out.append(Job("defences_target", s, 1, target / epochs * e, ev["train"]["precision"], stage="defences"))
    S = len(labels)
    out.append(Job("defences_runs", "", batches * S, eval_runs, ev["reconstruct"]["precision"], stage="defences"))
    study = methods.study_methods(cfg["restorers"], dcfg["restorers"])
    out += evaluation(cfg, restorer, study, S, "defences_restore", "defences_match", n, images, "defences")
    out += [Job("defences_collect", "", S, 0.0, "cpu"), Job("defences_table", "", 1, 0.0, "cpu")]
    return out


def plan(cfg: dict, profile: dict, utilisation: float, kinds=("a100", "h100"), defences: bool = False) -> list[Job]:
    """The preset's jobs (``defences``: and the defences study's) with their hours per GPU kind
    and the profile's runtime limits."""
    res, default = profile.get("set-resources") or {}, profile.get("default-resources") or {}
    out = jobs(cfg, defences)
    for j in out:
        j.limit_h = float((res.get(j.rule) or {}).get("runtime", default.get("runtime", float("nan")))) / 60
        j.hours = {k: float("nan") if j.precision == "cpu" else wall_hours(j.flops, j.precision, j.gpus, k, utilisation, j.conv)
                   for k in kinds}
    return out


def precision_options(job: Job, utilisation: float, kinds=("a100", "h100")) -> dict[str, dict[str, float]]:
    """Wall hours of one job at every precision (the paper's fp64 EDM training against fp32/tf32/bf16)."""
    return {p: {k: wall_hours(job.flops, p, job.gpus, k, utilisation, job.conv) for k in kinds} for p in PRECISIONS}
