"""DPM-Solver++ multistep (Lu et al. 2022b), data prediction, in the EDM coordinates
x_hat = x / alpha with lambda = -log sigma_hat = logsnr / 2 and h = lambda_s - lambda_t.
eta > 0 gives the SDE variants (Lu et al. 2022b, section 5; eta = 1 is SDE-DPM-Solver++)."""

from __future__ import annotations

import math

from torch import Tensor

from .base import Callback, Denoiser


def dpmpp_multistep(model: Denoiser, x: Tensor, times: list[float], *, noise, order: int,
                     eta: float = 0.0, callback: Callback | None = None) -> Tensor:
    """DPM-Solver++ multistep of order 1 (DDIM), 2 (2M, Alg. 2) or 3 (3M), stochastic with eta."""
    x0s: list[Tensor] = []  # past x0_hat, newest last
    hs: list[float] = []  # past step sizes in lambda, newest last
    for i, (t, s) in enumerate(zip(times[:-1], times[1:], strict=True)):
        x0_hat, _ = model(x, t)
        if callback is not None:
            callback(i, t, x, x0_hat)
        if s == 0:  # final denoise
            return x0_hat
        a_t, sh_t = model.alpha_sigma(t)[0], model.sigma_hat(t)
        a_s, sh_s = model.alpha_sigma(s)[0], model.sigma_hat(s)
        h = math.log(sh_t / sh_s)  # lambda_s - lambda_t > 0
        h_eta = h * (1 + eta)
        phi_1 = -math.expm1(-h_eta)  # 1 - e^{-h(1+eta)}
        # first-order step: x_hat_s = (sh_s / sh_t) e^{-eta h} x_hat_t + phi_1 x0_hat (eq. 9)
        x_hat = (sh_s / sh_t) * math.exp(-eta * h) * (x / a_t) + phi_1 * x0_hat
        k = min(order, len(x0s) + 1)  # warm up with lower orders
        if k == 2 and order == 2:  # midpoint form of Alg. 2: D = x0 + (x0 - x0_prev) / (2 r)
            r = hs[-1] / h
            x_hat = x_hat + 0.5 * phi_1 * (x0_hat - x0s[-1]) / r
        elif k >= 2:  # Taylor form with phi_2 (and phi_3), as in Lu et al.'s multistep solver
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            r0 = hs[-1] / h
            d1_0 = (x0_hat - x0s[-1]) / r0
            if k == 2:
                x_hat = x_hat + phi_2 * d1_0
            else:
                r1 = hs[-2] / h
                d1_1 = (x0s[-1] - x0s[-2]) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                # d2 ~ h^2 x0'' needs the factor 2 (Lu et al.'s code and diffusers omit it,
                # which leaves the "3M" step second order; docs/samplers.md)
                d2 = 2 * (d1_0 - d1_1) / (r0 + r1)
                phi_3 = phi_2 / h_eta - 0.5
                x_hat = x_hat + phi_2 * d1 - phi_3 * d2
        if eta > 0:  # fresh noise of variance sh_s^2 (1 - e^{-2 eta h})
            x_hat = x_hat + sh_s * math.sqrt(-math.expm1(-2 * eta * h)) * noise()
        x = a_s * x_hat
        x0s = (x0s + [x0_hat])[-2:]
        hs = (hs + [h])[-2:]
    return x


def dpmpp_2m(model, x, times, *, noise=None, callback=None):
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2), deterministic."""
    return dpmpp_multistep(model, x, times, noise=noise, order=2, eta=0.0, callback=callback)


def dpmpp_3m(model, x, times, *, noise=None, callback=None):
    """DPM-Solver++(3M) (Lu et al. 2022b, third-order multistep), deterministic."""
    return dpmpp_multistep(model, x, times, noise=noise, order=3, eta=0.0, callback=callback)


def dpmpp_2m_sde(model, x, times, *, noise, callback=None, eta: float = 1.0):
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b, section 5), stochastic with eta (1 by default)."""
    return dpmpp_multistep(model, x, times, noise=noise, order=2, eta=eta, callback=callback)


def dpmpp_3m_sde(model, x, times, *, noise, callback=None, eta: float = 1.0):
    """SDE-DPM-Solver++(3M): the third-order multistep with eta-scaled noise (Lu et al. 2022b)."""
    return dpmpp_multistep(model, x, times, noise=noise, order=3, eta=eta, callback=callback)
