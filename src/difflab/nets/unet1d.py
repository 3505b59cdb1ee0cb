"""The temporal 1-D U-Net of Diffusion Policy (Chi et al. 2023, section III.B and figure 2;
after Janner et al. 2022, "Planning with Diffusion", appendix C): a noisy action chunk is
convolved over time, conditioned everywhere by FiLM on the diffusion step and the observations.

    x (B, Tp, A) -> (B, A, Tp)
    emb = [MLP(sinusoid(1000 t)), flatten(cond)]          # (B, step_embed_dim + To * obs_dim)
    down: per level, 2 ResBlock1D, then Conv1d(stride 2) except at the last level
    mid:  2 ResBlock1D
    up:   per level but the first (coarsest to finest), 2 ResBlock1D on concat(h, skip),
          then ConvTranspose1d(stride 2)
    out:  Conv1dBlock, Conv1d 1x1 to A                    -> (B, Tp, A)

ResBlock1D: Conv1dBlock, FiLM (Perez et al. 2018) from Linear(Mish(emb)), Conv1dBlock, plus the
input (through a 1x1 conv where the width changes). Conv1dBlock = Conv1d, GroupNorm, Mish.

As in the paper's code: weights keep PyTorch's default initialisation (the output is not zero at
start); FiLM is `scale * h + bias` (not `1 + scale`); GroupNorm has eps 1e-5; the skip of the
finest level is not used, so the up path has one level fewer than the down path. difflab's own
choices: time is `1000 t` (difflab's convention; the paper embeds the integer DDPM step), and the
final Conv1dBlock uses `n_groups` (the paper's code always uses 8; no parameter changes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import TIME_SCALE, sinusoidal_embedding, time_batch

__all__ = ["UNet1DConfig", "UNet1D", "Conv1dBlock", "ResBlock1D"]


@dataclass(frozen=True)
class UNet1DConfig:
    """The 1-D U-Net's shape. The defaults are the paper's Push-T state-based model
    (`unet1d-pusht`). Always conditioned on an observation window; no class labels."""

    action_dim: int = 2
    """Action dimension A: x is (B, Tp, A) and so is the output (Push-T: the agent's x, y)."""
    horizon: int = 16
    """Action chunk length Tp the network is built for; it must be a multiple of
    2 ** (len(down_dims) - 1), the down-sampling factor. Any such multiple works at call time."""
    obs_dim: int = 20
    """Observation dimension per step (Push-T: 9 block keypoints (x, y) and the agent's (x, y))."""
    n_obs_steps: int = 2
    """Observation window To: cond is (B, To, obs_dim), flattened into the FiLM conditioning."""
    down_dims: tuple[int, ...] = (256, 512, 1024)
    """Width of each level, finest first (>= 1 level); each divisible by n_groups. Time halves
    between consecutive levels: len(down_dims) - 1 down-samplings."""
    kernel_size: int = 5
    """Temporal kernel size of every Conv1dBlock (odd, so that the length is kept)."""
    n_groups: int = 8
    """GroupNorm groups in every Conv1dBlock."""
    step_embed_dim: int = 256
    """Width of the sinusoidal step embedding and of its MLP's output (hidden: 4x this)."""
    cond_predict_scale: bool = True
    """True: FiLM with a per-channel scale and bias, h * scale + bias (the paper). False: only a
    per-channel bias, h + bias (Janner et al. 2022)."""
    out_dim: int | None = None
    """Output channels per step; None: action_dim (a prediction shaped like x). The binned
    baseline (task policy-binned) asks for action_dim x bins logits."""

    def __post_init__(self):
        object.__setattr__(self, "down_dims", tuple(int(d) for d in self.down_dims))
        for name in ("action_dim", "horizon", "obs_dim", "n_obs_steps", "n_groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.down_dims or min(self.down_dims) < 1:
            raise ValueError(f"down_dims must be a non-empty list of ints >= 1, "
                             f"got {self.down_dims}")
        if any(d % self.n_groups for d in self.down_dims):
            raise ValueError(f"every width in down_dims {self.down_dims} must be divisible by "
                             f"n_groups={self.n_groups}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        if self.step_embed_dim < 2:
            raise ValueError(f"step_embed_dim must be >= 2, got {self.step_embed_dim}")
        check_horizon(self.horizon, self.down_dims)

    @property
    def cond_dim(self) -> int:
        """Width of the FiLM conditioning: the step embedding and the flattened window."""
        return self.step_embed_dim + self.n_obs_steps * self.obs_dim


def check_horizon(horizon: int, down_dims: tuple[int, ...]) -> None:
    """A one-line error unless the len(down_dims) - 1 halvings divide the horizon."""
    factor = 2 ** (len(down_dims) - 1)
    if horizon < 1 or horizon % factor:
        raise ValueError(f"horizon {horizon} cannot be halved {len(down_dims) - 1} times "
                         f"(down_dims {down_dims}); use a multiple of {factor}: "
                         f"{', '.join(str(factor * k) for k in range(1, 5))}, ...")


class Conv1dBlock(nn.Module):
    """Conv1d (length-preserving padding), GroupNorm, Mish: (B, C_in, T) -> (B, C_out, T)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2)
        self.norm = nn.GroupNorm(n_groups, c_out)

    def forward(self, x: Tensor) -> Tensor:
        return F.mish(self.norm(self.conv(x)))


class ResBlock1D(nn.Module):
    """x' = Conv1dBlock(FiLM(Conv1dBlock(x), emb)) + skip(x), FiLM(h) = scale * h + bias with
    (scale, bias) = Linear(Mish(emb)) per channel (Perez et al. 2018; Chi et al. 2023). The
    caller applies the Mish once for every block."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int,
                 predict_scale: bool):
        super().__init__()
        self.predict_scale = predict_scale
        self.block1 = Conv1dBlock(c_in, c_out, kernel_size, n_groups)
        self.film = nn.Linear(cond_dim, 2 * c_out if predict_scale else c_out)
        self.block2 = Conv1dBlock(c_out, c_out, kernel_size, n_groups)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x: (B, C_in, T); emb: (B, cond_dim), already through Mish. Returns (B, C_out, T)."""
        h = self.block1(x)  # (B, C_out, T)
        e = self.film(emb)[:, :, None]  # (B, 2 C_out or C_out, 1)
        if self.predict_scale:
            scale, bias = e.chunk(2, dim=1)  # (B, C_out, 1) each
            h = scale * h + bias
        else:
            h = h + e
        return self.block2(h) + self.skip(x)  # (B, C_out, T)


class _Level(nn.Module):
    """Two residual blocks and the resampling after them (stride-2 conv, transposed conv, or
    nothing)."""

    def __init__(self, blocks: list[ResBlock1D], resample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.resample = resample


class UNet1D(nn.Module):
    """Diffusion Policy's 1-D U-Net: `forward(x, t, cond)` maps a noisy action chunk
    x (B, Tp, A) to a tensor of its shape, conditioned on the observation window cond."""

    def __init__(self, config: UNet1DConfig | None = None):
        super().__init__()
        self.config = c = config if config is not None else UNet1DConfig()
        d = c.step_embed_dim

        def res_block(c_in: int, c_out: int) -> ResBlock1D:
            return ResBlock1D(c_in, c_out, c.cond_dim, c.kernel_size, c.n_groups,
                              c.cond_predict_scale)

        self.step_mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.Mish(), nn.Linear(4 * d, d))
        widths = (c.action_dim, *c.down_dims)
        # (c_in, c_out) of each level, finest first
        pairs = list(zip(widths[:-1], widths[1:], strict=True))
        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.down.append(_Level([res_block(c_in, c_out), res_block(c_out, c_out)],
                                    None if last else nn.Conv1d(c_out, c_out, 3, 2, 1)))
        self.mid = nn.ModuleList([res_block(widths[-1], widths[-1]) for _ in range(2)])
        self.up = nn.ModuleList()
        for c_in, c_out in reversed(pairs[1:]):  # coarsest first; concat doubles the width
            self.up.append(_Level([res_block(2 * c_out, c_in), res_block(c_in, c_in)],
                                  nn.ConvTranspose1d(c_in, c_in, 4, 2, 1)))
        self.final = Conv1dBlock(c.down_dims[0], c.down_dims[0], c.kernel_size, c.n_groups)
        self.out = nn.Conv1d(c.down_dims[0], c.out_dim or c.action_dim, 1)

    def _check(self, x: Tensor, cond: Tensor | None) -> None:
        c = self.config
        if cond is None:
            raise ValueError(f"UNet1D is always conditioned: pass cond, the observation window "
                             f"of shape (B, {c.n_obs_steps}, {c.obs_dim})")
        if x.ndim != 3 or x.shape[2] != c.action_dim:
            raise ValueError(f"UNet1D: x must be (B, T, {c.action_dim}) action chunks, got "
                             f"shape {tuple(x.shape)}")
        check_horizon(x.shape[1], c.down_dims)
        if tuple(cond.shape) != (x.shape[0], c.n_obs_steps, c.obs_dim):
            raise ValueError(f"UNet1D: cond must be the observation window of shape "
                             f"({x.shape[0]}, {c.n_obs_steps}, {c.obs_dim}) (B, To, obs_dim), "
                             f"got {tuple(cond.shape)}")

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """x: (B, Tp, A); t: (B,) times in [0, 1]; cond: (B, To, obs_dim) observations."""
        self._check(x, cond)
        B = x.shape[0]
        t = time_batch(t, B, x.device)
        step = self.step_mlp(sinusoidal_embedding(TIME_SCALE * t, self.config.step_embed_dim))
        emb = torch.cat([step, cond.reshape(B, -1).to(step.dtype)], dim=1)  # (B, cond_dim)
        emb = F.mish(emb)  # shared by every block's FiLM Linear

        h = x.transpose(1, 2)  # (B, A, Tp)
        skips = []
        for i, level in enumerate(self.down):
            for block in level.blocks:
                h = block(h, emb)  # (B, down_dims[i], Tp / 2^i)
            if i > 0:  # the finest level's skip is unused (the paper's code)
                skips.append(h)
            if level.resample is not None:
                h = level.resample(h)  # (B, down_dims[i], Tp / 2^(i+1))
        for block in self.mid:
            h = block(h, emb)  # (B, down_dims[-1], Tp / 2^(L-1))
        for level in self.up:
            h = torch.cat([h, skips.pop()], dim=1)  # (B, 2 down_dims[i], Tp / 2^i)
            for block in level.blocks:
                h = block(h, emb)  # (B, down_dims[i-1], Tp / 2^i)
            h = level.resample(h)  # (B, down_dims[i-1], Tp / 2^(i-1))
        out = self.out(self.final(h))  # (B, out_dim or A, Tp)
        return out.transpose(1, 2).to(x.dtype)  # (B, Tp, out_dim or A)
