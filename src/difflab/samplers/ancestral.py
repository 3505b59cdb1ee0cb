"""DDPM ancestral sampling and DDIM, on any descending grid ending at 0."""

from __future__ import annotations

import math

from torch import Tensor

from .base import Callback, Denoiser


def _posterior(model: Denoiser, t: float, s: float):
    """Coefficients of q(x_s | x_t, x0) for s < t (Kingma et al. 2021, eq. 32-33):
    mean = c_x0 x0 + c_xt x_t, variance var_small; var_large = sigma_{t|s}^2."""
    a_t, s_t = model.alpha_sigma(t)
    a_s, s_s = model.alpha_sigma(s)
    one_minus = 1 - (a_t * s_s) ** 2 / (a_s * s_t) ** 2  # 1 - SNR(t) / SNR(s); 1 at alpha_t = 0
    var_large = s_t**2 * one_minus  # sigma_{t|s}^2 = sigma_t^2 - (a_t/a_s)^2 sigma_s^2
    var_small = s_s**2 * one_minus  # sigma_{t|s}^2 sigma_s^2 / sigma_t^2
    c_x0 = a_s * one_minus
    c_xt = (a_t / a_s) * s_s**2 / s_t**2
    return c_x0, c_xt, var_small, var_large


def ddpm(model: Denoiser, x: Tensor, times: list[float], *, noise, callback: Callback | None = None,
         variance: str = "small") -> Tensor:
    """DDPM ancestral sampling (Ho et al. 2020, Algorithm 2); variance "small" (beta-tilde) or
    "large" (beta); any sub-grid via the posterior q(x_s | x_t, x0)."""
    if variance not in ("small", "large"):
        raise ValueError(f"variance must be 'small' or 'large', got {variance!r}")
    for i, (t, s) in enumerate(zip(times[:-1], times[1:], strict=True)):
        x0_hat, _ = model(x, t)
        if callback is not None:
            callback(i, t, x, x0_hat)
        if s == 0:  # final denoise
            return x0_hat
        c_x0, c_xt, var_small, var_large = _posterior(model, t, s)
        var = var_small if variance == "small" else var_large
        x = c_x0 * x0_hat + c_xt * x + math.sqrt(var) * noise()  # x_s ~ q(x_s | x_t, x0_hat)
    return x


def ddim(model: Denoiser, x: Tensor, times: list[float], *, noise, callback: Callback | None = None,
         eta: float = 0.0) -> Tensor:
    """DDIM (Song et al. 2021a, eq. 12 with sigma_t(eta) of eq. 16); eta = 0 is deterministic,
    eta = 1 is DDPM with the small variance."""
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0 (0: deterministic, 1: DDPM), got {eta}")
    for i, (t, s) in enumerate(zip(times[:-1], times[1:], strict=True)):
        x0_hat, eps_hat = model(x, t)
        if callback is not None:
            callback(i, t, x, x0_hat)
        if s == 0:  # final denoise
            return x0_hat
        a_s, s_s = model.alpha_sigma(s)
        c = eta * math.sqrt(_posterior(model, t, s)[2])  # eta * posterior std
        x = a_s * x0_hat + math.sqrt(max(s_s**2 - c**2, 0.0)) * eps_hat  # direction to x_t
        if c > 0:
            x = x + c * noise()  # fresh noise
    return x
