"""Samplers: plain functions `sampler(model, x, times, *, noise, callback=None, **options)`.

`model` is a Denoiser ((x, t) -> (x0_hat, eps_hat)), possibly wrapped for guidance or clipping
(guidance.py), `times` a descending grid ending at 0, and `noise()` a source of fresh per-sample
Gaussian noise. The registry names them for `difflab.sample` and says how many intervals a budget
of network evaluations (NFE) buys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .ancestral import ddim, ddpm
from .base import Denoiser, check_times
from .guidance import ClassifierFreeGuidance, ClipX0, DenoiserWrapper
from .multistep import dpmpp_2m, dpmpp_2m_sde, dpmpp_3m, dpmpp_3m_sde
from .ode import euler, heun, rk45
from .sde import euler_maruyama, pc
from .unipc import unipc, unipc3


@dataclass(frozen=True)
class SamplerSpec:
    """A registered sampler: its function, default spacing, and whether it draws noise."""

    fn: Callable
    spacing: str
    stochastic: bool
    intervals: Callable[[int, dict], int]  # (NFE budget, options) -> number of grid intervals
    zero_snr: bool = False
    """Runs on a zero-terminal-SNR schedule as it is (alpha(1) = 0); the others are given
    `schedule.with_finite_terminal_snr()` by `difflab.sample` (docs/conventions.md)."""

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]


def _one_per_step(nfe: int, options: dict) -> int:
    return nfe


def _heun_intervals(nfe: int, options: dict) -> int:
    return max(1, (nfe + 1) // 2)  # 2 evaluations an interval, 1 for the final denoise


def _pc_intervals(nfe: int, options: dict) -> int:
    k = options.get("corrector_steps", 1)
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"corrector_steps must be an integer >= 0, got {k!r}")
    if nfe < 1 + k:
        raise ValueError(f"pc spends {1 + k} evaluations a step (corrector_steps={k}): give "
                         f"steps >= {1 + k}")
    return nfe // (1 + k)


_REGISTRY: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(ddpm, "trailing", True, _one_per_step, zero_snr=True),
    "ddim": SamplerSpec(ddim, "trailing", False, _one_per_step, zero_snr=True),
    "euler_maruyama": SamplerSpec(euler_maruyama, "trailing", True, _one_per_step),
    "pc": SamplerSpec(pc, "trailing", True, _pc_intervals),
    "euler": SamplerSpec(euler, "karras", False, _one_per_step),
    "heun": SamplerSpec(heun, "karras", False, _heun_intervals),
    "dpm++2m": SamplerSpec(dpmpp_2m, "logsnr_skip", False, _one_per_step),
    "dpm++3m": SamplerSpec(dpmpp_3m, "logsnr_skip", False, _one_per_step),
    "dpm++2m-sde": SamplerSpec(dpmpp_2m_sde, "logsnr_skip", True, _one_per_step),
    "dpm++3m-sde": SamplerSpec(dpmpp_3m_sde, "logsnr_skip", True, _one_per_step),
    "unipc": SamplerSpec(unipc, "logsnr_skip", False, _one_per_step),
    "unipc3": SamplerSpec(unipc3, "logsnr_skip", False, _one_per_step),
    "rk45": SamplerSpec(rk45, "logsnr", False, lambda nfe, options: 2),  # adaptive: [1, t_min, 0]
}


def available() -> list[str]:
    """The registered sampler names."""
    return list(_REGISTRY)


def get(name: str) -> SamplerSpec:
    """The registered sampler called `name`."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


__all__ = ["Denoiser", "DenoiserWrapper", "ClassifierFreeGuidance", "ClipX0", "SamplerSpec",
           "available", "get", "check_times", "ddpm", "ddim", "euler_maruyama", "pc", "euler",
           "heun", "rk45", "dpmpp_2m", "dpmpp_3m", "dpmpp_2m_sde", "dpmpp_3m_sde", "unipc",
           "unipc3"]
