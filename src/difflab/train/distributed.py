"""One process or many: the same training code under `torchrun --nproc_per_node K`.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; `init` then joins the process group (`nccl` on
GPU, `gloo` on CPU) unless the caller already did, and keeps it until the process exits. Only the
main process (rank 0) writes files.
The split of the global batch over processes is in batches.py; DDP averages the gradients.
"""

from __future__ import annotations

import atexit
import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .config import TrainError


@dataclass
class Dist:
    """This process's place in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model wrapped in DDP when there are several processes."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def no_sync(self, model: nn.Module, skip: bool):
        """DDP's no_sync() (no gradient all-reduce) for accumulation micro-batches."""
        if skip and isinstance(model, DistributedDataParallel):
            return model.no_sync()
        return nullcontext()

    def all_reduce_sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.active:
            dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    def broadcast(self, obj):
        """obj of rank 0 on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """[obj of rank 0, obj of rank 1, ...] on every rank."""
        if not self.active:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            dist.barrier()



def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto`: CUDA device local_rank if CUDA is available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainError(f"device {name!r} asked for, but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def init(device: str = "auto") -> Dist:
    """Join the process group if this is one of several processes, and pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not dist.is_initialized() and world <= 1:
        return Dist(device=pick_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda:"):
        raise TrainError(f"device {device!r} names one GPU, but this is one of {world} "
                         f"processes: use device auto or cuda (process k uses GPU LOCAL_RANK)")
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        # The group lives as long as the process: a second train() in the same process reuses
        # it (destroying and re-creating it under torchrun's shared store can read stale peer
        # addresses and hang).
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend)
        atexit.register(_destroy)
    return Dist(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                device=dev)


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


__all__ = ["Dist", "init", "pick_device"]
