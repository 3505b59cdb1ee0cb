"""Sample-quality metrics against a GaussianMixture or a reference sample.

Every metric refuses fewer than MIN_SAMPLES samples rather than return a number dominated by noise.
Compare `sliced_wasserstein2` with `sw2_noise_floor` at the same n: that is what a perfect sampler
scores. All arithmetic is float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from difflab.data.mixture import GaussianMixture

__all__ = [
    "MIN_SAMPLES",
    "sliced_wasserstein2",
    "sw2_noise_floor",
    "mode_tv",
    "logdensity_gap",
    "evaluate",
]

MIN_SAMPLES = 100
_REF_SEED = 1_000_003  # offset between a caller's seed and the seeds of reference samples


def _samples(x, name: str, dim: int | None = None) -> Tensor:
    """x as a float64 (N, D) tensor with at least MIN_SAMPLES rows."""
    x = torch.as_tensor(x).detach()
    if x.ndim == 0:
        raise ValueError(f"{name} must have shape (N, D) or (N, ...), got a scalar")
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    if x.shape[0] < MIN_SAMPLES:
        raise ValueError(f"{name} has {x.shape[0]} samples; metrics need at least {MIN_SAMPLES}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has {x.shape[1]} dimensions per sample, expected {dim}")
    return x


def _directions(n: int, dim: int, seed: int) -> Tensor:
    """n directions uniform on the unit sphere S^{dim-1}, shape (n, dim)."""
    gen = torch.Generator().manual_seed(int(seed))
    theta = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return theta / theta.norm(dim=1, keepdim=True)


def _w2_sq_sorted(xs: Tensor, ys: Tensor) -> Tensor:
    """int_0^1 (F^{-1}(u) - G^{-1}(u))^2 du per row, for sorted rows xs (P, n), ys (P, m)."""
    n, m = xs.shape[1], ys.shape[1]
    if n == m:
        return ((xs - ys) ** 2).mean(1)
    # both empirical quantile functions are constant between the merged breakpoints i/n, j/m
    u = torch.cat(
        [
            torch.zeros(1, dtype=torch.float64),
            torch.arange(1, n + 1, dtype=torch.float64) / n,
            torch.arange(1, m + 1, dtype=torch.float64) / m,
        ]
    )
    u = torch.unique(u)  # sorted breakpoints in [0, 1]
    mid, du = 0.5 * (u[1:] + u[:-1]), u[1:] - u[:-1]  # (L,)
    i = (mid * n).long().clamp(max=n - 1)  # the xs column holding quantile level mid
    j = (mid * m).long().clamp(max=m - 1)
    return (xs[:, i] - ys[:, j]) ** 2 @ du  # (P,)


def sliced_wasserstein2(x, y, n_projections: int = 256, seed: int = 0) -> float:
    """SW2(x, y) = sqrt(E_theta W2^2(theta^T x, theta^T y)), theta uniform on the unit sphere.

    The 1-D W2 is exact between the two empirical measures (sizes may differ)."""
    x, y = _samples(x, "x"), _samples(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y differ in dimension: {x.shape[1]} and {y.shape[1]}")
    if not bool(torch.isfinite(x).all() and torch.isfinite(y).all()):
        return math.inf
    theta = _directions(n_projections, x.shape[1], seed)  # (P, D)
    xs = torch.sort(theta @ x.T, dim=1).values  # (P, n)  sorted projections
    ys = torch.sort(theta @ y.T, dim=1).values  # (P, m)
    return math.sqrt(float(_w2_sq_sorted(xs, ys).mean()))


def sw2_noise_floor(
    mixture: GaussianMixture, n: int, seed: int = 0, n_projections: int = 256
) -> float:
    """SW2 between two independent true samples of size n: what a perfect sampler scores."""
    a = mixture.sample(n, seed=_REF_SEED + 2 * seed)
    b = mixture.sample(n, seed=_REF_SEED + 2 * seed + 1)
    return sliced_wasserstein2(a, b, n_projections=n_projections, seed=seed)


def mode_tv(mixture: GaussianMixture, x) -> float:
    """TV = 0.5 sum_k |freq_k - w_k|, each sample assigned to argmax_k r_k(x) at t = 0.

    Non-finite samples count towards no component (so they raise the distance)."""
    x = _samples(x, "x", dim=mixture.dim)
    finite = torch.isfinite(x).all(dim=1)  # (N,)
    labels = mixture.responsibilities(x[finite]).argmax(dim=1)  # (N_finite,)
    freq = torch.bincount(labels, minlength=mixture.n_components).to(torch.float64) / x.shape[0]
    return 0.5 * float((freq - mixture.weights).abs().sum() + (1 - freq.sum()))


def logdensity_gap(mixture: GaussianMixture, x, n_ref: int = 20000, seed: int = 0) -> float:
    """mean_i log p(x_i) - mean_j log p(y_j), y ~ p: positive means too sharp, negative too diffuse.

    Non-finite samples have log p = -inf."""
    x = _samples(x, "x", dim=mixture.dim)
    if n_ref < MIN_SAMPLES:
        raise ValueError(f"n_ref={n_ref}; metrics need at least {MIN_SAMPLES} reference samples")
    finite = torch.isfinite(x).all(dim=1)
    log_p = torch.full((x.shape[0],), -math.inf, dtype=torch.float64)
    log_p[finite] = mixture.log_prob(x[finite])
    y = mixture.sample(n_ref, seed=_REF_SEED + 2 * seed)
    return float(log_p.mean() - mixture.log_prob(y).mean())


def evaluate(mixture: GaussianMixture, x, seed: int = 0) -> dict[str, float]:
    """{sw2: SW2 to a true sample of the same size, mode_tv, logp_gap} for samples x of p_0.

    A perfect sampler's sw2 is sw2_noise_floor(mixture, len(x), seed) on average."""
    x = _samples(x, "x", dim=mixture.dim)
    ref = mixture.sample(x.shape[0], seed=_REF_SEED + 2 * seed + 1)
    return {
        "sw2": sliced_wasserstein2(x, ref, seed=seed),
        "mode_tv": mode_tv(mixture, x),
        "logp_gap": logdensity_gap(mixture, x, seed=seed),
    }
