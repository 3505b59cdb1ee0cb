"""What every sampler shares: the denoiser view of a network, and time-grid checks."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import Tensor

from ..predictions import check_net_output, check_prediction, to_x0_eps
from ..schedules import Schedule

Callback = Callable[[int, float, Tensor, Tensor], None]

OWN = object()
"""The default of `Denoiser.__call__(..., cond=)`: the denoiser's own condition."""


class Denoiser:
    """A network seen by a sampler: (x, t) -> (x0_hat, eps_hat) (DESIGN.md section 2).

    net(x_t, t, cond) predicts `prediction` ("eps", "x0", "v" or "score") under the condition
    `cond` (None: net(x_t, t)); a call may name another condition, `den(x, t, cond=uncond)`, as
    classifier-free guidance does. With `bf16`, the network runs under bfloat16 autocast and its
    output is cast back to the sampler's dtype: the solver arithmetic stays in float32/64
    (autocast leaves a float64 network in float64). Each call counts one network evaluation in
    `nfe`. Guidance, clipping and other conditioning wrap a Denoiser (samplers/guidance.py).
    """

    def __init__(self, net: Callable, schedule: Schedule, prediction: str = "eps", *, cond=None,
                 bf16: bool = False):
        self.net, self.schedule, self.bf16 = net, schedule, bool(bf16)
        # A torch module computes in its parameters' dtype: the state is cast to it and back.
        params = net.parameters() if isinstance(net, torch.nn.Module) else iter(())
        first = next((p for p in params if p.is_floating_point()), None)
        self.net_dtype = first.dtype if first is not None else None
        self.prediction = check_prediction(prediction)
        if cond is not None and not _takes_three_arguments(net):
            raise ValueError("cond= was given, but the network takes only (x, t): it is not "
                             "conditional")
        self.cond = cond
        self.nfe = 0

    def alpha_sigma(self, t: float) -> tuple[float, float]:
        """alpha(t), sigma(t) as float64 python numbers."""
        return float(self.schedule.alpha(t)), float(self.schedule.sigma(t))

    def sigma_hat(self, t: float) -> float:
        """sigma(t) / alpha(t): the EDM noise level."""
        return float(self.schedule.sigma_hat(t))

    def _net(self, x: Tensor, tb: Tensor, cond) -> Tensor:
        x_in, t_in = x, tb
        if self.net_dtype is not None and x.dtype != self.net_dtype:  # float64 state, float32 net
            x_in, t_in = x.to(self.net_dtype), tb.to(self.net_dtype)
        # Only when asked: a disabled autocast would switch off the caller's own autocast.
        amp = torch.autocast(x.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with amp:
            out = self.net(x_in, t_in, cond) if cond is not None else self.net(x_in, t_in)
        return check_net_output(out, x).to(x.dtype)

    def __call__(self, x: Tensor, t: float, *, cond=OWN) -> tuple[Tensor, Tensor]:
        t = float(t)
        tb = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)  # (B,)
        out = self._net(x, tb, self.cond if cond is OWN else cond)  # like x: (B, ...)
        self.nfe += 1
        alpha, sigma = self.alpha_sigma(t)
        return to_x0_eps(out, x, alpha, sigma, self.prediction)


def _takes_three_arguments(net: Callable) -> bool:
    """Whether net(x, t, cond) binds (a module: its forward); True when it cannot be told."""
    fn = net.forward if isinstance(net, torch.nn.Module) else net
    try:
        inspect.signature(fn).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:  # no signature (some builtins)
        return True
    return True


def check_times(times) -> list[float]:
    """A sampling grid as python floats: descending, starting in (0, 1], ending at 0."""
    ts = torch.as_tensor(times, dtype=torch.float64).flatten().tolist()
    if len(ts) < 2:
        raise ValueError("a time grid needs at least 2 points: a start time and the final 0")
    if any(not math.isfinite(t) for t in ts):
        raise ValueError("the time grid contains a non-finite value")
    if ts[-1] != 0:
        raise ValueError(f"the time grid must end at 0 (the final denoise), it ends at {ts[-1]}")
    if any(b >= a for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError("the time grid must be strictly descending")
    if ts[0] > 1:
        raise ValueError(f"the time grid must start at t <= 1, it starts at {ts[0]}")
    return ts
