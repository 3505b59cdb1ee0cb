"""The DDPM U-Net (Ho et al. 2020, appendix B; the reference code `diffusion_tf/models/unet.py`).

    conv_in -> [ResBlock (+ attention)] x num_res_blocks per level, strided-conv downsampling
            -> middle: ResBlock, attention, ResBlock
            -> [ResBlock on concat(h, skip) (+ attention)] x (num_res_blocks + 1) per level,
               nearest upsampling + conv
            -> GroupNorm, SiLU, conv_out

Every ResBlock sees the embedding of the time (and class), through its own Linear: added to the
features (DDPM) or as a scale and shift of the second norm (`scale_shift`, Nichol & Dhariwal 2021).
Weights start as in the reference code: fan-avg uniform (Xavier), zero biases, and zero for the last
conv of every residual branch, the attention output projection and conv_out, so the network
outputs exactly zero at initialisation.

Differences from the reference code, none of which changes a parameter: the strided downsampling
conv pads 1 on every side (TF pads "SAME", i.e. one pixel on the bottom/right only), so odd sizes
round up (7 -> 4) and upsampling returns to the exact size of the matching skip (4 -> 7).
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
    group_norm,
    modulate,
    time_batch,
    zero_,
)

__all__ = ["UNetConfig", "UNet", "ResBlock", "AttnBlock", "Downsample", "Upsample"]


@dataclass(frozen=True)
class UNetConfig(ClassConditional):
    """The U-Net's shape. The defaults are DDPM's CIFAR-10 model (35,746,307 parameters).
    `num_classes` (class conditioning) is the keyword field of `layers.ClassConditional`."""

    in_channels: int = 3
    """Image channels C of x (and of the output): 1 for grey, 3 for RGB, 4 for SD latents."""
    image_size: int = 32
    """Native side length H = W. Only decides where `attn_resolutions` fall; any size works."""
    channels: int = 128
    """Base width `ch`: level i has ch * channel_mult[i] channels; the time MLP is 4 * ch wide.
    Every width must be divisible by `groups`."""
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    """Width multiplier per resolution level (>= 1 level, each >= 1); between consecutive levels
    the resolution halves (rounding up), so len(channel_mult) - 1 downsamplings."""
    num_res_blocks: int = 2
    """Residual blocks per level on the way down (>= 1); the way up has one more per level."""
    attn_resolutions: tuple[int, ...] = (16,)
    """Side lengths at which every block is followed by self-attention (DDPM: 16 at 32x32).
    The middle of the network always has attention. () for none outside the middle."""
    dropout: float = 0.1
    """Dropout probability inside residual blocks, in [0, 1)."""
    scale_shift: bool = False
    """False: the embedding is added to the features (DDPM). True: it gives a scale and a shift
    for the second GroupNorm of each block (improved DDPM / ADM "use_scale_shift_norm")."""
    groups: int = 32
    """GroupNorm groups (DDPM: 32)."""
    heads: int = 1
    """Attention heads (DDPM: 1); every width must be divisible by it."""

    def __post_init__(self):
        object.__setattr__(self, "channel_mult", tuple(int(m) for m in self.channel_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ValueError(f"channel_mult must be a non-empty list of ints >= 1, "
                             f"got {self.channel_mult}")
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        super().__post_init__()  # num_classes
        for width in {self.channels, *(self.channels * m for m in self.channel_mult)}:
            if width % self.groups or width % self.heads:
                raise ValueError(f"width {width} (channels * channel_mult) must be divisible by "
                                 f"groups={self.groups} and heads={self.heads}")


class ResBlock(nn.Module):
    """DDPM residual block: x + conv(drop(SiLU(GN(conv(SiLU(GN(x))) + Linear(emb))))).

    With scale_shift, the middle becomes GN(h) * (1 + scale) + shift, (scale, shift) = Linear(emb).
    A 1x1 conv maps the skip when the width changes (DDPM's `nin_shortcut`).
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, groups: int,
                 scale_shift: bool):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = group_norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out if scale_shift else c_out)
        self.norm2 = group_norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x: (B, C_in, H, W); emb: (B, E), already through SiLU. Returns (B, C_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        e = self.emb(emb)[:, :, None, None]  # (B, C_out or 2 C_out, 1, 1)
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = modulate(self.norm2(h), shift, scale)
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.dropout(F.silu(h)))  # (B, C_out, H, W)
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """x + Attention(GN(x)) over the H * W positions (DDPM's `attn_block`, with `heads` heads)."""

    def __init__(self, channels: int, groups: int, heads: int):
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.attn = SelfAttention(channels, heads)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).permute(0, 2, 3, 1).reshape(B, H * W, C)  # (B, HW, C)
        h = self.attn(h).reshape(B, H, W, C).permute(0, 3, 1, 2)  # (B, C, H, W)
        return x + h


