"""`difflab.sample`: a network, a schedule and a sampler name in, samples out (DESIGN.md
section 3)."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from . import samplers
from .noise import NoiseSource, sample_keys
from .schedules import Schedule, get_schedule
from .times import get_times


class SamplingError(FloatingPointError):
    """Sampling produced a non-finite value."""


def sample(model: Callable, schedule: str | Schedule, *, shape: Sequence[int] | None = None,
           prediction: str | None = None, sampler: str = "dpm++2m", steps: int = 20,
           spacing: str | None = None, times=None, x_T: Tensor | None = None,
           seed: int | None = None, guidance: float | None = None, cond=None, uncond=None,
           clip_x0: float | None = None, wrappers: Sequence[Callable] = (),
           dtype: torch.dtype = torch.float32, device=None, bf16: bool = False, callback=None,
           progress: bool = False, **options) -> Tensor:
    """Draw samples x_0 of shape `shape` = (B, ...) from a diffusion model.

    model: net(x_t, t, cond=None) with t of shape (B,), predicting `prediction` (eps, x0, v,
    score; by default the model's `.prediction` attribute, else eps). steps: network evaluations
    (NFE); `times` (descending, ending at 0) overrides steps and spacing. x_T overrides shape and
    seed for the starting noise, which is otherwise sigma(t_0) z. seed: sample i draws its noise
    from the stream (seed, i), so a sample does not depend on its batch. dtype: the sampler state
    (float32 or float64). bf16: run the network under bfloat16 autocast (2 to 3 times faster
    on a CPU with bf16 support, docs/benchmarks.md); the sampler state stays `dtype`.
    guidance w with cond / uncond: classifier-free guidance (samplers.ClassifierFreeGuidance).
    clip_x0: clamp x0_hat to [-clip_x0, clip_x0] at every step (samplers.ClipX0; 1.0 for images
    in [-1, 1], as diffusers' clip_sample). wrappers: callables denoiser -> denoiser applied in
    order after those two, the last one outermost (docs/samplers.md). options go to the sampler
    (eta, s_churn, snr, order, ...).
    """
    spec = samplers.get(sampler)
    sched = _schedule_for(spec, schedule)
    if prediction is None:
        prediction = getattr(model, "prediction", "eps")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"the sampler state must be float32 or float64, got {dtype}")
    ts = samplers.check_times(_grid(spec, steps, sched, spacing, options) if times is None
                              else times)
    x, noise = _start(sched, ts[0], shape, x_T, seed, dtype, device)
    den = samplers.Denoiser(model, sched, prediction, cond=cond, bf16=bf16)
    den = _compose(den, [*_keyword_wrappers(guidance, uncond, clip_x0), *_check(wrappers)])
    return _run(spec.fn, den, x, ts, noise, sampler, prediction, callback, progress, options)


def _schedule_for(spec: samplers.SamplerSpec, schedule: str | Schedule) -> Schedule:
    """The schedule as the sampler runs on it: a zero-terminal-SNR one gets a finite last log-SNR
    unless the sampler takes alpha(1) = 0 as it is (docs/conventions.md)."""
    sched = get_schedule(schedule)
    return sched if spec.zero_snr else sched.with_finite_terminal_snr()


def _grid(spec: samplers.SamplerSpec, steps: int, sched: Schedule, spacing: str | None,
          options: dict) -> Tensor:
    """The default grid for a budget of `steps` network evaluations on the sampler's schedule."""
    if not isinstance(steps, numbers.Integral) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer (network evaluations), got {steps!r}")
    return get_times(spacing or spec.spacing, spec.intervals(int(steps), options), sched)


def _start(sched: Schedule, t0: float, shape, x_T, seed, dtype, device):
    """The starting state x (x_T, or sigma(t_0) z) and the per-sample noise source."""
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
        x = float(sched.sigma(t0)) * noise()  # x_T = sigma(t_0) z
    return x, noise


def _keyword_wrappers(guidance, uncond, clip_x0) -> list[Callable]:
    """The wrappers that `sample`'s keywords ask for: guidance, then clipping."""
    out = []
    if guidance is not None:
        out.append(lambda den: samplers.ClassifierFreeGuidance(den, uncond, guidance))
    if clip_x0 is not None:
        out.append(lambda den: samplers.ClipX0(den, clip_x0))
    return out


def _check(wrappers) -> list[Callable]:
    """`wrappers=` as a list of callables."""
    if callable(wrappers) or isinstance(wrappers, (str, bytes)):
        raise ValueError("wrappers= takes a list of callables denoiser -> denoiser: put the one "
                         "wrapper in a list")
    wrappers = list(wrappers)
    for w in wrappers:
        if not callable(w):
            raise ValueError(f"wrappers= must hold callables denoiser -> denoiser, got {w!r}")
    return wrappers


def _compose(den, wrappers: Sequence[Callable]):
    """den wrapped by each of `wrappers` in order: the last one is what the sampler calls."""
    for wrap in wrappers:
        den = wrap(den)
    return den


def _run(fn: Callable, den, x: Tensor, ts: list[float], noise, sampler: str, prediction: str,
         callback, progress: bool, options: dict) -> Tensor:
    """The sampler loop under no_grad, each step checked for NaN / inf and shown to callback."""
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
            out = fn(den, x, ts, noise=noise, callback=check, **options)
        finally:
            if bar is not None:
                bar.close()
    if not torch.isfinite(out).all():
        raise SamplingError(f"sampling produced NaN or inf in the final step (t = {ts[-2]:.6g})")
    return out


def nfe_grid(sampler: str, steps: int, schedule: str | Schedule, spacing: str | None = None,
             **options) -> Tensor:
    """The time grid `sample` uses for a sampler at a budget of `steps` evaluations."""
    spec = samplers.get(sampler)
    return _grid(spec, steps, _schedule_for(spec, schedule), spacing, options)


__all__ = ["sample", "SamplingError", "nfe_grid"]
