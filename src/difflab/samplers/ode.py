"""Probability-flow ODE solvers in the EDM coordinates x_hat = x / alpha, sigma_hat = sigma / alpha,
where the ODE reads dx_hat / dsigma_hat = (x_hat - x0_hat) / sigma_hat (Karras et al. 2022, eq. 4).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Callback, Denoiser


def euler(model: Denoiser, x: Tensor, times: list[float], *, noise=None,
          callback: Callback | None = None) -> Tensor:
    """Euler's method on the probability-flow ODE (Karras et al. 2022, eq. 4)."""
    for i, (t, s) in enumerate(zip(times[:-1], times[1:], strict=True)):
        x0_hat, _ = model(x, t)
        if callback is not None:
            callback(i, t, x, x0_hat)
        if s == 0:  # final denoise
            return x0_hat
        a_t, a_s = model.alpha_sigma(t)[0], model.alpha_sigma(s)[0]
        sh_t, sh_s = model.sigma_hat(t), model.sigma_hat(s)
        d = (x / a_t - x0_hat) / sh_t  # dx_hat / dsigma_hat
        x = a_s * (x / a_t + (sh_s - sh_t) * d)
    return x


def heun(model: Denoiser, x: Tensor, times: list[float], *, noise=None,
         callback: Callback | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
         s_tmax: float = math.inf, s_noise: float = 1.0) -> Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1; with s_churn > 0 the stochastic
    Algorithm 2). s_tmin, s_tmax are noise levels sigma_hat, as in EDM."""
    n = len(times) - 1
    sh_max = model.sigma_hat(times[0])
    for i, (t, s) in enumerate(zip(times[:-1], times[1:], strict=True)):
        a_t, sh_t = model.alpha_sigma(t)[0], model.sigma_hat(t)
        x_hat = x / a_t
        # churn: raise the noise level to sh_up = (1 + gamma) sh_t with fresh noise (Alg. 2 l. 4-6)
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= sh_t <= s_tmax else 0.0
        if gamma > 0 and s > 0:
            sh_up = min(sh_t * (1 + gamma), sh_max)
            if sh_up > sh_t:
                x_hat = x_hat + math.sqrt(sh_up**2 - sh_t**2) * s_noise * noise()
                t, sh_t = float(model.schedule.t_of_sigma_hat(sh_up)), sh_up
                a_t = model.alpha_sigma(t)[0]
        x0_hat, _ = model(a_t * x_hat, t)
        if callback is not None:
            callback(i, t, a_t * x_hat, x0_hat)
        if s == 0:  # final denoise: the Euler step to sigma = 0
            return x0_hat
        a_s, sh_s = model.alpha_sigma(s)[0], model.sigma_hat(s)
        d = (x_hat - x0_hat) / sh_t  # Alg. 2 l. 7
        x_next = x_hat + (sh_s - sh_t) * d  # Euler step, l. 8
        x0_next, _ = model(a_s * x_next, s)
        d_next = (x_next - x0_next) / sh_s  # l. 10
        x = a_s * (x_hat + (sh_s - sh_t) * 0.5 * (d + d_next))  # trapezoidal correction, l. 11
    return x


# Dormand-Prince 5(4) tableau (Dormand & Prince 1980)
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


def rk45(model: Denoiser, x: Tensor, times: list[float], *, noise=None,
         callback: Callback | None = None, rtol: float = 1e-5, atol: float = 1e-5,
         max_steps: int = 10_000) -> Tensor:
    """Adaptive Runge-Kutta (Dormand & Prince 1980, RK5(4)) on the probability-flow ODE.

    Solves dx_hat/du = x_hat - x0_hat in u = log sigma_hat from times[0] to the last nonzero
    time, then the final denoise. The reference solution for tests and benchmarks; its step sizes
    come from an error norm over the whole batch, so unlike the other samplers a sample's result
    depends on its batch (within rtol/atol)."""
    sched = model.schedule
    t0, t1 = times[0], times[-2]
    u, u_end = math.log(model.sigma_hat(t0)), math.log(model.sigma_hat(t1))
    y = x / model.alpha_sigma(t0)[0]  # x_hat

    def F(u_: float, y_: Tensor) -> Tensor:
        t_ = float(sched.t_of_sigma_hat(math.exp(u_)))
        t_ = min(max(t_, t1), t0)
        a_ = model.alpha_sigma(t_)[0]
        x0_hat, _ = model(a_ * y_, t_)
        return y_ - x0_hat

    h = (u_end - u) / 100  # negative: noise decreases
    k1 = F(u, y)
    steps = 0
    while (u - u_end) * (1 if h < 0 else -1) > 0:
        if steps >= max_steps:
            raise RuntimeError(f"rk45 took more than {max_steps} steps; loosen rtol/atol")
        h = max(h, u_end - u) if h < 0 else min(h, u_end - u)
        ks = [k1]
        for j in range(1, 7):
            yj = y + h * sum(a * k for a, k in zip(_A[j], ks, strict=False) if a != 0.0)
            ks.append(F(u + _C[j] * h, yj))
        y5 = y + h * sum(b * k for b, k in zip(_B5, ks, strict=True) if b != 0.0)
        y4 = y + h * sum(b * k for b, k in zip(_B4, ks, strict=True) if b != 0.0)
        scale = atol + rtol * torch.maximum(y.abs(), y5.abs())
        err = float(((y5 - y4) / scale).square().mean().sqrt())
        if err <= 1.0 or abs(h) < 1e-12:  # accept
            u, y, k1 = u + h, y5, ks[6]  # FSAL: the last stage is the next first
            steps += 1
        h = h * min(5.0, max(0.2, 0.9 * (max(err, 1e-10) ** -0.2)))
    a1 = model.alpha_sigma(t1)[0]
    x = a1 * y
    x0_hat, _ = model(x, t1)
    if callback is not None:
        callback(len(times) - 2, t1, x, x0_hat)
    return x0_hat
