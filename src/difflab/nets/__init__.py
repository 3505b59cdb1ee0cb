"""Networks: `net(x, t, cond=None) -> Tensor` of x's shape (DESIGN.md section 2).

    net = difflab.nets.get_net("unet-digits", num_classes=10)
    net(x, t, cond)        # x (B, C, H, W) or (B, D); t (B,) in [0, 1]; cond (B,) int64 or None

t is embedded as 1000 t (a DDPM step number for T = 1000). With `num_classes = K`, label K is the
null label for classifier-free guidance and cond=None means it. Each network keeps its config
dataclass in `.config`. Presets: `available()`, `describe(name)`.
"""

from .dit import DiT, DiTConfig
from .mlp import MLP, MLPConfig
from .presets import PRESETS, available, build, describe, get_config, get_net
from .unet import UNet, UNetConfig

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
]
