"""Deterministic batches: which samples, times and noise each optimizer step uses.

Everything is a function of (seed, step), never of the process count or of how the run was
stopped and resumed:
- the data order is an endless stream, the concatenation of seeded permutations of the dataset
  (epoch e uses permutation e); step s consumes stream positions [s B, (s + 1) B);
- the global batch of B samples is split into grad_accum x world_size equal chunks; micro-batch
  m of process r is chunk m * world_size + r;
- the step's times t (B,), noise eps (B, ...) and label drops (B,) are drawn by the task for the
  whole global batch from a generator seeded with (seed, step) and sliced the same way, so one
  process with batch B and K processes with B / K each train on exactly the same numbers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from ..noise import splitmix64

# Stream identifiers mixed into the seed (arbitrary distinct constants).
DATA_ORDER, STEP_NOISE, PROCESS_RNG, LOADER = 0xD47A, 0x5E7, 0x9A0C, 0x10AD


def derive_seed(seed: int, *words: int) -> int:
    """A 63-bit seed hashed (SplitMix64) from a run seed and stream words."""
    z = np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    z = splitmix64(z)
    for w in words:
        z = splitmix64(z ^ np.uint64(w & 0xFFFFFFFFFFFFFFFF))
    return int(z[0]) & 0x7FFFFFFFFFFFFFFF


class IndexStream:
    """Stream position q -> dataset index perm_{q // N}[q % N], perm_e a seeded permutation."""

    def __init__(self, n: int, seed: int):
        if n < 1:
            raise ValueError("the dataset is empty")
        self.n, self.seed = n, seed
        self._perms: dict[int, Tensor] = {}

    def _perm(self, epoch: int) -> Tensor:
        if epoch not in self._perms:
            if len(self._perms) > 2:
                self._perms.pop(min(self._perms))
            g = torch.Generator().manual_seed(derive_seed(self.seed, DATA_ORDER, epoch))
            self._perms[epoch] = torch.randperm(self.n, generator=g)
        return self._perms[epoch]

    def indices(self, start: int, count: int) -> list[int]:
        """The dataset indices at stream positions start .. start + count - 1."""
        out: list[int] = []
        q = start
        while len(out) < count:
            epoch, i = divmod(q, self.n)
            take = min(count - len(out), self.n - i)
            out.extend(self._perm(epoch)[i:i + take].tolist())
            q += take
        return out


class StepBatches(Sampler):
    """The micro-batches (lists of dataset indices) of one process, step after step, endless.

    start: the stream position of the first step (step * batch_size when resuming).
    """

    def __init__(self, n: int, seed: int, batch_size: int, grad_accum: int, rank: int,
                 world_size: int, start: int = 0):
        self.stream = IndexStream(n, seed)
        self.B, self.A, self.rank, self.K = batch_size, grad_accum, rank, world_size
        self.chunk = chunk_size(batch_size, grad_accum, world_size)
        self.start = start

    def __iter__(self):
        pos = self.start
        while True:
            for m in range(self.A):
                lo = (m * self.K + self.rank) * self.chunk
                yield self.stream.indices(pos + lo, self.chunk)
            pos += self.B


def chunk_size(batch_size: int, grad_accum: int, world_size: int) -> int:
    """Samples per micro-batch per process."""
    parts = grad_accum * world_size
    if batch_size % parts:
        raise ValueError(f"batch_size {batch_size} is not divisible by grad_accum x processes "
                         f"= {grad_accum} x {world_size}")
    return batch_size // parts


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of optimizer step `step` (0-based): the task draws the whole global
    batch's times, noise and condition drops from it (tasks.py), on the CPU."""
    return torch.Generator().manual_seed(derive_seed(seed, STEP_NOISE, step))


__all__ = ["derive_seed", "IndexStream", "StepBatches", "chunk_size", "step_generator"]
