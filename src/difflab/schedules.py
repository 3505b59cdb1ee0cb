"""Noise schedules: x_t = alpha(t) x0 + sigma(t) eps, with t in [0, 1] (DESIGN.md section 1).

Every schedule gives alpha(t), sigma(t), logsnr(t) = log(alpha^2 / sigma^2) (strictly decreasing),
its inverse t_of_logsnr, the smallest trained time t_min, and the SDE coefficients f(t), g(t) of
dx = f(t) x dt + g(t) dW (Song et al. 2021, eq. 5), with f = d log(alpha)/dt and
g^2 = -sigma^2 d logsnr/dt (Kingma et al. 2021, VDM appendix).

All schedule arithmetic is float64; callers cast to their state dtype. The sampling grids
(spacings, `get_times`) are in times.py, and importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .times import SPACINGS, get_times  # the grids, kept importable from here

__all__ = [
    "Schedule",
    "VPSchedule",
    "DiscreteSchedule",
    "VPSDE",
    "SubVPSDE",
    "VESchedule",
    "get_schedule",
    "available",
    "betas_for",
    "rescale_zero_terminal_snr",
    "get_times",
    "SPACINGS",
]


def _t(t) -> Tensor:
    """Any time (float, list, tensor) as a float64 tensor."""
    return torch.as_tensor(t, dtype=torch.float64)


class Schedule:
    """Base class. Subclasses define alpha, sigma, logsnr and their time derivatives."""

    name: str = "schedule"
    t_min: float = 0.0

    def alpha(self, t) -> Tensor:
        raise NotImplementedError

    def sigma(self, t) -> Tensor:
        raise NotImplementedError

    def logsnr(self, t) -> Tensor:
        """log(alpha^2 / sigma^2)."""
        t = _t(t)
        return 2 * (torch.log(self.alpha(t)) - torch.log(self.sigma(t)))

    def dlogsnr_dt(self, t) -> Tensor:
        raise NotImplementedError

    def dlogalpha_dt(self, t) -> Tensor:
        raise NotImplementedError

    def sigma_hat(self, t) -> Tensor:
        """sigma / alpha: the noise level in the EDM / k-diffusion coordinates x_hat = x / alpha."""
        return torch.exp(-0.5 * self.logsnr(t))

    def with_finite_terminal_snr(self) -> Schedule:
        """This schedule, or, where logsnr(1) = -inf (zero terminal SNR), a copy whose last
        logsnr is finite, for the samplers that divide by alpha or step in log-SNR."""
        return self

    def t_of_logsnr(self, l) -> Tensor:
        """Inverse of logsnr by bisection on [0, 1] (subclasses override with closed forms)."""
        l = _t(l)
        lo = torch.zeros_like(l)
        hi = torch.ones_like(l)
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            above = self.logsnr(mid) > l  # logsnr decreases: the root lies later
            lo = torch.where(above, mid, lo)
            hi = torch.where(above, hi, mid)
        return 0.5 * (lo + hi)

    def t_of_sigma_hat(self, s) -> Tensor:
        """The time at which sigma / alpha equals s."""
        return self.t_of_logsnr(-2 * torch.log(_t(s)))

    def f(self, t) -> Tensor:
        """Drift coefficient of the forward SDE: f(t) = d log alpha / dt."""
        return self.dlogalpha_dt(t)

    def g(self, t) -> Tensor:
        """Diffusion coefficient of the forward SDE: g(t)^2 = -sigma^2 d logsnr / dt."""
        t = _t(t)
        return torch.sqrt(-(self.sigma(t) ** 2) * self.dlogsnr_dt(t))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class VPSchedule(Schedule):
    """Variance preserving: alpha^2 = sigmoid(logsnr), sigma^2 = sigmoid(-logsnr)."""

    def alpha(self, t) -> Tensor:
        return torch.sigmoid(self.logsnr(t)).sqrt()

    def sigma(self, t) -> Tensor:
        return torch.sigmoid(-self.logsnr(t)).sqrt()

    def dlogalpha_dt(self, t) -> Tensor:
        # d/dt 0.5 log sigmoid(l) = 0.5 sigmoid(-l) l'
        t = _t(t)
        return 0.5 * torch.sigmoid(-self.logsnr(t)) * self.dlogsnr_dt(t)


# ----------------------------------------------------------------------------------------------
# Discrete DDPM schedules on the grid t_i = i / T


def betas_for(name: str, T: int = 1000, **kw) -> Tensor:
    """The beta_1..beta_T of a named discrete schedule, float64."""
    i = torch.arange(T, dtype=torch.float64)
    if name == "linear":  # Ho et al. 2020, section 4
        b0, b1 = kw.get("beta_start", 1e-4), kw.get("beta_end", 0.02)
        return torch.linspace(b0, b1, T, dtype=torch.float64)
    if name == "scaled_linear":  # Stable Diffusion: linear in sqrt(beta)
        b0, b1 = kw.get("beta_start", 0.00085), kw.get("beta_end", 0.012)
        return torch.linspace(b0**0.5, b1**0.5, T, dtype=torch.float64) ** 2
    if name == "cosine":  # Nichol & Dhariwal 2021, eq. 17, beta capped at 0.999
        s = kw.get("s", 0.008)

        def abar(u):
            return torch.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2

        return torch.clamp(1 - abar(i + 1) / abar(i), max=kw.get("max_beta", 0.999))
    if name == "sigmoid":  # GeoDiff (Xu et al. 2022): beta = sigmoid(linspace(-6, 6)) rescaled
        b0, b1 = kw.get("beta_start", 1e-4), kw.get("beta_end", 0.02)
        return torch.sigmoid(torch.linspace(-6, 6, T, dtype=torch.float64)) * (b1 - b0) + b0
    raise ValueError(f"unknown discrete schedule {name!r}; choose one of {sorted(DISCRETE)}")


def rescale_zero_terminal_snr(alphas_cumprod: Tensor) -> Tensor:
    """Shift and scale sqrt(alpha_bar) so that alpha_bar_T = 0 (Lin et al. 2024, Algorithm 1)."""
    a = alphas_cumprod.sqrt()
    a0, aT = a[0].clone(), a[-1].clone()
    a = (a - aT) * a0 / (a0 - aT)
    return a**2


class DiscreteSchedule(VPSchedule):
    """A DDPM schedule with T steps on the grid t_i = i / T, i = 1..T.

    alpha(t_i)^2 is exactly alpha_bar_i = prod_{s <= i} (1 - beta_s); between grid points logsnr is
    linear in t, and below t_1 it continues the first segment's line (logsnr(0) = +inf).
    """

    def __init__(self, betas: Tensor, name: str = "discrete"):
        betas = _t(betas)
        if betas.ndim != 1 or len(betas) < 2:
            raise ValueError("a discrete schedule needs at least 2 betas")
        self.name = name
        self.T = len(betas)
        self.t_min = 1.0 / self.T
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)  # alpha_bar_1..alpha_bar_T
        self._set_grid(self.alphas_cumprod)

    @classmethod
    def from_alphas_cumprod(cls, alphas_cumprod: Tensor, name: str = "discrete"):
        ac = _t(alphas_cumprod)
        prev = torch.cat([ac.new_ones(1), ac[:-1]])
        obj = cls(1 - ac / prev, name=name)
        obj.alphas_cumprod = ac  # keep the exact values given
        obj._set_grid(ac)
        return obj

    def _set_grid(self, ac: Tensor) -> None:
        self._l = torch.log(ac) - torch.log1p(-ac)  # logsnr at t_1..t_T
        if not bool((self._l[1:] < self._l[:-1]).all()):
            raise ValueError("alpha_bar must be strictly decreasing")
        self._l_on = {self._l.device: self._l}

    def with_finite_terminal_snr(self) -> DiscreteSchedule:
        """Zero terminal SNR (alpha_bar_T = 0): the copy with the last logsnr extrapolated
        linearly from the two before it, l_T = 2 l_{T-1} - l_{T-2} (about -20 for `linear`,
        alpha_bar_T ~ 1e-9), so x / alpha and log-SNR steps stay finite. diffusers sets
        alpha_bar_T = 2^-24 for the same purpose, which is not below alpha_bar_{T-1} for every
        schedule. Otherwise this schedule itself."""
        if bool(torch.isfinite(self._l[-1])):
            return self
        l_end = 2 * self._l[-2] - self._l[-3]
        ac = self.alphas_cumprod.clone()
        ac[-1] = torch.sigmoid(l_end)
        return DiscreteSchedule.from_alphas_cumprod(ac, name=f"{self.name}, finite end")

    def _grid(self, device: torch.device) -> Tensor:
        """The logsnr grid on `device` (copied there once): times on a GPU index it there."""
        if device not in self._l_on:
            self._l_on[device] = self._l.to(device)
        return self._l_on[device]

    def logsnr(self, t) -> Tensor:
        t = _t(t)
        u = (t * self.T).clamp(max=self.T)  # grid coordinate; t_i has u = i
        k = torch.clamp(torch.floor(u), 1, self.T - 1).long()  # segment [k, k+1], 1-based
        L = self._grid(t.device)
        l0, l1 = L[k - 1], L[k]
        w = u - k
        with torch.no_grad():
            inf_end = torch.isinf(l1)
        out = torch.where(inf_end, torch.where(w > 0, l1, l0), l0 + w * (l1 - l0))
        return torch.where(t <= 0, torch.full_like(out, math.inf), out)

    def dlogsnr_dt(self, t) -> Tensor:
        u = (_t(t) * self.T).clamp(max=self.T)
        k = torch.clamp(torch.floor(u), 1, self.T - 1).long()
        # the segment ending at an exact grid point (u integer) is the one to its left
        k = torch.where((u == torch.floor(u)) & (u > 1) & (u < self.T), k - 1, k)
        L = self._grid(u.device)
        return (L[k] - L[k - 1]) * self.T

    def t_of_logsnr(self, l) -> Tensor:
        l = _t(l)
        L = self._grid(l.device)
        # L is decreasing; find the segment with L[k] >= l >= L[k+1] (0-based)
        k = torch.searchsorted(-L.contiguous(), -l.contiguous().reshape(-1)).reshape(l.shape)
        k = torch.clamp(k, 1, self.T - 1)  # segment between L[k-1] and L[k]
        l0, l1 = L[k - 1], L[k]
        w = (l - l0) / (l1 - l0)
        w = torch.where(torch.isinf(l1), torch.where(l == l1, 1.0, 0.0).to(w), w)
        t = (k + w) / self.T  # u = k + w, with t_k (1-based index k) at u = k
        t = torch.where(l == math.inf, torch.zeros_like(t), t)
        return t.clamp(0, 1)


DISCRETE = {"linear", "cosine", "sigmoid", "scaled_linear"}


# ----------------------------------------------------------------------------------------------
# Continuous schedules


class _LinearBeta(Schedule):
    """What VP-SDE and sub-VP SDE share: beta(t) = beta_min + t (beta_max - beta_min) and its
    integral B(t) = int_0^t beta (Song et al. 2021, eq. 11 and 29)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, t_min: float = 1e-3):
        self.beta_min, self.beta_max, self.t_min = beta_min, beta_max, t_min

    def _beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _B(self, t: Tensor) -> Tensor:  # integral of beta from 0 to t
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2


