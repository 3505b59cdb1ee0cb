"""Toy 2-D data sets and the Gaussian mixture presets as fixed-size, seeded tensor data sets.

The five shapes are the toy densities of FFJORD (Grathwohl et al. 2019, `toy_data.py`), drawn
with a torch.Generator instead of numpy's global state. Each is then moved and scaled by one
fixed affine map, x <- (x - m) / s, with m the exact mean and s the root mean square per
coordinate (one scalar, so shapes keep their aspect ratio): every set has mean ~0 and a root mean
square of ~1 over both coordinates, whatever n and seed (one coordinate may spread more than
the other: moons has standard deviations 1.22 and 0.71). Labels where a set has natural
classes: the moon (2), the Gaussian (8), the ring (4), the mixture component; else -1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from difflab.data.base import TensorSet
from difflab.data.mixture import GaussianMixture
from difflab.data.registry import register

__all__ = ["TOY_SETS", "ToySpec", "make_toy", "toy_sample"]

_F64 = torch.float64
Toy = Callable[[int, torch.Generator], tuple[Tensor, Tensor | None]]


def _swiss_roll(n: int, gen: torch.Generator) -> tuple[Tensor, None]:
    """FFJORD's swiss roll: ((t cos t, t sin t) + N(0, I)) / 5 with t ~ U[1.5pi, 4.5pi]."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=gen, dtype=_F64))  # (n,)
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1)  # (n, 2)
    return (x + torch.randn(n, 2, generator=gen, dtype=_F64)) / 5, None


