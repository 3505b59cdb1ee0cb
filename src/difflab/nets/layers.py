"""The pieces every network shares: the class-conditioning config field, sinusoidal embeddings,
the time/class conditioning embedding, multi-head self-attention, norms and modulation. Each is
written once here.

Shapes: B batch, C channels, N tokens, D embedding width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ClassConditional",
    "TIME_SCALE",
    "sinusoidal_embedding",
    "sincos_pos_embed_2d",
    "ConditionEmbedding",
    "SelfAttention",
    "group_norm",
    "modulate",
    "zero_",
    "time_batch",
]

TIME_SCALE = 1000.0
"""Networks embed 1000 * t: a DDPM network with T = 1000 steps sees the step number it expects."""


@dataclass(frozen=True, kw_only=True)
class ClassConditional:
    """What every network config declares: its class conditioning (a keyword-only field, so the
    other fields keep their positions)."""

    num_classes: int | None = None
    """None: unconditional (cond must be None). An int K: class-conditional on labels 0..K-1,
    with label K the null label for classifier-free guidance (cond=None means the null label)."""

    def __post_init__(self):
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be None or >= 1, got {self.num_classes}")


def sinusoidal_embedding(x: Tensor, dim: int, max_period: float = 10000.0,
                         shift: int = 1) -> Tensor:
    """Sinusoidal embedding [sin(x w_k), cos(x w_k)], w_k = max_period^(-k / (dim/2 - shift)).

    shift=1 is DDPM's `get_timestep_embedding` (Ho et al. 2020, reference code, after Vaswani et
    al. 2017, section 3.5); shift=0 is the MAE / DiT positional embedding. x: (...,) float;
    returns (..., dim) in float32 (odd dim: zero-padded).
    """
    half = dim // 2
    k = torch.arange(half, device=x.device, dtype=torch.float32)
    freqs = torch.exp(-math.log(max_period) * k / max(half - shift, 1))  # (half,); dim 2, 3: k = 0
    args = x.float()[..., None] * freqs  # (..., half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)  # (..., 2 * half)
    return F.pad(emb, (0, dim - 2 * half))


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int, device=None) -> Tensor:
    """Fixed 2-D sin-cos positions (MAE, He et al. 2022; used by DiT): (grid_h * grid_w, dim).

    The first half of the channels embeds the column index, the second half the row index, with
    `sinusoidal_embedding` (shift=0), tokens in row-major order: MAE's `get_2d_sincos_pos_embed`.
    """
    if dim % 4:
        raise ValueError(f"2-D sin-cos positions need a width divisible by 4, got {dim}")
    rows = torch.arange(grid_h, device=device, dtype=torch.float32)
    cols = torch.arange(grid_w, device=device, dtype=torch.float32)
    rr, cc = torch.meshgrid(rows, cols, indexing="ij")  # (h, w) each
    emb_r = sinusoidal_embedding(rr.flatten(), dim // 2, shift=0)  # (N, dim/2)
    emb_c = sinusoidal_embedding(cc.flatten(), dim // 2, shift=0)  # (N, dim/2)
    return torch.cat([emb_c, emb_r], dim=1)  # (N, dim)


def time_batch(t, batch: int, device) -> Tensor:
    """t as a float tensor of shape (B,): a (B,) tensor as is, a scalar broadcast."""
    t = torch.as_tensor(t, device=device)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"t must have shape ({batch},) (one time per sample), "
                         f"got {tuple(t.shape)}")
    return t


class ConditionEmbedding(nn.Module):
    """emb = MLP(sinusoid(1000 t)) + E[cond]: the vector every block is conditioned on.

    The MLP is Linear(freq_dim, dim) -> SiLU -> Linear(dim, dim) (DDPM's `temb` dense0/dense1;
    DiT's TimestepEmbedder). With `num_classes`, E has num_classes + 1 rows: row `num_classes` is
    the null label used for classifier-free guidance (Ho & Salimans 2022); cond=None means the
    null label for the whole batch, and so does a negative label (difflab.data's "no label", -1).
    """

    def __init__(self, freq_dim: int, dim: int, num_classes: int | None = None):
        super().__init__()
        self.freq_dim = freq_dim
        self.num_classes = num_classes
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes is not None else None

    def forward(self, t: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = self.mlp(sinusoidal_embedding(TIME_SCALE * t, self.freq_dim))  # (B, D)
        if self.label is None:
            if cond is not None:
                raise ValueError("this network is unconditional (num_classes=None); got cond")
            return emb
        if cond is None:
            cond = torch.full((t.shape[0],), self.num_classes, dtype=torch.long, device=t.device)
        cond = cond.long()
        # Checked on the CPU only: on a GPU it would wait for the device at every call, and
        # under torch.compile it would split the graph (nn.Embedding still fails there).
        if (cond.device.type == "cpu" and not torch.compiler.is_compiling() and cond.numel()
                and int(cond.max()) > self.num_classes):
            raise ValueError(f"class label {int(cond.max())} is out of range: this network "
                             f"knows labels 0..{self.num_classes - 1} and the null label "
                             f"{self.num_classes}")
        cond = torch.where(cond < 0, self.num_classes, cond)  # -1: unlabelled -> null label
        return emb + self.label(cond)  # (B, D)


class SelfAttention(nn.Module):
    """Multi-head self-attention over tokens (B, N, C) with a fused qkv projection and an output
    projection, through `F.scaled_dot_product_attention` (Vaswani et al. 2017, eq. 1)."""

    def __init__(self, dim: int, heads: int = 1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads)  # (B, N, 3, h, C/h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, N, C/h)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, C/h)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))  # (B, N, C)


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm as DDPM uses it (Wu & He 2018): `groups` groups, eps 1e-6, affine."""
    if channels % groups:
        raise ValueError(f"GroupNorm: {channels} channels are not divisible by groups={groups}")
    return nn.GroupNorm(groups, channels, eps=1e-6)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x * (1 + scale) + shift: FiLM / adaptive norm modulation; shift and scale broadcast to x."""
    return x * (1 + scale) + shift


def zero_(module: nn.Module) -> nn.Module:
    """Set a module's parameters to zero (so a residual branch starts as the identity)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module