class VPSDE(_LinearBeta, VPSchedule):
    """VP-SDE, Song et al. 2021 eq. 11: beta(t) = beta_min + t (beta_max - beta_min)."""

    name = "vp"

    def logsnr(self, t) -> Tensor:
        B = self._B(_t(t))
        return -B - torch.log(-torch.expm1(-B))  # log(e^-B / (1 - e^-B))

    def dlogsnr_dt(self, t) -> Tensor:
        t = _t(t)
        return -self._beta(t) / -torch.expm1(-self._B(t))

    def t_of_logsnr(self, l) -> Tensor:
        B = torch.nn.functional.softplus(-_t(l))  # log(1 + e^-l)
        a, b = 0.5 * (self.beta_max - self.beta_min), self.beta_min
        if a == 0:
            return B / b
        return (-b + torch.sqrt(b * b + 4 * a * B)) / (2 * a)


class SubVPSDE(_LinearBeta):
    """sub-VP SDE, Song et al. 2021 eq. 29: alpha = e^{-B/2}, sigma = 1 - e^{-B}."""

    name = "subvp"

    def alpha(self, t) -> Tensor:
        return torch.exp(-0.5 * self._B(_t(t)))

    def sigma(self, t) -> Tensor:
        return -torch.expm1(-self._B(_t(t)))

    def logsnr(self, t) -> Tensor:
        B = self._B(_t(t))
        return -B - 2 * torch.log(-torch.expm1(-B))

    def dlogsnr_dt(self, t) -> Tensor:
        t = _t(t)
        B = self._B(t)
        return -self._beta(t) * (1 + 2 * torch.exp(-B) / -torch.expm1(-B))

    def dlogalpha_dt(self, t) -> Tensor:
        return -0.5 * self._beta(_t(t))


