"""DiT: the Diffusion Transformer with adaLN-Zero (Peebles & Xie 2023, section 3.2; `models.py`).

    patchify (p x p conv) + fixed 2-D sin-cos positions -> depth x DiTBlock -> final adaLN layer
    -> linear to p * p * C per token -> unpatchify

Each block regresses shift, scale and gate for its attention and MLP branches from the time
(+ class) embedding c: x = x + gate * branch(LN(x) * (1 + scale) + shift). The regressions, and
the final layer, start at zero ("adaLN-Zero"), so every block is the identity and the output is
exactly zero at initialisation.

Differences from the paper's code: the output has x's channels (no learned variance); the time
embedding is `layers.sinusoidal_embedding` (DDPM's: sin before cos, denominators half - 1) of
1000 t; label dropout for classifier-free guidance is the trainer's (null label = num_classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import (
    ClassConditional,
    ConditionEmbedding,
    SelfAttention,
    modulate,
    sincos_pos_embed_2d,
    time_batch,
    zero_,
)

__all__ = ["DiTConfig", "DiT", "DiTBlock", "FinalLayer"]

FREQ_DIM = 256  # width of the sinusoidal time embedding before its MLP (DiT's default)


@dataclass(frozen=True)
class DiTConfig(ClassConditional):
    """The transformer's shape. The defaults are DiT-S/2 on 4x32x32 latents (256x256 images).
    `num_classes` (class conditioning) is the keyword field of `layers.ClassConditional`."""

    in_channels: int = 4
    """Channels C of x (and of the output): 4 for Stable Diffusion VAE latents, 1 or 3 for pixels.
    """
    input_size: int = 32
    """Native side length H = W; must be a multiple of patch_size. Other multiples also work."""
    patch_size: int = 2
    """Side p of the square patches that become tokens: N = (H / p) * (W / p)."""
    hidden_size: int = 384
    """Token width D (S: 384, B: 768, L: 1024, XL: 1152); divisible by heads and by 4."""
    depth: int = 12
    """Number of transformer blocks (S and B: 12, L: 24, XL: 28)."""
    heads: int = 6
    """Attention heads (S: 6, B: 12, L and XL: 16)."""
    mlp_ratio: float = 4.0
    """Width of each block's MLP as a multiple of hidden_size (> 0)."""

    def __post_init__(self):
        if self.patch_size < 1 or self.input_size % self.patch_size:
            raise ValueError(f"input_size={self.input_size} must be a multiple of "
                             f"patch_size={self.patch_size} >= 1")
        if self.hidden_size % self.heads or self.hidden_size % 4:
            raise ValueError(f"hidden_size={self.hidden_size} must be divisible by "
                             f"heads={self.heads} and by 4")
        if self.depth < 1 or self.mlp_ratio <= 0:
            raise ValueError(f"depth must be >= 1 and mlp_ratio > 0, got {self.depth}, "
                             f"{self.mlp_ratio}")
        super().__post_init__()  # num_classes


def _layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning (DiT, figure 3, right)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = _layer_norm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = _layer_norm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"),
                                 nn.Linear(hidden, dim))
        self.ada = nn.Linear(dim, 6 * dim)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """x: (B, N, D) tokens; c: (B, D) conditioning, already through SiLU."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c)[:, None].chunk(6, dim=2)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1))  # (B, N, D)
        x = x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))  # (B, N, D)
        return x


class FinalLayer(nn.Module):
    """adaLN (shift, scale) then a linear map from each token to its p * p * C patch values."""

    def __init__(self, dim: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm = _layer_norm(dim)
        self.ada = nn.Linear(dim, 2 * dim)
        self.linear = nn.Linear(dim, patch_size * patch_size * out_channels)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.ada(c)[:, None].chunk(2, dim=2)
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, N, p * p * C)


class DiT(nn.Module):
    """Diffusion Transformer: `forward(x, t, cond=None)` maps x (B, C, H, W) to a tensor of its
    shape; H and W must be multiples of the patch size."""

    def __init__(self, config: DiTConfig | None = None):
        super().__init__()
        self.config = c = config if config is not None else DiTConfig()
        D, p = c.hidden_size, c.patch_size
        self.patch = nn.Conv2d(c.in_channels, D, kernel_size=p, stride=p)
        grid = c.input_size // p
        self.register_buffer("pos", sincos_pos_embed_2d(D, grid, grid)[None], persistent=False)
        self.embed = ConditionEmbedding(FREQ_DIM, D, c.num_classes)
        self.blocks = nn.ModuleList(DiTBlock(D, c.heads, c.mlp_ratio) for _ in range(c.depth))
        self.final = FinalLayer(D, p, c.in_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DiT's initialisation: Xavier-uniform linears (the patch conv as a linear map), N(0, 0.02)
        for the time MLP and the label table, zero for every adaLN regression and the output."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.patch.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch.bias)
        for m in self.embed.mlp:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        if self.embed.label is not None:
            nn.init.normal_(self.embed.label.weight, std=0.02)
        for block in self.blocks:
            zero_(block.ada)
        zero_(self.final.ada)
        zero_(self.final.linear)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """x: (B, C, H, W); t: (B,) times in [0, 1]; cond: (B,) int64 labels or None."""
        B, C, H, W = x.shape
        p = self.config.patch_size
        if H % p or W % p:
            raise ValueError(f"DiT: input {H}x{W} is not a multiple of patch_size={p}")
        gh, gw = H // p, W // p
        t = time_batch(t, B, x.device)
        c = F.silu(self.embed(t, cond))  # (B, D): SiLU shared by every adaLN regression

        pos = self.pos
        if pos.shape[1] != gh * gw or gh != gw:
            pos = sincos_pos_embed_2d(self.config.hidden_size, gh, gw, x.device)[None]
        h = self.patch(x).flatten(2).transpose(1, 2) + pos  # (B, N, D), N = gh * gw
        for block in self.blocks:
            h = block(h, c)  # (B, N, D)
        h = self.final(h, c)  # (B, N, p * p * C)

        h = h.reshape(B, gh, gw, p, p, C)
        out = torch.einsum("bhwpqc->bchpwq", h).reshape(B, C, H, W)  # (B, C, H, W)
        return out.to(x.dtype)
