"""`difflab.sample`: a network, a schedule and a sampler name in, samples out (DESIGN.md
section 3)."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from . import samplers
from .noise import NoiseSource, sample_keys
from .schedules import Schedule, get_schedule, get_times


class SamplingError(FloatingPointError):
    """Sampling produced a non-finite value."""


def sample(model: Callable, schedule: str | Schedule, *, shape: Sequence[int] | None = None,
           prediction: str | None = None, sampler: str = "dpm++2m", steps: int = 20,
           spacing: str | None = None, times=None, x_T: Tensor | None = None,
           seed: int | None = None, guidance: float | None = None, cond=None, uncond=None,
           clip_x0: float | None = None, dtype: torch.dtype = torch.float32, device=None,
           bf16: bool = False, callback=None, progress: bool = False, **options) -> Tensor:
    """Draw samples x_0 of shape `shape` = (B, ...) from a diffusion model.

    model: net(x_t, t, cond=None) with t of shape (B,), predicting `prediction` (eps, x0, v,
    score; by default the model's `.prediction` attribute, else eps). steps: network evaluations
    (NFE); `times` (descending, ending at 0) overrides steps and spacing. x_T overrides shape and
    seed for the starting noise, which is otherwise sigma(t_0) z. seed: sample i draws its noise
    from the stream (seed, i), so a sample does not depend on its batch. dtype: the sampler state
    (float32 or float64). bf16: run the network under bfloat16 autocast (2 to 3 times faster
    on a CPU with bf16 support, docs/benchmarks.md); the sampler state stays `dtype`. clip_x0:
    clamp x0_hat to [-clip_x0, clip_x0] at every step (1.0 for images in [-1, 1], as diffusers'
    clip_sample). options go to the sampler (eta, s_churn, snr, order, ...).
    """
    spec = samplers.get(sampler)
    sched = get_schedule(schedule)
    if not spec.zero_snr:  # it steps in log-SNR or divides by alpha
        sched = sched.with_finite_terminal_snr()
    if prediction is None:
        prediction = getattr(model, "prediction", "eps")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"the sampler state must be float32 or float64, got {dtype}")
    if times is None:
        if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be a positive integer (network evaluations), "
                             f"got {steps!r}")
        times = nfe_grid(sampler, int(steps), sched, spacing, **options)
    ts = samplers.check_times(times)

    if x_T is not None:
        device = device if device is not None else x_T.device
        x = x_T.to(device=device, dtype=dtype)
        shape = tuple(x.shape)
    elif shape is None:
        raise ValueError("give the sample shape (B, ...) with shape=..., or the starting x_T")
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    noise = NoiseSource(sample_keys(seed, shape[0]), shape[1:], dtype=dtype, device=device)
    if x_T is None:
        x = float(sched.sigma(ts[0])) * noise()  # x_T = sigma(t_0) z

    den = samplers.Denoiser(model, sched, prediction, cond=cond, guidance=guidance,
                            uncond=uncond, clip_x0=clip_x0, bf16=bf16)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(ts) - 1, desc=sampler, leave=False)

    def check(i: int, t: float, x_i: Tensor, x0_hat: Tensor) -> None:
        if not (torch.isfinite(x_i).all() and torch.isfinite(x0_hat).all()):
            raise SamplingError(f"sampling produced NaN or inf at step {i} (t = {t:.6g}) with "
                                f"{sampler}; check the network, the prediction type "
                                f"({prediction}) and the schedule")
        if bar is not None:
            bar.update(1)
        if callback is not None:
            callback(i, t, x_i, x0_hat)

    with torch.no_grad():
        try:
            out = spec.fn(den, x, ts, noise=noise, callback=check, **options)
        finally:
            if bar is not None:
                bar.close()
    if not torch.isfinite(out).all():
        raise SamplingError(f"sampling produced NaN or inf in the final step (t = {ts[-2]:.6g})")
    return out


def nfe_grid(sampler: str, steps: int, schedule: Schedule, spacing: str | None = None, **options):
    """The time grid `sample` uses for a sampler at a budget of `steps` evaluations."""
    spec = samplers.get(sampler)
    if not spec.zero_snr:  # as `sample` runs it
        schedule = schedule.with_finite_terminal_snr()
    return get_times(spacing or spec.spacing, spec.intervals(steps, options), schedule)


__all__ = ["sample", "SamplingError", "nfe_grid"]
