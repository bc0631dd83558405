"""``recon-restore bench gpu`` (``make gpu-check``): the first minutes on a GPU measure what
the compute plan assumes (``plan/compute.py``), instead of setting up.

Parts, in order (a wrong answer fails the check, exit status 1; a slow one does not):

1. ``correctness``: the GPU against the CPU on the same inputs: the KKT objective and its
   gradient (fp64, relative 1e-9), the all-pairs SSIM matrix (fp32, 1e-5), one DDPM++
   forward (fp32, TF32 off, relative 1e-3) and one Heun step of the sampler (fp32, 1e-3).
2. ``attack``: the attack at the paper's full size (3072-1000-1000-1, 500 images, 1,000
   candidates): seconds per target-training epoch and per reconstruction iteration, for one
   run and for R batched runs, fp32 and TF32, with the optimiser updates fused by
   ``torch.compile`` and not; the implied seconds per full dataset run against the limit
   that its FLOP count and the device's peak give.
3. ``edm``: DDPM++ training steps per second at the paper's batch (513) in fp64, fp32, TF32
   and bf16, with peak memory (where 513 does not fit one GPU, the largest halving that does,
   and the table says which); restoration images per second (one sample of 2 N - 1
   evaluations, and the paper's 20 samples).
4. ``networks``: BF-DnCNN (20 x 64) and the Noise2Noise U-Net (width 48), training and
   restoring images per second.
5. ``nccl``: a one-process group (NCCL on a GPU, gloo on a CPU): an all-reduce and one
   DistributedDataParallel training step equal to the same step without it.
6. ``plan``: the measured share of peak against the plan's assumed utilisation, and the
   plan's GPU-hours per stage re-run at the measured rates.

Budgets (seconds at the paper's sizes on one H100, from the plan's own FLOP counts at 40%
of peak plus fixed overheads; ``estimate``) add up to at most 8 minutes; ``--tiny`` runs
every part at toy sizes on any device (the test suite runs it on the CPU, so the script
never rots). Without a GPU and without ``--tiny`` the command says so in one line and exits 0.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from ..data.spec import CIFAR  # the check times the paper's images
from .timing import median_time, sync

BUDGET_S = 480


@dataclass(frozen=True)
class Size:
    d: int
    hidden: list[int]
    n: int
    m: int
    runs: int  # R batched runs
    edm: dict
    edm_batch: int
    sample_batch: int
    steps: int  # Heun steps (2 N - 1 evaluations)
    bf: tuple[int, int]  # depth, channels
    n2n_width: int
    batch: int  # BF-DnCNN / N2N training batch
    repeat: int
    calls: int  # steps per timed call (attack)
    precisions: tuple = ("fp64", "fp32", "tf32", "bf16")
    extra: dict = field(default_factory=dict)


PAPER_DDPMPP = dict(in_channels=2 * CIFAR.channels, out_channels=CIFAR.channels, resolution=CIFAR.height, model_channels=128, channel_mult=[2, 2, 2], num_blocks=4,
                    attn_resolutions=[16], dropout=0.13, augment_dim=9, channel_mult_emb=4, channel_mult_noise=1)
TINY_DDPMPP = dict(in_channels=2 * CIFAR.channels, out_channels=CIFAR.channels, resolution=CIFAR.height, model_channels=8, channel_mult=[1, 2], num_blocks=1,
                   attn_resolutions=[16], dropout=0.0, augment_dim=9, channel_mult_emb=2, channel_mult_noise=1)
SIZES = {
    "paper": Size(3072, [1000, 1000], 500, 1000, 8, PAPER_DDPMPP, 513, 512, 18, (20, 64), 48, 128, 3, 5),
    "tiny": Size(3072, [16, 16], 8, 16, 2, TINY_DDPMPP, 4, 4, 2, (3, 8), 8, 4, 1, 1),
}


def edm_flops(network: dict) -> dict:
    """Per image: training (forward and backward) and forward FLOPs of a DDPM++ (the plan's counter)."""
    from .. import methods

    return methods.restorer("edm", {"edm": {"network": network, "sigma_data": 0.5}}).flops()


def kind_of(dev: torch.device) -> str | None:
    """The plan's GPU kind for this device (its peak rates), or None."""
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev).lower()
    return next((k for k in ("h100", "h200", "a100") if k in name), None)


