"""UniPC (Zhao et al. 2023): the multistep predictor UniP with the corrector UniC, data
prediction, B(h) = e^h - 1 ("bh2"), in the EDM coordinates x_hat = x / alpha with
lambda = -log sigma_hat. The corrector reuses the next step's evaluation, so it costs no NFE."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Callback, Denoiser


def _coefficients(rks: list[float], h: float, p: int) -> tuple[Tensor, Tensor, float]:
    """R (p x p), b (p) of Zhao et al. 2023, eq. 8 / Algorithm 3, and B(h) (bh2), for order p."""
    hh = -h  # data prediction
    h_phi_1 = math.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1
    B_h = math.expm1(hh)  # bh2
    rk = torch.tensor(rks, dtype=torch.float64)
    R, b, factorial = [], [], 1
    for i in range(1, p + 1):
        R.append(rk ** (i - 1))
        b.append(h_phi_k * factorial / B_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    return torch.stack(R), torch.tensor(b, dtype=torch.float64), B_h


def _differences(x0s: list[Tensor], lams: list[float], h: float, p: int):
    """r_k = (lambda_{-k} - lambda_0) / h and D_k = (x0_{-k} - x0_0) / r_k for k = 1..p-1."""
    rks, D1s = [], []
    for k in range(1, p):
        r = (lams[-1 - k] - lams[-1]) / h
        rks.append(r)
        D1s.append((x0s[-1 - k] - x0s[-1]) / r)
    return rks, D1s


def _unip(x_hat: Tensor, x0s: list[Tensor], lams: list[float], lam_s: float, p: int) -> Tensor:
    """UniP-p: x_hat at lambda_s from x_hat at lambda_0 = lams[-1] (Algorithm 3, predictor)."""
    h = lam_s - lams[-1]
    rks, D1s = _differences(x0s, lams, h, p)
    R, b, B_h = _coefficients(rks + [1.0], h, p)
    x_next = math.exp(-h) * x_hat - math.expm1(-h) * x0s[-1]  # first-order (DDIM) part
    if p >= 2:
        rhos = [0.5] if p == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1]).tolist()
        x_next = x_next - B_h * sum(rho * D for rho, D in zip(rhos, D1s, strict=True))
    return x_next


def _unic(x_hat_prev: Tensor, x0s: list[Tensor], lams: list[float], x0_new: Tensor,
          lam_t: float, p: int) -> Tensor:
    """UniC-p: a corrected x_hat at lambda_t from the step lams[-1] -> lambda_t and the model
    output x0_new at lambda_t (Algorithm 3, corrector)."""
    h = lam_t - lams[-1]
    rks, D1s = _differences(x0s, lams, h, p)
    R, b, B_h = _coefficients(rks + [1.0], h, p)
    rhos = [0.5] if p == 1 else torch.linalg.solve(R, b).tolist()
    x_c = math.exp(-h) * x_hat_prev - math.expm1(-h) * x0s[-1]
    res = rhos[-1] * (x0_new - x0s[-1])
    for rho, D in zip(rhos[:-1], D1s, strict=True):
        res = res + rho * D
    return x_c - B_h * res


def unipc(model: Denoiser, x: Tensor, times: list[float], *, noise=None,
          callback: Callback | None = None, order: int = 2,
          lower_order_final: bool = True) -> Tensor:
    """UniPC-p with B(h) = e^h - 1 (Zhao et al. 2023, Algorithm 3, "bh2"), order 1 to 3."""
    if order not in (1, 2, 3):
        raise ValueError(f"unipc order must be 1, 2 or 3, got {order}")
    n = len(times) - 1
    x0s: list[Tensor] = []  # past x0_hat, newest last
    lams: list[float] = []  # their lambda = -log sigma_hat
    x_hat_prev, p_prev = None, 0
    for i, (t, s) in enumerate(zip(times[:-1], times[1:], strict=True)):
        x0_hat, _ = model(x, t)
        if callback is not None:
            callback(i, t, x, x0_hat)
        if s == 0:  # final denoise
            return x0_hat
        a_t, lam_t = model.alpha_sigma(t)[0], -math.log(model.sigma_hat(t))
        x_hat = x / a_t
        if x0s:  # corrector UniC with the evaluation just made
            x_hat = _unic(x_hat_prev, x0s, lams, x0_hat, lam_t, p_prev)
        x0s, lams = (x0s + [x0_hat])[-order:], (lams + [lam_t])[-order:]
        p = min(order, len(x0s))  # warm-up
        if lower_order_final:
            p = min(p, n - i)  # lower orders on the last steps, as diffusers
        a_s, lam_s = model.alpha_sigma(s)[0], -math.log(model.sigma_hat(s))
        x_hat_prev, p_prev = x_hat, p
        x = a_s * _unip(x_hat, x0s, lams, lam_s, p)
    return x


def unipc3(model: Denoiser, x: Tensor, times: list[float], *, noise=None,
           callback: Callback | None = None, lower_order_final: bool = True) -> Tensor:
    """UniPC-3 (Zhao et al. 2023, Algorithm 3, bh2): `unipc` with order = 3."""
    return unipc(model, x, times, noise=noise, callback=callback, order=3,
                 lower_order_final=lower_order_final)
