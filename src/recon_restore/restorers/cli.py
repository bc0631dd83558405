"""``recon-restore restorers train`` and ``recon-restore restore`` (a user's own files)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..cli_args import common, int_at_least
from ..errors import UserError
from ..methods import ADAPTED, TRAINED, adapted_from, kind_module, section_of
from ..seeding import derive_seed
from ..fingerprint import fingerprint
from ..io import atomic_path, check_writable, file_sha256, provenance
from ..runtime import device as get_device
from ..runtime import setup

log = logging.getLogger(__name__)


def register(sub) -> None:
    g = sub.add_parser("restorers", help="restorers stage: train EDM / BF-DnCNN / the Noise2Noise U-Nets").add_subparsers(dest="verb", required=True)
    p = g.add_parser("train", help="train a restorer on the dataset")
    common(p, device=True, seed=True)
    p.add_argument("--steps", type=int_at_least(1), default=None,
                   help="replaces train.steps, the step-based schedule scaled with it (a learning curve's lengths)")
    p.add_argument("--method", required=True, choices=TRAINED, metavar="METHOD",
                   help="edm, bfdncnn, or a Noise2Noise variant (n2n_/n2c_<corruption>_<loss>, recon2recon_<loss>)")
    p.add_argument("--manifest", default=None, help="dataset manifest (dataset manifest --out): EDM, BF-DnCNN, recon2recon")
    p.add_argument("--pool", default=None, help="pool image set (data prepare --pool): the N2N/N2C variants")
    p.add_argument("--out", required=True, help="output checkpoint (.pt)")
    p.add_argument("--history", default=None, help="optional CSV of the training loss")
    p.set_defaults(func=train_cmd)
    p = g.add_parser("adapt", help="paper 001's stage 2: refine a trained restorer on evaluation-setting reconstructions")
    common(p, device=True)
    p.add_argument("--method", required=True, choices=[m.name for m in ADAPTED], help="the adapted method")
    p.add_argument("--checkpoint", required=True, help="the stage-1 restorer G0 (restorers train --out)")
    p.add_argument("--reconstructions", required=True, help="plain reconstructions of the adaptation network (evaluate collect --out)")
    p.add_argument("--adaptation-target", required=True, help="the adaptation network (attack target --out), checked against --evaluation-target")
    p.add_argument("--evaluation-target", required=True, help="the evaluated network: the adaptation network may share no image with it")
    p.add_argument("--pool", required=True, help="pool images: the unpaired clean images of the adversarial term")
    p.add_argument("--out", required=True)
    p.add_argument("--history", default=None, help="optional CSV of the losses")
    p.set_defaults(func=adapt_cmd)


def register_restore(sub) -> None:
    p = sub.add_parser("restore", help="restore your own reconstructions with a trained checkpoint")
    p.add_argument("--checkpoint", required=True, help="restorer checkpoint (.pt)")
    p.add_argument("--input", required=True, help=".npy, folder of .png, or .h5 (dataset 'images'); (N,C,H,W) or (N,H,W,C) with the checkpoint's C, uint8 or float in [0,1]")
    p.add_argument("--output", required=True, help=".npy, .h5, or a folder for .png files")
    p.add_argument("--samples", type=int_at_least(1), default=20, help="diffusion samples averaged per reconstruction (paper: 20)")
    p.add_argument("--steps", type=int_at_least(1), default=18, help="Heun sampler steps (paper: 18, i.e. 35 network evaluations)")
    p.add_argument("--batch", type=int_at_least(1), default=256)
    p.add_argument("--seed", type=int_at_least(0), default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="fp32", choices=["fp64", "fp32", "tf32", "bf16"])
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--progress", action="store_true")
    p.set_defaults(func=restore_cmd)


def train_cmd(args) -> None:
    from . import distributed
    from .recipes import train_spec

    prm = _setting(args)
    check_writable(args.out, args.overwrite)
    spec = train_spec(prm.section("restorers", section_of(args.method))["train"])
    distributed.Group(0, spec.gpus).part(spec.batch)  # a batch that cannot be split: one clear error, before launching
    distributed.run(_train, spec.gpus, get_device(args, prm), args)


def _setting(args):
    """The params with ``--steps`` applied (``--seed`` is applied by ``setup``)."""
    from .recipes import with_steps

    prm = setup(args)
    if args.steps is not None:
        sec = prm.section("restorers", section_of(args.method))
        sec["train"] = with_steps(sec["train"], args.steps)
    return prm


def _train(args) -> None:
    """One training process (of ``train.gpus``): every process trains, the first one writes."""
    from .. import methods
    from . import checkpoint, distributed
    from .recipes import describe, train_spec
    from .train import train

    prm = _setting(args)
    group = distributed.current()
    dev = distributed.device_of(get_device(args, prm))
    if group.world > 1 and dev.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads() // group.world))
    rcfg = prm.section("restorers", section_of(args.method))
    res = prm.section("dataset", "resample")
    out = check_writable(args.out, args.overwrite)
    restorer = methods.restorer(args.method, prm.section("restorers"), prm.spec)
    rec = restorer.recipe(res, prm.seed, args.manifest, args.pool)
    spec = train_spec(rcfg["train"])
    torch.manual_seed(derive_seed(prm.seed, "restorer-init", args.method))
    model = restorer.build(rec.config)
    state = out.with_name(out.name + ".train-state")
    log.info("%s: %d parameters; %s; %d process(es)", args.method, sum(p.numel() for p in model.parameters()),
             describe(rec.stream), group.world)
    fp = fingerprint({"restorer": restorer.reads_params(), "method": args.method, "reads": rec.reads,
                      "seed": prm.seed, "device": dev.type}, "restorers", "train", methods.kind_module(args.method))
    final, history = train(model, rec.loss_fn, rec.stream, spec, dev, state, derive_seed(prm.seed, "restorer-train", args.method),
                           args.progress and group.main, f"train {args.method}", fp)
    rec.stream.close()
    if group.main:
        checkpoint.save(out, rec.kind, rec.config, final.state_dict(),
                        provenance(prm.cfg, prm.seed, preset=prm.preset, method=args.method, steps=spec.steps, gpus=group.world,
                                   image_shape=list(prm.spec.shape),
                                   final_loss=history[-1]["loss"] if history else None),
                        args.overwrite)
        state.unlink(missing_ok=True)
        _write_history(args.history, history)
    distributed.barrier()


def adapt_cmd(args) -> None:
    from ..attack.target_file import load_target
    from ..data.store import read_image_set
    from ..evaluate.plain import read_plain
    from . import checkpoint
    from .adapt import AdaptSpec, adapt, check_adaptation_images

    prm = setup(args)
    dev = get_device(args, prm)
    a = prm.section("restorers", "adapt")
    out = check_writable(args.out, args.overwrite)
    cls, g0, ck = checkpoint.load(args.checkpoint, dev)
    source = adapted_from(args.method)
    checkpoint.require_method(ck, args.checkpoint, source)
    pool = read_image_set(args.pool)
    check_adaptation_images(load_target(args.adaptation_target)["images"].numpy(),
                            load_target(args.evaluation_target)["images"].numpy(), pool.images, args.adaptation_target)
    recon, _ = read_plain(args.reconstructions)
    spec = AdaptSpec(a["steps"], a["batch"], a["lr"], a["adversarial_weight"], a["discriminator"]["channels"], a["checkpoint_every"],
                     a["log_every"])
    state = out.with_name(out.name + ".adapt-state")
    fp = fingerprint({"adapt": a, "g0": file_sha256(args.checkpoint), "recon": file_sha256(args.reconstructions),
                      "pool": file_sha256(args.pool), "seed": prm.seed, "device": dev.type}, "restorers", "adapt", kind_module(args.method))
    g, history = adapt(g0, recon, pool.images, spec, derive_seed(prm.seed, "adapt", args.method), state, fp, dev)
    checkpoint.save(out, ck["kind"], ck["config"], g.state_dict(),
                    provenance(prm.cfg, prm.seed, preset=prm.preset, method=args.method, adapted_from=source, steps=spec.steps,
                               image_shape=list(recon.shape[1:]),
                               reconstructions=len(recon)), args.overwrite)
    state.unlink(missing_ok=True)
    _write_history(args.history, history)


def _write_history(path: str | None, history: list[dict]) -> None:
    """The optional loss log of a training command, as CSV."""
    if path:
        import pandas as pd

        with atomic_path(path, overwrite=True) as tmp:
            pd.DataFrame(history).to_csv(tmp, index=False)


def restore_cmd(args) -> None:
    from .. import methods
    from ..precision import resolve_device
    from . import checkpoint
    from .restore import read_user_images

    out = Path(args.output)
    for o in output_paths(out, with_std=True):
        if o.exists() and not args.overwrite:
            raise UserError(f"{o}: output already exists; refusing to overwrite it (pass --overwrite)")
    try:
        dev = resolve_device(args.device)
    except ValueError as e:
        raise UserError(str(e)) from None
    ck = checkpoint.read(args.checkpoint, dev)
    name = checkpoint.method_of(ck)
    if name not in methods.RESTORERS:
        raise UserError(f"{args.checkpoint}: made for {name!r}, which is not a restorer of the methods list")
    # the sampling settings of this command (a restorer that draws no samples ignores them)
    user = {"samples": args.samples, "sampler": {"num_steps": args.steps}, "sample_precision": args.precision}
    restorer = methods.restorer(name, {methods.section_of(name): user})
    restorer.load(dev, args.checkpoint)
    images, names = read_user_images(args.input, checkpoint.spec_of(ck, restorer.image_channels(ck["config"])))
    r = restorer.restore(images, np.arange(len(images)), args.seed, args.batch, args.progress)
    outputs = {methods.BY_NAME[m].output: v for m, v in r.images.items()}
    if r.spread is not None:
        outputs["std"] = r.spread
    write_outputs(out, outputs, names, args.overwrite)
    print(f"{out}: restored {images.shape[0]} reconstructions with {name} ({args.checkpoint})")


def output_paths(out: Path, with_std: bool) -> list[Path]:
    """Every path ``write_outputs`` may write (checked before any work). An output with a
    suffix other than .npy, .h5 or .hdf5 is an error; no suffix means a PNG folder."""
    if out.suffix == ".npy":
        return [out, out.with_name(out.stem + "_std.npy")] if with_std else [out]
    if out.suffix in (".h5", ".hdf5", ""):
        return [out]
    raise UserError(f"{out}: unknown output type {out.suffix!r}; expected .npy, .h5 or a folder name without a suffix (PNGs)")


def write_outputs(out: Path, outputs: dict, names: list[str], overwrite: bool) -> None:
    """.npy: the main result (averaged for EDM); .h5: every output; folder: PNGs."""
    main_key = "averaged" if "averaged" in outputs else "restored"
    if out.suffix == ".npy":
        with atomic_path(out, overwrite) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, outputs[main_key].numpy().astype(np.float32))
        if "std" in outputs:
            with atomic_path(out.with_name(out.stem + "_std.npy"), overwrite) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, outputs["std"].numpy())
    elif out.suffix in (".h5", ".hdf5"):
        import h5py

        with atomic_path(out, overwrite) as tmp:
            with h5py.File(tmp, "w") as f:
                for k, v in outputs.items():
                    f.create_dataset(k, data=v.numpy())
    else:
        from skimage.io import imsave

        out.mkdir(parents=True, exist_ok=True)
        imgs = outputs[main_key]
        for i, im in enumerate(imgs):
            name = names[i] if i < len(names) else f"{i:06d}.png"
            arr = (im.clamp(0, 1).numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
            with atomic_path(out / name, overwrite) as tmp:
                imsave(tmp, arr, check_contrast=False, extension=".png")
