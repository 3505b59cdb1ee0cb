"""Denoiser wrappers: guidance, clipping and other conditioning, composed around a `Denoiser`.

A wrapper takes a denoiser and is one: `wrapper(x, t) -> (x0_hat, eps_hat)`, with the inner
denoiser's `alpha_sigma`, `sigma_hat`, `schedule`, `prediction`, `cond`, ... forwarded, so a
sampler cannot tell them apart (k-diffusion composes its `CFGDenoiser` the same way). A new kind
of conditioning (inpainting by replacement, classifier guidance, a guidance interval in t) is a
new `DenoiserWrapper` subclass that overrides `forward` (docs/samplers.md), never a new flag.
"""

from __future__ import annotations

import math

from torch import Tensor

__all__ = ["DenoiserWrapper", "ClassifierFreeGuidance", "ClipX0"]


def _finite(value, what: str) -> float:
    """`value` as a float, or a ValueError naming `what` when it is not a finite number."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return out


class DenoiserWrapper:
    """A denoiser around `inner` that forwards everything to it; subclasses override `forward`.

    `forward(x, t, **kw)` receives the keywords its caller gave (`cond=` from an outer
    guidance wrapper) and passes them on to `inner`. Each call counts one evaluation in this
    wrapper's own `nfe`: what a sampler spends (`steps`), however many times `forward` calls
    `inner` (the innermost `Denoiser.nfe` counts the network's calls).
    """

    def __init__(self, inner):
        self.inner = inner
        self.nfe = 0

    def __getattr__(self, name: str):  # only for names this wrapper does not define itself
        if name == "inner":  # not set yet (a copy being built): no endless recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, x: Tensor, t: float, **kw) -> tuple[Tensor, Tensor]:
        self.nfe += 1
        return self.forward(x, t, **kw)

    def forward(self, x: Tensor, t: float, **kw) -> tuple[Tensor, Tensor]:
        """(x0_hat, eps_hat) at x = x_t; this base class changes nothing."""
        return self.inner(x, t, **kw)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"


class ClassifierFreeGuidance(DenoiserWrapper):
    """Classifier-free guidance (Ho & Salimans 2022, eq. 6): D_u + w (D_c - D_u).

    D_c is `inner` under its own condition, D_u under `uncond` (None: the network's own null,
    net(x, t)); w = 1 is the conditional denoiser, w = 0 the unconditional one. The network's
    outputs are combined after conversion to (x0_hat, eps_hat), which is the same: the
    conversion is linear in the output. Two inner evaluations a call, counted once in `nfe`.
    """

    def __init__(self, inner, uncond=None, scale: float = 1.0):
        super().__init__(inner)
        self.scale = _finite(scale, "the guidance scale")
        if getattr(inner, "cond", None) is None:
            raise ValueError("guidance needs a condition: pass cond=... (and uncond= its null)")
        self.uncond = uncond

    def forward(self, x: Tensor, t: float, **kw) -> tuple[Tensor, Tensor]:
        x0_c, eps_c = self.inner(x, t, **kw)  # conditional, (B, ...)
        x0_u, eps_u = self.inner(x, t, cond=self.uncond)  # unconditional, (B, ...)
        w = self.scale
        return x0_u + w * (x0_c - x0_u), eps_u + w * (eps_c - eps_u)


class ClipX0(DenoiserWrapper):
    """x0_hat clamped to [-c, c] and eps_hat = (x - alpha x0_hat) / sigma recomputed from it
    (diffusers' clip_sample; Ho et al. 2020's sampler clips to [-1, 1] for images)."""

    def __init__(self, inner, c: float = 1.0):
        super().__init__(inner)
        try:
            positive = float(c) > 0
        except (TypeError, ValueError):
            positive = False
        if not positive:
            raise ValueError(f"clip_x0 must be a positive number, got {c!r}")
        self.c = float(c)

    def forward(self, x: Tensor, t: float, **kw) -> tuple[Tensor, Tensor]:
        x0_hat, _ = self.inner(x, t, **kw)
        alpha, sigma = self.alpha_sigma(t)
        x0_hat = x0_hat.clamp(-self.c, self.c)
        return x0_hat, (x - alpha * x0_hat) / sigma
