"""Named network presets: `get_net("unet-digits", num_classes=10)`.

A preset is a config dataclass instance and a one-line description; overrides replace config
fields by name, so `get_net(name, **dataclasses.asdict(net.config))` rebuilds a network exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from .dit import DiT, DiTConfig
from .mlp import MLP, MLPConfig
from .unet import UNet, UNetConfig
from .unet1d import UNet1D, UNet1DConfig

__all__ = ["Preset", "PRESETS", "available", "describe", "get_config", "get_net", "build"]

NetConfig = UNetConfig | DiTConfig | MLPConfig | UNet1DConfig

_NETS: dict[type, type[nn.Module]] = {UNetConfig: UNet, DiTConfig: DiT, MLPConfig: MLP,
                                      UNet1DConfig: UNet1D}


@dataclass(frozen=True)
class Preset:
    config: NetConfig
    description: str


PRESETS: dict[str, Preset] = {
    "mlp-2d": Preset(
        MLPConfig(dim=2, hidden=128, depth=3),
        "residual MLP for 2-D toy data (width 128, 3 blocks)"),
    "unet-digits": Preset(
        UNetConfig(in_channels=1, image_size=8, channels=32, channel_mult=(1, 2),
                   num_res_blocks=2, attn_resolutions=(4,), dropout=0.0),
        "DDPM U-Net for 1x8x8 digits (ch 32, mult 1,2, attention at 4x4): 2 CPU minutes to digits"),
    "unet-mnist": Preset(
        UNetConfig(in_channels=1, image_size=28, channels=64, channel_mult=(1, 2, 2),
                   num_res_blocks=2, attn_resolutions=(7,), dropout=0.1),
        "DDPM U-Net for 1x28x28 MNIST (ch 64, mult 1,2,2: 28 -> 14 -> 7, attention at 7x7)"),
    "ddpm-cifar10": Preset(
        UNetConfig(in_channels=3, image_size=32, channels=128, channel_mult=(1, 2, 2, 2),
                   num_res_blocks=2, attn_resolutions=(16,), dropout=0.1),
        "the DDPM paper's 35.7M-parameter CIFAR-10 U-Net (Ho et al. 2020), 3x32x32"),
    "dit-s2": Preset(
        DiTConfig(in_channels=4, input_size=32, patch_size=2, hidden_size=384, depth=12, heads=6),
        "DiT-S/2 (Peebles & Xie 2023): hidden 384, depth 12, 6 heads, patch 2, on 4x32x32 latents"),
    "unet1d-pusht": Preset(
        UNet1DConfig(down_dims=(256, 512, 1024), kernel_size=5, n_groups=8, step_embed_dim=256),
        "Diffusion Policy's 1-D U-Net (Chi et al. 2023), Push-T state: dims 256,512,1024, "
        "kernel 5, 65.8M"),
    "unet1d-pusht-small": Preset(
        UNet1DConfig(down_dims=(40, 80, 160), kernel_size=5, n_groups=8, step_embed_dim=256),
        "the 1-D U-Net at CPU size: dims 40,80,160, kernel 5, 2.7M; a 10-step chunk in under "
        "30 ms on 2 cores (docs/nets.md)"),
}


def available() -> list[str]:
    """Names accepted by get_net."""
    return list(PRESETS)


def _preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def describe(name: str) -> str:
    """A one-line description of a preset."""
    return _preset(name).description


def get_config(name: str, **overrides) -> NetConfig:
    """The preset's config dataclass with some fields replaced."""
    config = _preset(name).config
    valid = [f.name for f in dataclasses.fields(config)]
    for key in overrides:
        if key not in valid:
            raise ValueError(f"{name}: unknown field {key!r} for {type(config).__name__}; "
                             f"valid fields: {', '.join(valid)}")
    return dataclasses.replace(config, **overrides)


def build(config: NetConfig) -> nn.Module:
    """The network for a config: UNetConfig -> UNet, DiTConfig -> DiT, MLPConfig -> MLP,
    UNet1DConfig -> UNet1D."""
    if type(config) not in _NETS:
        raise TypeError(f"not a network config: {type(config).__name__}")
    return _NETS[type(config)](config)


def get_net(name: str, **overrides) -> nn.Module:
    """A network from a named preset, with config fields overridden by keyword."""
    return build(get_config(name, **overrides))
