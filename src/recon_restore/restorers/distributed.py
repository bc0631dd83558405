"""Data-parallel restorer training over G processes, one per GPU (paper section 4: the
restorer was trained on three A100s; ``restorers.<name>.train.gpus``).

Every process reads only its rows of each global batch (``Group.part``), computes the loss
of those rows scaled so that PyTorch's DistributedDataParallel, which averages gradients
over processes, gives exactly the gradient of the global batch's mean loss; random draws
of the loss (EDM's noise levels and noise) are made for the whole global batch and sliced,
so G processes follow the same trajectory as one process with the same global batch, to
rounding. Batch statistics (BF-DnCNN's bias-free batch norm) are reduced over all
processes (``batch_variance``). Global batch, schedules and checkpoints do not depend on G,
so a killed training may resume with another G.

``run`` launches the G processes itself (single node: NCCL on GPUs, gloo on CPU), or joins
a process group a launcher already set up (``torchrun``: RANK/WORLD_SIZE in the
environment). G = 1 runs in the calling process, with no process group.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

from ..errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def part(self, batch: int) -> tuple[int, int]:
        """Rows [lo, hi) of every global batch of ``batch`` examples that this process trains on."""
        if batch < self.world:
            raise UserError(f"a global batch of {batch} cannot be split over {self.world} processes (params train.gpus)")
        q, r = divmod(batch, self.world)
        lo = self.rank * q + min(self.rank, r)
        return lo, lo + q + (self.rank < r)


def current() -> Group:
    if dist.is_available() and dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size())
    return Group()


def device_of(device: torch.device) -> torch.device:
    """This process's device: its own GPU (LOCAL_RANK) when training on CUDA."""
    if device.type == "cuda" and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return device


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model as trained: DistributedDataParallel over the group (the model itself when G = 1)."""
    if current().world == 1:
        return model
    return _DDP(model, device_ids=[model_device(model).index] if model_device(model).type == "cuda" else None)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


class _DDP(torch.nn.parallel.DistributedDataParallel):
    """DDP that passes attribute reads (``sigma_data``, ``config``) through to the wrapped model."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def total(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over the group (no gradient); ``x`` itself when G = 1."""
    if current().world == 1:
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y


def batch_variance(x: torch.Tensor) -> torch.Tensor:
    """Unbiased per-channel variance of ``x`` (N, C, H, W) over the global batch: the values on
    all processes together (two passes: mean, then squared deviations), differentiable. One
    process reduces over (N, H, W) in place (no transposed copy: a quarter of BF-DnCNN's
    training step on a CPU went to that copy)."""
    if current().world == 1:
        return x.var(dim=(0, 2, 3), unbiased=True)
    from torch.distributed.nn.functional import all_reduce

    xc = x.transpose(0, 1).flatten(1)
    n = total(torch.tensor(float(xc.shape[1]), device=xc.device, dtype=xc.dtype))
    mean = all_reduce(xc.sum(1)) / n
    return all_reduce(((xc - mean[:, None]) ** 2).sum(1)) / (n - 1)


def barrier() -> None:
    if current().world > 1:
        dist.barrier()


def run(fn: Callable, processes: int, device: torch.device, *args) -> None:
    """Call ``fn(*args)`` in ``processes`` processes joined in one process group."""
    if processes < 1:
        raise UserError(f"train.gpus must be at least 1, got {processes}")
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:  # started by torchrun
        if int(os.environ["WORLD_SIZE"]) != processes:
            raise UserError(f"launched with WORLD_SIZE={os.environ['WORLD_SIZE']} processes, but params train.gpus is {processes}")
        _init(_backend(device))
        try:
            return fn(*args)
        finally:
            dist.destroy_process_group()
    if processes == 1:
        return fn(*args)
    if device.type == "cuda" and torch.cuda.device_count() < processes:
        raise UserError(f"params train.gpus is {processes}, but {torch.cuda.device_count()} GPUs are visible")
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    port = _free_port()
    log.info("training in %d processes (%s)", processes, _backend(device))
    try:
        mp.start_processes(_worker, args=(fn, processes, port, _backend(device), errors, args), nprocs=processes,
                           join=True, start_method="spawn")
    except mp.ProcessExitedException:
        if not errors.empty():
            raise UserError(errors.get()) from None
        raise


def _backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def _init(backend: str) -> None:
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def _worker(rank: int, fn: Callable, world: int, port: int, backend: str, errors, args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _init(backend)
    try:
        fn(*args)
    except UserError as e:
        errors.put(str(e))
        raise SystemExit(1) from None
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
