"""The network's own random numbers (dropout and the like): saved with a checkpoint and restored
on resume, per process, so that a resumed run draws what a straight one would have."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from . import batches


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's torch, CUDA (its own GPU), numpy and python RNG states, as plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what rng_state saved."""
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if device.type == "cuda" and cuda:  # this process's GPU (resume may see fewer GPUs)
        # one entry since this format; every visible GPU's in checkpoints written before it
        mine = cuda[device.index] if len(cuda) > 1 and device.index < len(cuda) else cuda[0]
        torch.cuda.set_rng_state(mine, device)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_process(seed: int, rank: int) -> None:
    """Seed torch, numpy and python for process `rank` of a run seeded `seed`."""
    s = batches.derive_seed(seed, batches.PROCESS_RNG, rank)
    torch.manual_seed(s)
    np.random.seed(s % 2**32)
    random.seed(s)


@contextmanager
def kept_rng(device: torch.device) -> Iterator[None]:
    """Run a block and put every RNG (torch, CUDA, numpy, python) back as it was before it."""
    state = rng_state(device)
    try:
        yield
    finally:
        set_rng_state(state, device)


__all__ = ["rng_state", "set_rng_state", "seed_process", "kept_rng"]
