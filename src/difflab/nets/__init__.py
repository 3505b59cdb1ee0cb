"""Networks: `net(x, t, cond=None) -> Tensor` of x's shape (DESIGN.md section 2).

    net = difflab.nets.get_net("unet-digits", num_classes=10)
    net(x, t, cond)        # x (B, C, H, W) or (B, D); t (B,) in [0, 1]; cond (B,) int64 or None

t is embedded as 1000 t (a DDPM step number for T = 1000). With `num_classes = K`, label K is the
null label for classifier-free guidance and cond=None means it. Each network keeps its config
dataclass in `.config`. Presets: `available()`, `describe(name)`.

The 1-D U-Net of Diffusion Policy denoises action chunks and is always conditioned on an
observation window:

    net = difflab.nets.get_net("unet1d-pusht", action_dim=2, horizon=16, obs_dim=20, n_obs_steps=2)
    net(x, t, cond)        # x (B, Tp, action_dim); t (B,) in [0, 1]; cond (B, To, obs_dim)
"""

from .dit import DiT, DiTConfig
from .mlp import MLP, MLPConfig
from .presets import PRESETS, available, build, describe, get_config, get_net
from .unet import UNet, UNetConfig
from .unet1d import UNet1D, UNet1DConfig

__all__ = [
    "get_net",
    "get_config",
    "build",
    "available",
    "describe",
    "PRESETS",
    "UNet",
    "UNetConfig",
    "DiT",
    "DiTConfig",
    "MLP",
    "MLPConfig",
    "UNet1D",
    "UNet1DConfig",
]
