"""``recon-restore bench restorers``: training and restoration throughput.

For the full-size conditional DDPM++ (55,737,347 parameters, EDM preconditioning and loss)
and BF-DnCNN (20 x 64): training images/s (forward, backward, Adam step on random pairs)
and restoration images/s (EDM: one Heun sample with 18 steps = 35 network evaluations;
BF-DnCNN: one forward pass); Restormer (26.1 M parameters, random weights): restoration
images/s, one forward pass; the Noise2Noise U-Net (991,203 parameters, Lehtinen et al.):
training images/s (two Gaussian corruptions, L2, Adam) and restoration images/s. Medians of repeated timings after warm-up. EDM's published
CIFAR-10 training rate is about 145 images/s per V100 (Karras et al. 2022, appendix F.2).
"""

from __future__ import annotations

import torch

from ..data.spec import CIFAR  # the benchmarks time the paper's images
from ..restorers.bfdncnn import BFDnCNN, bfdncnn_loss
from ..restorers.edm import EDMPrecond, edm_loss, heun_sample
from .timing import median_time

EDM_V100_TRAIN_IMG_S = 145.0
FULL_DDPMPP = dict(in_channels=2 * CIFAR.channels, out_channels=CIFAR.channels, resolution=CIFAR.height, model_channels=128, channel_mult=[2, 2, 2], num_blocks=4,
                   attn_resolutions=[16], dropout=0.13, augment_dim=9, channel_mult_emb=4, channel_mult_noise=1)


def one_pass_rates(net: torch.nn.Module, loss, batch: int, sample: torch.Tensor, dev: torch.device, repeat: int,
                   warmup: int = 1, lr: float = 1e-3) -> tuple[float, float]:
    """A one-pass restorer's training images/s (``loss(net)`` on a batch of ``batch``, backward,
    an Adam step) and restoring images/s (one forward pass over ``sample``); leaves it in eval mode."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        loss(net).backward()
        opt.step()

    net.train()
    t_train = median_time(step, dev, repeat, warmup)
    net.eval()
    with torch.no_grad():
        t_restore = median_time(lambda: net(sample), dev, repeat, warmup)
    return batch / t_train, len(sample) / t_restore


def bench(dev: torch.device, dtype: torch.dtype, train_batch: int, sample_batch: int, repeat: int = 3, warmup: int = 1,
          steps: int = 18) -> dict:
    cl = torch.channels_last
    g = torch.Generator(device=dev).manual_seed(0)
    rnd = lambda n: (torch.rand(n, *CIFAR.shape, generator=g, device=dev, dtype=dtype) * 2 - 1).contiguous(memory_format=cl)  # noqa: E731
    out = {}

    edm = EDMPrecond(FULL_DDPMPP).to(device=dev, dtype=dtype, memory_format=cl)
    out["edm_parameters"] = sum(p.numel() for p in edm.parameters())
    opt = torch.optim.Adam(edm.parameters(), lr=1e-4)
    tgt, cond, lab = rnd(train_batch), rnd(train_batch), torch.zeros(train_batch, 9, device=dev, dtype=dtype)

    def edm_step():
        opt.zero_grad(set_to_none=True)
        edm_loss(edm, tgt, cond, lab, generator=g).backward()
        opt.step()

    t = median_time(edm_step, dev, repeat, warmup)
    out["edm_train_img_s"] = train_batch / t
    edm.eval()
    c = rnd(sample_batch)
    t = median_time(lambda: heun_sample(lambda x, s, cc: edm(x, s, cc), c, num_steps=steps, generator=g, dtype=dtype), dev, repeat, warmup)
    out["edm_restore_img_s"] = sample_batch / t
    out["edm_nfe"] = 2 * steps - 1
    del edm, opt

    bf = BFDnCNN(20, 64).to(device=dev, dtype=dtype, memory_format=cl)
    out["bfdncnn_parameters"] = sum(p.numel() for p in bf.parameters())
    y, x = (rnd(train_batch) + 1) / 2, (rnd(train_batch) + 1) / 2
    yb = (rnd(sample_batch) + 1) / 2
    out["bfdncnn_train_img_s"], out["bfdncnn_restore_img_s"] = one_pass_rates(
        bf, lambda m: bfdncnn_loss(m, x, y), train_batch, yb, dev, repeat, warmup)
    out["edm_train_vs_v100"] = out["edm_train_img_s"] / EDM_V100_TRAIN_IMG_S
    del bf

    from ..restorers.restormer import build

    rs = build("real").to(device=dev, dtype=dtype, memory_format=cl).eval()  # random weights: speed only
    out["restormer_parameters"] = sum(p.numel() for p in rs.parameters())
    with torch.no_grad():
        t = median_time(lambda: rs(yb), dev, repeat, warmup)
    out["restormer_restore_img_s"] = sample_batch / t
    del rs

    from ..restorers.n2n.corruption import corrupt
    from ..restorers.n2n.loss import n2n_loss
    from ..restorers.n2n.network import N2NUNet

    un = N2NUNet(width=48).to(device=dev, dtype=dtype, memory_format=cl)  # Lehtinen et al.'s size
    out["n2n_parameters"] = sum(p.numel() for p in un.parameters())
    opt = torch.optim.Adam(un.parameters(), lr=3e-4, betas=(0.9, 0.99))
    cg = torch.Generator().manual_seed(0)  # corruptions are drawn on the CPU in the data stream
    clean = torch.rand(train_batch, *CIFAR.shape, generator=cg)

    def n2n_step():  # corruption of the input and of the target, as in training
        xin, _ = corrupt(clean, "gaussian", {"sigma": [0.0, 0.196]}, cg)
        xt, _ = corrupt(clean, "gaussian", {"sigma": [0.0, 0.196]}, cg)
        opt.zero_grad(set_to_none=True)
        n2n_loss(un(xin.to(dev, dtype).contiguous(memory_format=cl)), xt.to(dev, dtype), "l2").backward()
        opt.step()

    t = median_time(n2n_step, dev, repeat, warmup)
    out["n2n_train_img_s"] = train_batch / t
    un.eval()
    with torch.no_grad():
        t = median_time(lambda: un(yb), dev, repeat, warmup)
    out["n2n_restore_img_s"] = sample_batch / t
    return out
