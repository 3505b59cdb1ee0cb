"""Sampling grids: descending times in [0, 1] that end at 0 (DESIGN.md section 3).

A spacing places the nonzero times by a rule in t, log-SNR or sigma_hat; the final 0 is the last
step's denoise to x0_hat. `schedule` is any object with the methods of `schedules.Schedule`
(logsnr, t_of_logsnr, sigma_hat, t_of_sigma_hat, t_min): this module imports no schedule, so
`schedules` can offer `get_times` too.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

__all__ = ["SPACINGS", "get_times"]




def _spaced(name: str, n: int, sched, t_start: float, t_end: float, rho: float,
            skip_logsnr: float, skip: float) -> Tensor:
    i = torch.arange(n, dtype=torch.float64)
    frac = i / max(n - 1, 1)  # 0 .. 1
    if name == "uniform":  # DDIM's uniform skip (diffusers "leading"): t_end + k t_start / n
        step = t_start / n if n == 1 else min(t_start / n, (t_start - t_end) / (n - 1))
        return t_end + (n - 1 - i) * step
    if name == "trailing":  # Lin et al. 2024, Table 2: starts at t_start, steps of t_start / n
        return t_start * (1 - i / n)
    if name == "linear":  # evenly from t_start to t_end, both included
        return t_start + (t_end - t_start) * frac
    if name == "quadratic":  # DDIM's quadratic: denser near the data
        return t_end + (t_start - t_end) * (1 - frac) ** 2
    if name == "logsnr":  # uniform in log-SNR (Lu et al. 2022, DPM-Solver)
        l0, l1 = sched.logsnr(t_start), sched.logsnr(t_end)
        return sched.t_of_logsnr(l0 + (l1 - l0) * frac)
    if name == "logsnr_skip":  # uniform in log-SNR, `skip` times sparser above skip_logsnr
        l0, l1 = float(sched.logsnr(t_start)), float(sched.logsnr(t_end))
        ls = min(max(skip_logsnr, l0), l1)
        w_hi, w_lo = (ls - l0) / skip, l1 - ls  # weighted lengths of the two parts
        u = frac * (w_hi + w_lo)
        l = torch.where(u <= w_hi, l0 + u * skip, ls + (u - w_hi))
        return sched.t_of_logsnr(l)
    if name == "karras":  # Karras et al. 2022, eq. 5, in sigma_hat = sigma / alpha
        s0, s1 = sched.sigma_hat(t_start) ** (1 / rho), sched.sigma_hat(t_end) ** (1 / rho)
        return sched.t_of_sigma_hat((s0 + (s1 - s0) * frac) ** rho)
    raise ValueError(f"unknown spacing {name!r}; choose one of {', '.join(SPACINGS)}")


SPACINGS = ("uniform", "trailing", "linear", "quadratic", "logsnr", "logsnr_skip", "karras")


def get_times(spacing: str, steps: int, schedule, *, t_start: float = 1.0,
              t_end: float | None = None, rho: float = 7.0,
              skip_logsnr: float = -3.0, skip: float = 8.0) -> Tensor:
    """A descending grid of `steps` nonzero times followed by 0 (so `steps` intervals).

    t_start: the first time (1 by default); t_end: the last nonzero time (schedule.t_min by
    default; `trailing` ignores it: its last nonzero time is t_start / steps). `uniform` and
    `trailing` are the DDIM / diffusers "leading" and "trailing" spacings; `logsnr_skip`
    evaluates once at t_start (where x0_hat is only the data mean), then goes uniformly in
    log-SNR from skip_logsnr to t_end (docs/samplers.md).
    """
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    steps = int(steps)
    t_end = schedule.t_min if t_end is None else t_end
    if not 0 < t_end <= t_start <= 1:
        raise ValueError(f"need 0 < t_end <= t_start <= 1, got t_end={t_end}, t_start={t_start}")
    if steps > 1 and t_end == t_start and spacing != "trailing":
        raise ValueError(f"{steps} steps need t_end < t_start, got both {t_start}")
    ts = _spaced(spacing, steps, schedule, t_start, t_end, rho, skip_logsnr, skip)
    ts = ts.to(torch.float64)
    return torch.cat([ts, ts.new_zeros(1)])
