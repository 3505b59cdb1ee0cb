"""A time-conditioned residual MLP for low-dimensional data (toy 2-D sets, mixtures, actions).

    Linear(D -> hidden) -> depth x MLPBlock -> LayerNorm, SiLU, Linear(hidden -> D)

MLPBlock: x + Linear(drop(SiLU(Linear(SiLU(LN(x))) + Linear(emb)))), the U-Net residual block with
linear maps in place of convolutions. The last Linear of every block and of the network start at
zero, so the network outputs exactly zero at initialisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from .layers import ClassConditional, ConditionEmbedding, time_batch, zero_

__all__ = ["MLPConfig", "MLP", "MLPBlock"]


@dataclass(frozen=True)
class MLPConfig(ClassConditional):
    """The MLP's shape. The defaults suit 2-D toy data.
    `num_classes` (class conditioning) is the keyword field of `layers.ClassConditional`."""

    dim: int = 2
    """Data dimension D: x is (B, D), or (B, ...) with D elements per sample (flattened inside)."""
    hidden: int = 128
    """Width of the residual stream (>= 2); also the width of the sinusoidal time embedding."""
    depth: int = 3
    """Number of residual blocks (>= 1)."""
    dropout: float = 0.0
    """Dropout probability inside residual blocks, in [0, 1)."""

    def __post_init__(self):
        if self.dim < 1 or self.hidden < 2 or self.depth < 1:
            raise ValueError(f"need dim >= 1, hidden >= 2, depth >= 1; got {self.dim}, "
                             f"{self.hidden}, {self.depth}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        super().__post_init__()  # num_classes


class MLPBlock(nn.Module):
    """Pre-norm residual block conditioned additively on the embedding."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim)
        self.emb = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = zero_(nn.Linear(dim, dim))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x: (B, hidden); emb: (B, hidden), already through SiLU."""
        h = self.fc1(F.silu(self.norm(x))) + self.emb(emb)  # (B, hidden)
        return x + self.fc2(self.dropout(F.silu(h)))  # (B, hidden)


class MLP(nn.Module):
    """Residual MLP: `forward(x, t, cond=None)` maps x (B, D) to a tensor of its shape."""

    def __init__(self, config: MLPConfig | None = None):
        super().__init__()
        self.config = c = config if config is not None else MLPConfig()
        self.embed = ConditionEmbedding(c.hidden, c.hidden, c.num_classes)
        self.inp = nn.Linear(c.dim, c.hidden)
        self.blocks = nn.ModuleList(MLPBlock(c.hidden, c.dropout) for _ in range(c.depth))
        self.norm_out = nn.LayerNorm(c.hidden)
        self.out = zero_(nn.Linear(c.hidden, c.dim))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """x: (B, D) (or (B, ...) with D elements); t: (B,) times in [0, 1]; cond: (B,) or None."""
        B = x.shape[0]
        if math.prod(x.shape[1:]) != self.config.dim:
            raise ValueError(f"MLP: expected {self.config.dim} values per sample, got shape "
                             f"{tuple(x.shape)}")
        t = time_batch(t, B, x.device)
        emb = F.silu(self.embed(t, cond))  # (B, hidden)
        h = self.inp(x.reshape(B, -1))  # (B, hidden)
        for block in self.blocks:
            h = block(h, emb)  # (B, hidden)
        out = self.out(F.silu(self.norm_out(h)))  # (B, D)
        return out.reshape(x.shape).to(x.dtype)