class Downsample(nn.Module):
    """3x3 conv with stride 2: (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling to `size` (default 2x), then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        H, W = x.shape[-2:]
        if size is None:
            size = (2 * H, 2 * W)
        if tuple(size) == (2 * H, 2 * W) and x.is_contiguous():
            # The same nearest 2x, 1.3 to 1.7x faster than F.interpolate on CPU
            # (docs/benchmarks.md); F.interpolate keeps a channels-last layout, so it does those.
            x = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # (B, C, 2H, 2W)
        else:
            x = F.interpolate(x, size=tuple(size), mode="nearest")  # (B, C, *size)
        return self.conv(x)


class _Level(nn.Module):
    """One resolution level: residual blocks, each followed by attention or nothing, and the
    resampling (Downsample, Upsample or nothing) at its end."""

    def __init__(self, blocks: list[ResBlock], attns: list[nn.Module], resample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(attns)
        self.resample = resample


class UNet(nn.Module):
    """The DDPM U-Net: `forward(x, t, cond=None)` maps x (B, C, H, W) to a tensor of its shape."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = c = config if config is not None else UNetConfig()
        ch, emb_dim = c.channels, 4 * c.channels

        def res_block(c_in: int, c_out: int) -> ResBlock:
            return ResBlock(c_in, c_out, emb_dim, c.dropout, c.groups, c.scale_shift)

        def attn(width: int, res: int) -> nn.Module:
            if res not in c.attn_resolutions:
                return nn.Identity()
            return AttnBlock(width, c.groups, c.heads)

        self.embed = ConditionEmbedding(ch, emb_dim, c.num_classes)
        self.conv_in = nn.Conv2d(c.in_channels, ch, 3, padding=1)

        # Down: widths of every feature map kept for a skip connection, in order.
        skips, width, res = [ch], ch, c.image_size
        level_res = []  # side length at each level: image_size, halved rounding up
        self.down = nn.ModuleList()
        for i, mult in enumerate(c.channel_mult):
            level_res.append(res)
            blocks, attns = [], []
            for _ in range(c.num_res_blocks):
                blocks.append(res_block(width, ch * mult))
                width = ch * mult
                attns.append(attn(width, res))
                skips.append(width)
            last = i == len(c.channel_mult) - 1
            self.down.append(_Level(blocks, attns, None if last else Downsample(width)))
            if not last:
                skips.append(width)
                res = (res + 1) // 2

        self.mid1 = res_block(width, width)
        self.mid_attn = AttnBlock(width, c.groups, c.heads)
        self.mid2 = res_block(width, width)

        # Up: num_res_blocks + 1 blocks per level, each eating one skip.
        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(c.channel_mult))):
            blocks, attns = [], []
            for _ in range(c.num_res_blocks + 1):
                blocks.append(res_block(width + skips.pop(), ch * mult))
                width = ch * mult
                attns.append(attn(width, level_res[i]))
            self.up.append(_Level(blocks, attns, Upsample(width) if i > 0 else None))

        self.norm_out = group_norm(width, c.groups)
        self.conv_out = nn.Conv2d(width, c.in_channels, 3, padding=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DDPM's initialisation: Xavier-uniform (fan-avg) weights, zero biases, zero output layers
        of every residual branch and of the network."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, ResBlock):
                zero_(m.conv2)
            elif isinstance(m, AttnBlock):
                zero_(m.attn.proj)
        zero_(self.conv_out)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """x: (B, C, H, W); t: (B,) times in [0, 1]; cond: (B,) int64 labels or None."""
        t = time_batch(t, x.shape[0], x.device)
        emb = F.silu(self.embed(t, cond))  # (B, 4 ch): SiLU shared by every block's Linear

        h = self.conv_in(x)  # (B, ch, H, W)
        hs = [h]
        for level in self.down:
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = attn(block(h, emb))  # (B, ch * mult, H_i, W_i)
                hs.append(h)
            if level.resample is not None:
                h = level.resample(h)  # (B, ch * mult, ceil(H_i / 2), ceil(W_i / 2))
                hs.append(h)

        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)  # (B, ch * mult[-1], H_min, W_min)

        for level in self.up:
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = attn(block(torch.cat([h, hs.pop()], dim=1), emb))  # (B, ch * mult, H_i, W_i)
            if level.resample is not None:
                h = level.resample(h, size=hs[-1].shape[-2:])  # (B, ch * mult, H_{i-1}, W_{i-1})

        out = self.conv_out(F.silu(self.norm_out(h)))  # (B, C, H, W)
        return out.to(x.dtype)