def _peak(kind: str | None, precision: str) -> float | None:
    from ..plan.compute import PEAK_TFLOPS

    table = PEAK_TFLOPS.get("h100" if kind == "h200" else kind or "")  # H200: H100's compute, more memory
    return table[precision] * 1e12 if table else None


def _close(name: str, a: torch.Tensor, b: torch.Tensor, rtol: float) -> dict:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    err = float(((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item())
    return {"what": name, "relative_error": err, "tolerance": rtol, "ok": bool(err <= rtol and torch.isfinite(a).all())}


def correctness(dev: torch.device, s: Size) -> list[dict]:
    """The same inputs on the CPU and on ``dev``."""
    from ..attack.model import init_weights
    from ..attack.objective import candidate_labels, closed_form
    from ..metrics import ssim_matrix
    from ..precision import matmul_mode
    from ..restorers.edm import EDMPrecond
    from ..restorers.edm.sampler import heun

    cpu = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    w = init_weights(1, s.d, s.hidden[:2], False, 1e-2, g, torch.float64, cpu)
    x = torch.randn(1, 2 * (s.m // 2 // 8 or 1), s.d, generator=g, dtype=torch.float64) * 0.1
    lam = torch.rand(1, x.shape[1], generator=g, dtype=torch.float64)
    y = candidate_labels(x.shape[1], torch.float64, cpu)
    a, lmin = torch.full((1,), 20.0, dtype=torch.float64), torch.full((1,), 0.5, dtype=torch.float64)
    on = lambda t: t.to(dev)  # noqa: E731
    ref = closed_form(w, x, lam, y, a, lmin)
    got = closed_form(w.to(device=dev), on(x), on(lam), on(y), on(a), on(lmin))
    out = [_close("KKT objective (fp64)", got.total, ref.total, 1e-9), _close("KKT gradient in x (fp64)", got.grad_x, ref.grad_x, 1e-9),
           _close("KKT gradient in lambda (fp64)", got.grad_lam, ref.grad_lam, 1e-9)]
    im = torch.rand(24, *CIFAR.shape, generator=g)
    out.append(_close("SSIM matrix (fp32)", ssim_matrix(on(im[:16]), on(im[16:])), ssim_matrix(im[:16], im[16:]), 1e-5))
    torch.manual_seed(0)
    net = EDMPrecond(s.edm).eval()
    with torch.no_grad():
        for p in net.parameters():  # a non-trivial output layer (it is initialised near zero)
            p.add_(0.02 * torch.randn_like(p))
    z, c, sig = torch.randn(2, *CIFAR.shape, generator=g), torch.rand(2, *CIFAR.shape, generator=g) * 2 - 1, torch.full((2,), 2.0)
    noise = torch.randn(2, *CIFAR.shape, generator=g, dtype=torch.float64)
    with torch.no_grad(), matmul_mode("fp32"):
        ref_f = net(z, sig, c)
        ref_h = heun(lambda u, t, cc: net(u, t, cc), c, num_steps=2, dtype=torch.float32, noise=noise)
        net_d = net.to(dev)
        got_f = net_d(on(z), on(sig), on(c))
        got_h = heun(lambda u, t, cc: net_d(u, t, cc), on(c), num_steps=2, dtype=torch.float32, noise=noise)
    out += [_close("DDPM++ forward (fp32)", got_f, ref_f, 1e-3), _close("Heun step (fp32)", got_h, ref_h, 1e-3)]
    return out


def attack(dev: torch.device, s: Size, epochs: int, iterations: int, snapshots: int) -> list[dict]:
    """One run and R batched runs, fp32 and TF32, fused updates on and off."""
    from ..attack import flops as attack_flops
    from ..attack import optim
    from ..precision import matmul_mode
    from .attack import bench_size

    kind = kind_of(dev)
    full = attack_flops.dataset_run_flops(s.hidden, s.n, s.m, epochs, iterations, snapshots, "haim")  # the paper's images
    rows = []
    for compiled in (False, True):
        optim.set_compile(compiled)
        for precision in ("fp32", "tf32"):
            with matmul_mode(precision):
                r = bench_size(s.d, s.hidden, s.n, s.m, s.runs, epochs, iterations, dev, torch.float32, s.repeat, s.calls)
            peak = _peak(kind, precision)
            for impl in ("naive", "batched"):
                b = r[impl]
                rows.append({"precision": precision, "compile": compiled and optim.compiling(), "implementation": impl,
                             "runs": b["runs_in_batch"], "train_epoch_s": b["train_epoch_s"], "recon_iter_s": b["recon_iter_s"],
                             "seconds_per_run": b["seconds_per_run"], "gflops_per_s": b["gflops_per_s"],
                             "limit_s": full / peak if peak else None,
                             "share_of_peak": b["gflops_per_s"] * 1e9 / peak if peak else None})
    optim.set_compile(False)
    return rows


def _memory(dev: torch.device, fn) -> float | None:
    if dev.type != "cuda":
        fn()
        return None
    torch.cuda.reset_peak_memory_stats(dev)
    fn()
    sync(dev)
    return torch.cuda.max_memory_allocated(dev) / 2**30


def _edm_train(dev: torch.device, network: dict, precision: str, batch: int, repeat: int) -> dict:
    """Training steps/s of a DDPM++ at ``batch`` in ``precision``, with peak memory."""
    from ..precision import dtype_of, matmul_mode
    from ..restorers.edm import EDMPrecond, edm_loss

    dt = dtype_of(precision)
    g = torch.Generator(device=dev).manual_seed(0)
    net = EDMPrecond(network).to(device=dev, dtype=dt, memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    rnd = lambda n: (torch.rand(n, *CIFAR.shape, generator=g, device=dev, dtype=dt) * 2 - 1)  # noqa: E731
    tgt, cond, lab = rnd(batch), rnd(batch), torch.zeros(batch, 9, device=dev, dtype=dt)

    def step():
        opt.zero_grad(set_to_none=True)
        edm_loss(net, tgt, cond, lab, generator=g).backward()
        opt.step()

    with matmul_mode(precision):
        mem = _memory(dev, step)
        t = median_time(step, dev, repeat, 1)
    return {"precision": precision, "steps_per_s": 1 / t, "images_per_s": batch / t, "peak_memory_gib": mem}


def edm(dev: torch.device, s: Size, samples: int) -> dict:
    """Training steps/s at the paper's batch per precision, and restoration images/s."""
    from ..restorers.edm import EDMPrecond, heun_sample

    out = {"train": [], "flops_train_per_image": edm_flops(s.edm)["train"]}
    for precision in s.precisions:
        if precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            continue
        batch = s.edm_batch
        while True:  # the paper's batch may not fit one GPU (it was spread over three): halve until it does
            try:
                out["train"].append(dict(_edm_train(dev, s.edm, precision, batch, s.repeat), batch=batch, paper_batch=s.edm_batch))
                break
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if batch == 1:
                    out["train"].append({"precision": precision, "batch": 0, "paper_batch": s.edm_batch, "steps_per_s": None,
                                         "images_per_s": None, "peak_memory_gib": None})
                    break
                batch //= 2
    net = EDMPrecond(s.edm).to(dev).eval()
    c = (torch.rand(s.sample_batch, *CIFAR.shape, device=dev) * 2 - 1)
    t = median_time(lambda: heun_sample(lambda u, sg, cc: net(u, sg, cc), c, num_steps=s.steps, dtype=torch.float32), dev,
                    s.repeat, 1)
    out["restore"] = {"evaluations": 2 * s.steps - 1, "images_per_s_one_sample": s.sample_batch / t,
                      "images_per_s_paper_samples": s.sample_batch / t / samples, "samples": samples}
    return out


def networks(dev: torch.device, s: Size) -> list[dict]:
    """BF-DnCNN and the N2N U-Net: training and restoring images/s (fp32)."""
    from ..restorers.bfdncnn import BFDnCNN, bfdncnn_loss
    from ..restorers.n2n.network import N2NUNet

    from .restorers import one_pass_rates

    rows = []
    y, x = torch.rand(s.batch, *CIFAR.shape, device=dev), torch.rand(s.batch, *CIFAR.shape, device=dev)
    yb = torch.rand(s.sample_batch, *CIFAR.shape, device=dev)
    for name, net, loss in (("BF-DnCNN", BFDnCNN(*s.bf), lambda m: bfdncnn_loss(m, x, y)),
                            ("N2N U-Net", N2NUNet(width=s.n2n_width), lambda m: ((m(y) - x) ** 2).mean())):
        net = net.to(dev, memory_format=torch.channels_last)
        train, restore = one_pass_rates(net, loss, s.batch, yb, dev, s.repeat)
        rows.append({"network": name, "train_images_per_s": train, "restore_images_per_s": restore})
    return rows


def nccl(dev: torch.device) -> dict:
    """A one-process group through DistributedDataParallel: the step equals the plain one."""
    import torch.distributed as dist

    from ..restorers import distributed
    from ..restorers.bfdncnn import BFDnCNN, bfdncnn_loss

    backend = "nccl" if dev.type == "cuda" else "gloo"
    torch.manual_seed(0)
    plain = BFDnCNN(3, 8).to(dev).train()
    wrapped = BFDnCNN(3, 8).to(dev).train()
    wrapped.load_state_dict(plain.state_dict())
    y, x = torch.rand(4, *CIFAR.shape, device=dev), torch.rand(4, *CIFAR.shape, device=dev)
    t0 = time.perf_counter()
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{distributed._free_port()}", rank=0, world_size=1)
    try:
        total = distributed.total(torch.ones(3, device=dev))
        ddp = distributed._DDP(wrapped, device_ids=[dev.index or 0] if dev.type == "cuda" else None)
        for model in (plain, ddp):
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            bfdncnn_loss(model, x, y).backward()
            opt.step()
        diff = max(float((a - b).abs().max()) for a, b in zip(plain.state_dict().values(), wrapped.state_dict().values()))
    finally:
        dist.destroy_process_group()
    return {"backend": backend, "all_reduce_ok": bool(torch.equal(total.cpu(), torch.ones(3))), "ddp_step_max_diff": diff,
            "ok": bool(torch.equal(total.cpu(), torch.ones(3)) and diff <= 1e-6), "seconds": time.perf_counter() - t0}


def plan_rates(result: dict, cfg: dict, utilisation: float, kind: str | None) -> dict:
    """The measured share of peak beside the plan's assumed ``utilisation``, and the plan's
    GPU-hours per stage at the measured rates (the attack's for the attack and dataset jobs,
    the EDM training's for the network jobs)."""
    from ..plan.compute import jobs

    if kind is None:
        return {"note": "no plan kind for this device (A100, H100, H200): measured rates only"}
    att = [dict(r, share_of_peak=r["gflops_per_s"] * 1e9 / _peak(kind, r["precision"]))
           for r in result["attack"] if r["implementation"] == "batched"]
    best_att = max(att, key=lambda r: r["share_of_peak"]) if att else None
    edm_fp = {r["precision"]: r["images_per_s"] * result["edm"]["flops_train_per_image"] for r in result["edm"]["train"]
              if r["images_per_s"]}
    shares = {f"edm {p}": f / _peak(kind, p) for p, f in edm_fp.items() if _peak(kind, p)}
    hours: dict[str, float] = {}
    for j in jobs(cfg):
        if not j.on_gpu:
            continue
        if j.rule.startswith(("attack", "adapt", "dataset")) and best_att:
            rate = best_att["share_of_peak"] * _peak(kind, j.precision)  # the measured share of this precision's peak
        else:
            rate = edm_fp.get(j.precision) or edm_fp.get("fp32")
        hours[j.rule.split("_")[0]] = hours.get(j.rule.split("_")[0], 0.0) + j.flops * j.count / rate / 3600
    return {"assumed_utilisation": utilisation, "measured_share_of_peak": dict(shares, attack=best_att["share_of_peak"] if best_att else None),
            "gpu_hours_at_measured_rates": hours}


def estimate(cfg: dict, kind: str = "h100", utilisation: float = 0.4) -> dict[str, float]:
    """Seconds per part at the paper's sizes on ``kind``, from the plan's FLOP counts at
    ``utilisation`` of peak, plus a fixed overhead per part (start-up, compilation, warm-up)."""
    from ..attack import flops as attack_flops
    from ..plan.compute import PEAK_TFLOPS

    s = SIZES["paper"]
    peak = {p: v * 1e12 * utilisation for p, v in PEAK_TFLOPS[kind].items()}
    rounds = s.repeat + 1  # timed calls plus warm-up
    it = 2 * s.calls + 6 * s.calls  # bench_size: 2k naive plus k and 3k batched, per step kind
    epoch = attack_flops.target_epoch_flops(s.d, s.hidden, s.n)
    iteration = attack_flops.reconstruction_iteration_flops(s.d, s.hidden, s.m)
    att = sum(rounds * it * (epoch + iteration) * s.runs / peak[p] for p in ("fp32", "tf32")) * 2  # compile off and on
    per = edm_flops(s.edm)
    train = sum((rounds + 1) * s.edm_batch * per["train"] / peak["fp64_vector" if p == "fp64" else p] for p in s.precisions)
    restore = rounds * s.sample_batch * (2 * s.steps - 1) * per["forward"] / peak["fp32"]
    return {"correctness": 20.0, "attack": att + 60.0, "edm": train + restore + 30.0, "networks": 30.0, "nccl": 15.0, "plan": 5.0}


def run(dev: torch.device, tiny: bool, cfg: dict, utilisation: float = 0.4) -> dict:
    s = SIZES["tiny" if tiny else "paper"]
    at = cfg["attack"]
    epochs, iterations = (2, 2) if tiny else (at["train"]["epochs"], at["reconstruct"]["iterations"])
    snapshots = len(at["reconstruct"]["snapshots"])
    res, times = {"device": dev.type, "name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                  "tiny": tiny, "kind": kind_of(dev)}, {}
    parts = [("correctness", lambda: correctness(dev, s)), ("attack", lambda: attack(dev, s, epochs, iterations, snapshots)),
             ("edm", lambda: edm(dev, s, cfg["restorers"]["edm"]["samples"])), ("networks", lambda: networks(dev, s)),
             ("nccl", lambda: nccl(dev))]
    for name, fn in parts:
        t = time.perf_counter()
        res[name] = fn()
        times[name] = time.perf_counter() - t
    t = time.perf_counter()
    res["plan"] = plan_rates(res, cfg, utilisation, res["kind"])
    times["plan"] = time.perf_counter() - t
    res["seconds"] = times
    res["failures"] = [c["what"] for c in res["correctness"] if not c["ok"]] + ([] if res["nccl"]["ok"] else ["nccl"])
    return res


def _f(v, spec=".3g") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def markdown(r: dict) -> str:
    """The check's tables."""
    lines = [f"# GPU check: {r['name']} ({'tiny' if r['tiny'] else 'paper sizes'})", "",
             "| check | relative error | tolerance | ok |", "|---|---:|---:|---|"]
    lines += [f"| {c['what']} | {c['relative_error']:.2e} | {c['tolerance']:g} | {'yes' if c['ok'] else '**NO**'} |" for c in r["correctness"]]
    lines += ["", "| attack | precision | compile | runs | s / epoch | s / iteration | s / dataset run | FLOP limit s | share of peak |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {a['implementation']} | {a['precision']} | {'on' if a['compile'] else 'off'} | {a['runs']} | {_f(a['train_epoch_s'])} | "
              f"{_f(a['recon_iter_s'])} | {_f(a['seconds_per_run'])} | {_f(a['limit_s'])} | {_f(a['share_of_peak'], '.1%')} |"
              for a in r["attack"]]
    lines += ["", "| DDPM++ training | batch (paper's) | steps/s | images/s | peak memory GiB |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {e['precision']} | {e['batch']} ({e['paper_batch']}) | {_f(e['steps_per_s'])} | {_f(e['images_per_s'])} | "
              f"{_f(e['peak_memory_gib'])} |" for e in r["edm"]["train"]]
    rs = r["edm"]["restore"]
    lines += ["", f"Diffusion restoration: {_f(rs['images_per_s_one_sample'])} images/s for one sample of {rs['evaluations']} "
              f"evaluations, {_f(rs['images_per_s_paper_samples'])} with the paper's {rs['samples']} samples.", "",
              "| network | train images/s | restore images/s |", "|---|---:|---:|"]
    lines += [f"| {n['network']} | {_f(n['train_images_per_s'])} | {_f(n['restore_images_per_s'])} |" for n in r["networks"]]
    nc = r["nccl"]
    lines += ["", f"One-process {nc['backend']} group: all-reduce {'ok' if nc['all_reduce_ok'] else 'WRONG'}, DDP step differs by "
              f"{nc['ddp_step_max_diff']:.1e} from the plain one.", ""]
    p = r["plan"]
    if "note" in p:
        lines.append(f"Plan: {p['note']}.")
    else:
        lines += [f"Plan: assumed {p['assumed_utilisation']:.0%} of peak; measured " + ", ".join(
            f"{k} {_f(v, '.1%')}" for k, v in p["measured_share_of_peak"].items()) + ".", "",
            "| stage | GPU-hours at measured rates |", "|---|---:|"]
        lines += [f"| {k} | {v:,.1f} |" for k, v in p["gpu_hours_at_measured_rates"].items()]
    lines += ["", "Seconds per part: " + ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items()) + "."]
    if r["failures"]:
        lines += ["", "**FAILED:** " + "; ".join(r["failures"])]
    return "\n".join(lines) + "\n"
