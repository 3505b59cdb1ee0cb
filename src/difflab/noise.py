"""Per-sample Gaussian noise that does not depend on the batch (DESIGN.md section 3).

Each sample i of a seeded run owns a counter-based stream, keyed by (seed, i): draw c, element j
is a SplitMix64 hash (Steele et al. 2014) of (key_i, c * numel + j) turned into N(0, 1) by the
Box-Muller transform. So sample i's noise is the same alone or inside a batch of any size, on any
device, and no per-sample generator objects are needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer of z + golden ratio, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def sample_keys(seed: int, n: int, offset: int = 0) -> np.ndarray:
    """The stream keys of samples offset .. offset + n - 1 of a run seeded with `seed`."""
    base = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    with np.errstate(over="ignore"):
        return splitmix64(base + np.arange(offset, offset + n, dtype=np.uint64))


class NoiseSource:
    """Fresh N(0, I) draws of shape (B, *shape), one independent stream per sample.

    Call it to get the next draw; `keys` (B,) identify the samples' streams.
    """

    def __init__(self, keys: np.ndarray, shape: Sequence[int], *, dtype=torch.float32,
                 device=None):
        self.keys = np.asarray(keys, dtype=np.uint64)
        self.shape = tuple(int(s) for s in shape)
        self.dtype, self.device = dtype, device
        self.draws = 0

    @classmethod
    def from_seed(cls, seed: int, batch: int, shape: Sequence[int], **kw) -> NoiseSource:
        """Streams for samples 0..batch-1 of the run seeded with `seed`."""
        return cls(sample_keys(seed, batch), shape, **kw)

    def __call__(self) -> Tensor:
        numel = math.prod(self.shape)
        j = np.arange(numel, dtype=np.uint64) + np.uint64(self.draws * numel)
        with np.errstate(over="ignore"):
            h = splitmix64(self.keys[:, None] ^ splitmix64(j)[None, :])  # (B, numel)
        self.draws += 1
        u1 = ((h >> np.uint64(32)).astype(np.float64) + 0.5) / 2.0**32  # (0, 1)
        u2 = ((h & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) / 2.0**32
        z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)  # Box-Muller
        z = torch.from_numpy(z.reshape(len(self.keys), *self.shape))
        return z.to(device=self.device, dtype=self.dtype)