class VESchedule(Schedule):
    """Variance exploding: alpha = 1, sigma = sigma_min (sigma_max / sigma_min)^t (Song et al.
    2021 eq. 9). The `edm` preset uses Karras et al. 2022's range 0.002 .. 80."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, name: str = "ve",
                 t_min: float = 1e-5):
        if not 0 < sigma_min < sigma_max:
            raise ValueError("VE schedule needs 0 < sigma_min < sigma_max")
        self.name = name
        self.sigma_min, self.sigma_max, self.t_min = sigma_min, sigma_max, t_min
        self._r = math.log(sigma_max / sigma_min)

    def alpha(self, t) -> Tensor:
        return torch.ones_like(_t(t))

    def sigma(self, t) -> Tensor:
        return self.sigma_min * torch.exp(self._r * _t(t))

    def logsnr(self, t) -> Tensor:
        return -2 * (math.log(self.sigma_min) + self._r * _t(t))

    def dlogsnr_dt(self, t) -> Tensor:
        return torch.full_like(_t(t), -2 * self._r)

    def dlogalpha_dt(self, t) -> Tensor:
        return torch.zeros_like(_t(t))

    def t_of_logsnr(self, l) -> Tensor:
        return (-0.5 * _t(l) - math.log(self.sigma_min)) / self._r


# ----------------------------------------------------------------------------------------------
# Registry

_CONTINUOUS: dict[str, Callable[..., Schedule]] = {
    "vp": VPSDE,
    "subvp": SubVPSDE,
    "ve": lambda **kw: VESchedule(**{"sigma_min": 0.01, "sigma_max": 50.0, **kw}, name="ve"),
    "edm": lambda **kw: VESchedule(**{"sigma_min": 0.002, "sigma_max": 80.0, **kw}, name="edm"),
}


def available() -> list[str]:
    """Names accepted by get_schedule."""
    return sorted(DISCRETE | set(_CONTINUOUS))


def get_schedule(name: str | Schedule, *, T: int = 1000, zero_terminal_snr: bool = False,
                 **kw) -> Schedule:
    """A schedule by name: discrete `linear`, `cosine`, `sigmoid`, `scaled_linear` (T steps,
    optionally rescaled to zero terminal SNR) or continuous `vp`, `subvp`, `ve`, `edm`."""
    if isinstance(name, Schedule):
        return name
    if name in DISCRETE:
        ac = torch.cumprod(1 - betas_for(name, T, **kw), 0)
        if zero_terminal_snr:
            sched = DiscreteSchedule.from_alphas_cumprod(rescale_zero_terminal_snr(ac), name=name)
        else:
            sched = DiscreteSchedule(betas_for(name, T, **kw), name=name)
        return sched
    if name in _CONTINUOUS:
        if zero_terminal_snr:
            raise ValueError("zero_terminal_snr applies to discrete schedules only")
        return _CONTINUOUS[name](**kw)
    raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(available())}")