def _moons(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """sklearn make_moons(noise=0.1) * 2 + (-1, -0.2): two interleaved half circles."""
    y = torch.randint(0, 2, (n,), generator=gen)  # (n,) which moon
    th = math.pi * torch.rand(n, generator=gen, dtype=_F64)  # (n,)
    c, s = torch.cos(th), torch.sin(th)
    upper = torch.stack([c, s], 1)  # (n, 2)
    lower = torch.stack([1 - c, 0.5 - s], 1)  # (n, 2)
    x = torch.where(y[:, None] == 0, upper, lower)
    x = x + 0.1 * torch.randn(n, 2, generator=gen, dtype=_F64)
    return 2 * x + torch.tensor([-1.0, -0.2], dtype=_F64), y


def _8gaussians(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Eight N(mu_k, 0.5^2 I) with mu_k = 4 (cos k pi/4, sin k pi/4), all divided by 1.414."""
    y = torch.randint(0, 8, (n,), generator=gen)  # (n,) which Gaussian, counterclockwise from +x
    ang = y.to(_F64) * (math.pi / 4)
    mu = 4 * torch.stack([torch.cos(ang), torch.sin(ang)], 1)  # (n, 2)
    return (mu + 0.5 * torch.randn(n, 2, generator=gen, dtype=_F64)) / 1.414, y


def _checkerboard(n: int, gen: torch.Generator) -> tuple[Tensor, None]:
    """Uniform on the 8 dark squares of a 4x4 board of side-2 squares covering [-4, 4]^2."""
    x1 = 4 * torch.rand(n, generator=gen, dtype=_F64) - 2  # (n,)
    x2 = torch.rand(n, generator=gen, dtype=_F64) - 2 * torch.randint(0, 2, (n,), generator=gen)
    x2 = x2 + torch.floor(x1) % 2
    return 2 * torch.stack([x1, x2], 1), None


def _rings(n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Four concentric circles of radii 0.75, 1.5, 2.25, 3 (equal mass) + N(0, 0.08^2 I)."""
    y = torch.randint(0, 4, (n,), generator=gen)  # (n,) which ring, innermost first
    th = 2 * math.pi * torch.rand(n, generator=gen, dtype=_F64)
    r = 0.75 * (y.to(_F64) + 1)
    x = r[:, None] * torch.stack([torch.cos(th), torch.sin(th)], 1)  # (n, 2)
    return x + 0.08 * torch.randn(n, 2, generator=gen, dtype=_F64), y


@dataclass(frozen=True)
class ToySpec:
    """A toy set: its generator, number of classes (0: unlabelled), exact mean m, scale s."""

    fn: Toy
    num_classes: int
    mean: tuple[float, float]  # m, the exact mean of fn's output
    scale: float  # s, the per-coordinate RMS of fn's output about m
    description: str


TOY_SETS: dict[str, ToySpec] = {
    # m: mean of (t cos t, t sin t) / 5 over t ~ U[1.5pi, 4.5pi]; s measured at n = 2e7
    "swiss_roll": ToySpec(_swiss_roll, 0, (0.4, 2 / (15 * math.pi)), 1.3725, "a noisy spiral"),
    # s measured at n = 2e7
    "moons": ToySpec(_moons, 2, (0.0, 0.3), 1.4244, "two interleaved half circles"),
    # var = (16 / 2 + 0.25) / 1.414^2
    "8gaussians": ToySpec(_8gaussians, 8, (0.0, 0.0), math.sqrt(8.25) / 1.414,
                          "eight Gaussians on a circle"),
    # U[-4, 4] marginals
    "checkerboard": ToySpec(_checkerboard, 0, (0.0, 0.0), 4 / math.sqrt(3),
                            "uniform on 8 squares of a 4x4 board"),
    # var = E[r^2] / 2 + 0.08^2, E[r^2] = 0.5625 * (1 + 4 + 9 + 16) / 4
    "rings": ToySpec(_rings, 4, (0.0, 0.0), math.sqrt(0.5 * 0.5625 * 7.5 + 0.0064),
                     "four concentric rings"),
}


def toy_sample(name: str, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """n float64 draws (n, 2) of a toy set, normalized, and labels (n,) (-1 where unlabelled)."""
    if name not in TOY_SETS:
        raise ValueError(f"unknown toy set {name!r}; choose one of {', '.join(TOY_SETS)}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    spec = TOY_SETS[name]
    x, y = spec.fn(n, torch.Generator().manual_seed(int(seed)))
    x = (x - torch.tensor(spec.mean, dtype=_F64)) / spec.scale  # (n, 2)
    return x, (torch.full((n,), -1, dtype=torch.long) if y is None else y)


def make_toy(name: str, n: int = 100_000, seed: int = 0) -> TensorSet:
    """A toy 2-D set as a TensorSet of n items, the same for the same (n, seed)."""
    x, y = toy_sample(name, n, seed)
    return TensorSet(x, y, name=name, num_classes=TOY_SETS[name].num_classes)


def _mixture_set(preset: str, name: str, n: int, seed: int) -> TensorSet:
    """GaussianMixture.preset(preset).sample(n, seed) with the component as label; `.mixture`."""
    mix = GaussianMixture.preset(preset)
    x, y = mix.sample(n, seed=int(seed), return_labels=True)  # (n, D) float64, (n,)
    ds = TensorSet(x, y, name=name, num_classes=mix.n_components)
    ds.mixture = mix  # the exact density, for tests against closed forms
    return ds


def _register_toy(name: str) -> None:
    """Register the toy set `name` (a closure per name)."""

    @register(name, f"toy 2-D: {TOY_SETS[name].description}; kw n=100000, seed=0")
    def build(root=None, *, n: int = 100_000, seed: int = 0) -> TensorSet:
        return make_toy(name, n, seed)


for _name in TOY_SETS:
    _register_toy(_name)


@register("mixture-2d", "GaussianMixture.preset('2d'): 8 components in 2-D; kw n, seed")
def _mixture_2d(root=None, *, n: int = 100_000, seed: int = 0) -> TensorSet:
    return _mixture_set("2d", "mixture-2d", n, seed)


@register("mixture-d64", "GaussianMixture.preset('d64'): 16 components in 64-D; kw n, seed")
def _mixture_d64(root=None, *, n: int = 100_000, seed: int = 0) -> TensorSet:
    return _mixture_set("d64", "mixture-d64", n, seed)
