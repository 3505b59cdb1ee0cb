"""Reverse-SDE samplers: Euler-Maruyama and predictor-corrector (Song et al. 2021b)."""

from __future__ import annotations

import math

from torch import Tensor

from .base import Callback, Denoiser


def euler_maruyama(model: Denoiser, x: Tensor, times: list[float], *, noise,
                   callback: Callback | None = None) -> Tensor:
    """Euler-Maruyama on the reverse SDE dx = [f x - g^2 score] dt + g dw (Song et al. 2021b,
    eq. 6)."""
    sched = model.schedule
    for i, (t, s) in enumerate(zip(times[:-1], times[1:], strict=True)):
        x0_hat, eps_hat = model(x, t)
        if callback is not None:
            callback(i, t, x, x0_hat)
        if s == 0:  # final denoise
            return x0_hat
        _, s_t = model.alpha_sigma(t)
        f, g = float(sched.f(t)), float(sched.g(t))
        score = -eps_hat / s_t
        dt = t - s  # > 0: the reverse SDE runs backwards in time
        x = x - (f * x - g**2 * score) * dt + g * math.sqrt(dt) * noise()
    return x


def pc(model: Denoiser, x: Tensor, times: list[float], *, noise, callback: Callback | None = None,
       snr: float = 0.16, corrector_steps: int = 1) -> Tensor:
    """Predictor-corrector (Song et al. 2021b, Algorithms 2-3): Langevin corrector steps at each
    time, then the reverse-diffusion predictor; `steps` counts all evaluations."""
    if corrector_steps < 0:
        raise ValueError(f"corrector_steps must be >= 0, got {corrector_steps}")
    for i, (t, s) in enumerate(zip(times[:-1], times[1:], strict=True)):
        a_t, s_t = model.alpha_sigma(t)
        # corrector: Langevin MCMC at fixed t (Algorithm 4) with step 2 (snr sigma_t)^2, the
        # step of the snr rule 2 (snr |z| / |score|)^2 when |score| = sqrt(d) / sigma_t as for
        # pure noise: it needs no batch statistics, so a sample does not depend on its batch
        step = 2 * (snr * s_t) ** 2
        for _ in range(corrector_steps):
            _, eps_hat = model(x, t)
            x = x + step * (-eps_hat / s_t) + math.sqrt(2 * step) * noise()
        # predictor: reverse diffusion, x_s = (x_t + G^2 score) / a_{t|s} + G z (eq. 46-47)
        x0_hat, eps_hat = model(x, t)
        if callback is not None:
            callback(i, t, x, x0_hat)
        if s == 0:  # final denoise
            return x0_hat
        a_s, s_s = model.alpha_sigma(s)
        G2 = s_t**2 * (1 - (a_t * s_s) ** 2 / (a_s * s_t) ** 2)  # s_t^2 (1 - SNR_t / SNR_s)
        x = (x - G2 / s_t * eps_hat) * (a_s / a_t) + math.sqrt(G2) * noise()
    return x
