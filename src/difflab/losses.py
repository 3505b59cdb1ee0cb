"""Training targets, loss weightings and time sampling (DESIGN.md section 4).

loss = weight(t) * || target - net(x_t, t, cond) ||^2, averaged over the batch, with the target
given by the prediction type and the weight by a named weighting.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .predictions import check_prediction, from_x0_eps
from .schedules import DiscreteSchedule, Schedule

WEIGHTINGS = ("simple", "min_snr", "elbo")
TIME_SAMPLING = ("uniform", "discrete")


def target(prediction: str, x0: Tensor, eps: Tensor, alpha, sigma) -> Tensor:
    """What a network of the given prediction type is trained to output."""
    return from_x0_eps(x0, eps, alpha, sigma, check_prediction(prediction))


def eps_error_scale(prediction: str, alpha: Tensor, sigma: Tensor) -> Tensor:
    """c with ||eps - eps_hat||^2 = c ||target - pred||^2 at fixed x_t (for any alpha, sigma)."""
    r = alpha**2 + sigma**2
    return {"eps": torch.ones_like(alpha), "x0": (alpha / sigma) ** 2,
            "v": (alpha / r) ** 2, "score": sigma**2}[check_prediction(prediction)]


def weight(name: str, t: Tensor, schedule: Schedule, prediction: str = "eps", *,
           gamma: float = 5.0) -> Tensor:
    """The per-sample loss weight w(t), shape (B,), float64.

    simple: 1 on the prediction's own target (Ho et al. 2020, L_simple for eps).
    min_snr: min(SNR, gamma) expressed for the prediction type (Hang et al. 2023, eq. 7-9):
        min(SNR, gamma) / SNR for eps, min(SNR, gamma) for x0, min(SNR, gamma) / (SNR + 1) for v.
    elbo: the continuous-time ELBO, -1/2 dlogsnr/dt ||eps - eps_hat||^2 (Kingma et al. 2021,
        eq. 17), so that E_t[loss] with t ~ U(t_min, 1) is the diffusion term of -log p(x) / (1 -
        t_min) in nats (alias: vlb).
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    alpha, sigma = schedule.alpha(t), schedule.sigma(t)
    c = eps_error_scale(prediction, alpha, sigma)
    if name == "simple":
        return torch.ones_like(t)
    if name == "min_snr":
        snr = (alpha / sigma) ** 2
        ratio = torch.where(snr > gamma, gamma / snr, torch.ones_like(snr))  # min(SNR, g) / SNR
        return ratio * c  # in eps units; at SNR = 0: 1 for eps, 0 for x0 and v
    if name in ("elbo", "vlb"):
        return -0.5 * schedule.dlogsnr_dt(t) * c
    raise ValueError(f"unknown weighting {name!r}; choose one of {', '.join(WEIGHTINGS)}")


def sample_t(batch: int, schedule: Schedule, mode: str = "uniform", *,
             generator: torch.Generator | None = None, device=None) -> Tensor:
    """Training times, shape (B,), float32: uniform on [t_min, 1], or a uniform DDPM step
    i in 1..T as t = i / T (discrete schedules only)."""
    if mode == "uniform":
        u = torch.rand(batch, generator=generator, dtype=torch.float64)
        t = schedule.t_min + (1 - schedule.t_min) * u
    elif mode == "discrete":
        if not isinstance(schedule, DiscreteSchedule):
            raise ValueError(f"time sampling 'discrete' needs a discrete schedule, not {schedule}")
        i = torch.randint(1, schedule.T + 1, (batch,), generator=generator)
        t = i.to(torch.float64) / schedule.T
    else:
        raise ValueError(f"unknown time sampling {mode!r}; "
                         f"choose one of {', '.join(TIME_SAMPLING)}")
    return t.to(device=device, dtype=torch.float32)


def diffusion_loss(net: Callable, x0: Tensor, schedule: Schedule, *, prediction: str = "eps",
                   weighting: str = "simple", time_sampling: str = "uniform", cond=None,
                   generator: torch.Generator | None = None, t: Tensor | None = None,
                   eps: Tensor | None = None) -> Tensor:
    """The weighted denoising loss on a batch x0 (B, ...), as a float32 scalar.

    x_t = alpha x0 + sigma eps; loss = mean_b w(t_b) * sum over the sample's elements of
    (target - net(x_t, t, cond))^2 / (elements), computed in float32 whatever the network's dtype.
    """
    B = x0.shape[0]
    if t is None:
        t = sample_t(B, schedule, time_sampling, generator=generator, device=x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    shape = (B, *[1] * (x0.ndim - 1))
    alpha = schedule.alpha(t.double()).to(x0.device, torch.float32).view(shape)
    sigma = schedule.sigma(t.double()).to(x0.device, torch.float32).view(shape)
    x_t = alpha * x0 + sigma * eps
    pred = net(x_t, t) if cond is None else net(x_t, t, cond)
    err = (pred.float() - target(prediction, x0, eps, alpha, sigma).float()) ** 2
    w = weight(weighting, t.double(), schedule, prediction).to(x0.device, torch.float32)
    return (w * err.reshape(B, -1).mean(1)).mean()
