"""The analytic Gaussian mixture: a data distribution whose noised score, x0 and density are exact.

With p_0 = sum_k w_k N(mu_k, Sigma_k) and x_t = alpha x0 + sigma eps, every component stays
Gaussian (DESIGN.md section 6):

    p_t(x) = sum_k w_k N(x; alpha mu_k, C_k),        C_k = alpha^2 Sigma_k + sigma^2 I

Each Sigma_k = U_k diag(lam_k) U_k^T is diagonalised once, so C_k = U_k diag(alpha^2 lam_k +
sigma^2) U_k^T shares its eigenvectors and every evaluation is two matrix products, at any
(alpha, sigma), per sample. Everything is float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from difflab.predictions import check_prediction, from_x0_eps
from difflab.schedules import Schedule, get_schedule

__all__ = ["GaussianMixture", "MixtureModel", "PRESETS"]

_CHUNK = 4096  # rows per block: bounds the (B, K, D) temporaries to a few tens of MB


def _f64(a) -> Tensor:
    return torch.as_tensor(a, dtype=torch.float64)


class GaussianMixture:
    """sum_k w_k N(mu_k, Sigma_k) with weights (K,), means (K, D), covariances (K, D, D).

    Methods take `alpha`, `sigma` as python floats or tensors of shape (B,) (one per sample) and
    `x` of shape (B, D) or (B, ...) with D elements per sample, in any float dtype; they compute in
    float64 and return float64.
    """

    def __init__(self, weights, means, covariances):
        w, mu, cov = _f64(weights), _f64(means), _f64(covariances)
        if mu.ndim != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(mu.shape)}")
        K, D = mu.shape
        if w.shape != (K,):
            raise ValueError(f"weights must have shape ({K},), got {tuple(w.shape)}")
        if cov.shape != (K, D, D):
            raise ValueError(f"covariances must have shape ({K}, {D}, {D}), got {tuple(cov.shape)}")
        if not bool(torch.isfinite(w).all() and torch.isfinite(mu).all()):
            raise ValueError("weights and means must be finite")
        if not bool((w > 0).all()):
            raise ValueError(f"weights must be positive, got {w.tolist()}")
        if abs(float(w.sum()) - 1.0) > 1e-8:
            raise ValueError(f"weights must sum to 1, got sum {float(w.sum())!r}")
        if not bool(torch.isfinite(cov).all()):
            raise ValueError("covariances must be finite")
        scale = cov.abs().amax(dim=(-2, -1), keepdim=True)
        if not bool(((cov - cov.mT).abs() <= 1e-10 * scale).all()):
            raise ValueError("covariances must be symmetric")
        cov = 0.5 * (cov + cov.mT)
        lam, U = torch.linalg.eigh(cov)  # Sigma_k = U_k diag(lam_k) U_k^T
        if not bool((lam > 0).all()):
            bad = sorted(set(torch.nonzero(lam <= 0)[:, 0].tolist()))
            raise ValueError(f"covariances must be positive definite; components {bad} are not")
        self.weights = w / w.sum()  # (K,)
        self.means = mu  # (K, D)
        self.covariances = cov  # (K, D, D)
        self.eigvals = lam  # (K, D)  lam_k
        self.eigvecs = U  # (K, D, D)  U_k, columns are eigenvectors
        self._log_w = torch.log(self.weights)  # (K,)
        self._U_flat = U.permute(1, 0, 2).reshape(D, K * D)  # (D, K*D): x @ it = U_k^T x for all k
        self._mu_rot = torch.einsum("kde,kd->ke", U, mu)  # (K, D)  U_k^T mu_k
        self._chol = torch.sqrt(lam)  # (K, D)  eigen standard deviations, for sampling

    # ------------------------------------------------------------------------------------------
    # basic properties

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def mean(self) -> Tensor:
        """E[x0] = sum_k w_k mu_k, shape (D,)."""
        return self.weights @ self.means

    @property
    def covariance(self) -> Tensor:
        """Cov[x0] = sum_k w_k (Sigma_k + mu_k mu_k^T) - m m^T, shape (D, D)."""
        m = self.mean
        second = torch.einsum("k,kde->de", self.weights, self.covariances)
        second = second + torch.einsum("k,kd,ke->de", self.weights, self.means, self.means)
        return second - torch.outer(m, m)

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.n_components}, D={self.dim})"

    # ------------------------------------------------------------------------------------------
    # sampling

    def sample(self, n: int, seed: int = 0, return_labels: bool = False):
        """n draws from p_0: k ~ Cat(w), x0 = mu_k + U_k diag(lam_k)^(1/2) z, z ~ N(0, I)."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        gen = torch.Generator().manual_seed(int(seed))
        if n == 0:
            labels = torch.zeros(0, dtype=torch.long)
        else:
            labels = torch.multinomial(self.weights, n, replacement=True, generator=gen)  # (n,)
        z = torch.randn(n, self.dim, generator=gen, dtype=torch.float64)  # (n, D)
        u = self._chol[labels] * z  # (n, D)  in the eigenbasis
        x = self.means[labels]  # (n, D)
        for k in range(self.n_components):
            rows = labels == k
            x[rows] += u[rows] @ self.eigvecs[k].T  # U_k u
        return (x, labels) if return_labels else x

    # ------------------------------------------------------------------------------------------
    # the noised density p_t and its derivatives

    def _prepare(self, x, alpha, sigma) -> tuple[Tensor, Tensor, Tensor, torch.Size]:
        """x as (B, D) float64 and alpha, sigma as (B, 1) float64 (broadcast), plus x's shape."""
        x = torch.as_tensor(x)
        shape = x.shape
        if x.ndim == 0 or math.prod(shape[1:]) != self.dim:
            raise ValueError(
                f"x must have shape (B, {self.dim}) or (B, ...) with {self.dim} "
                f"elements per sample, got {tuple(shape)}"
            )
        x = x.reshape(shape[0], self.dim).to(torch.float64)
        B = x.shape[0]
        out = []
        for name, v in (("alpha", alpha), ("sigma", sigma)):
            v = _f64(v).reshape(-1)
            if v.numel() not in (1, B):
                raise ValueError(f"{name} must be a scalar or have shape ({B},), got {v.shape}")
            out.append(v.expand(B).reshape(B, 1))
        a, s = out
        with torch.no_grad():
            if not bool(((a >= 0) & (s >= 0) & (a**2 + s**2 > 0)).all()):
                raise ValueError("need alpha >= 0, sigma >= 0 and not both zero")
        return x, a, s, shape

    def _terms(self, x: Tensor, a: Tensor, s: Tensor):
        """Per-component terms at x_t = x. x: (B, D); a, s: (B, 1)."""
        B, D, K = x.shape[0], self.dim, self.n_components
        d = a[:, :, None] ** 2 * self.eigvals + s[:, :, None] ** 2  # (B, K, D)  eig(C_k)
        z = (x @ self._U_flat).reshape(B, K, D) - a[:, :, None] * self._mu_rot  # (B, K, D)
        # log N(x; alpha mu_k, C_k) in the eigenbasis: z = U_k^T (x - alpha mu_k)
        log_n = -0.5 * (D * math.log(2 * math.pi) + torch.log(d).sum(-1) + (z**2 / d).sum(-1))
        log_wn = self._log_w + log_n  # (B, K)
        log_p = torch.logsumexp(log_wn, dim=-1)  # (B,)
        r = torch.exp(log_wn - log_p[:, None])  # (B, K)  responsibilities r_k(x)
        return log_p, r, z, d

    def _rotate_back(self, v: Tensor) -> Tensor:
        """sum_k U_k v_k for v of shape (B, K, D) -> (B, D)."""
        return torch.einsum("bke,kde->bd", v, self.eigvecs)

    def _chunked(self, fn, x, alpha, sigma):
        """fn over blocks of rows; returns (fn's output(s), x's shape, sigma as (B, 1))."""
        x, a, s, shape = self._prepare(x, alpha, sigma)
        rows = range(0, max(x.shape[0], 1), _CHUNK)
        parts = [fn(x[i : i + _CHUNK], a[i : i + _CHUNK], s[i : i + _CHUNK]) for i in rows]
        if isinstance(parts[0], tuple):
            return tuple(torch.cat(p) for p in zip(*parts, strict=True)), shape, s
        return torch.cat(parts), shape, s

    def log_prob(self, x, alpha=1.0, sigma=0.0) -> Tensor:
        """log p_t(x) = logsumexp_k [log w_k + log N(x; alpha mu_k, alpha^2 Sigma_k + sigma^2 I)]"""
        out, _, _ = self._chunked(lambda x, a, s: self._terms(x, a, s)[0], x, alpha, sigma)
        return out  # (B,)

    def responsibilities(self, x, alpha=1.0, sigma=0.0) -> Tensor:
        """r_k(x) = w_k N(x; alpha mu_k, C_k) / p_t(x), shape (B, K)."""
        out, _, _ = self._chunked(lambda x, a, s: self._terms(x, a, s)[1], x, alpha, sigma)
        return out

    def _score(self, x, a, s) -> Tensor:
        _, r, z, d = self._terms(x, a, s)
        return -self._rotate_back(r[:, :, None] * z / d)  # (B, D)

    def _x0(self, x, a, s) -> Tensor:
        _, r, z, d = self._terms(x, a, s)
        shrink = r[:, :, None] * self.eigvals * z / d  # (B, K, D)  r_k diag(lam / d) z
        return r @ self.means + a * self._rotate_back(shrink)  # (B, D)

    def _x0_score(self, x, a, s) -> tuple[Tensor, Tensor]:
        _, r, z, d = self._terms(x, a, s)
        rz = r[:, :, None] * z / d  # (B, K, D)
        score = -self._rotate_back(rz)
        x0 = r @ self.means + a * self._rotate_back(rz * self.eigvals)
        return x0, score

    def score(self, x, alpha, sigma) -> Tensor:
        """grad_x log p_t(x) = -sum_k r_k(x) C_k^{-1} (x - alpha mu_k)."""
        out, shape, _ = self._chunked(self._score, x, alpha, sigma)
        return out.reshape(shape)

    def x0(self, x, alpha, sigma) -> Tensor:
        """E[x0 | x_t = x] = sum_k r_k(x) [mu_k + alpha Sigma_k C_k^{-1} (x - alpha mu_k)]."""
        out, shape, _ = self._chunked(self._x0, x, alpha, sigma)
        return out.reshape(shape)

    def eps(self, x, alpha, sigma) -> Tensor:
        """E[eps | x_t = x] = (x - alpha x0) / sigma, computed as -sigma * score (Tweedie)."""
        score, shape, s = self._chunked(self._score, x, alpha, sigma)
        return (-s * score).reshape(shape)

    def x0_eps_score(self, x, alpha, sigma) -> tuple[Tensor, Tensor, Tensor]:
        """(E[x0 | x], E[eps | x], grad log p_t(x)) in one pass, each in x's shape."""
        (x0, score), shape, s = self._chunked(self._x0_score, x, alpha, sigma)
        return x0.reshape(shape), (-s * score).reshape(shape), score.reshape(shape)

    # ------------------------------------------------------------------------------------------
    # as a denoising network

    def model(self, schedule, prediction: str = "eps") -> MixtureModel:
        """The exact network net(x, t, cond=None) under `schedule`, predicting `prediction`."""
        return MixtureModel(self, schedule, prediction)

    # ------------------------------------------------------------------------------------------
    # presets

    @classmethod
    def preset(cls, name: str) -> GaussianMixture:
        """A named test mixture: `2d` (8 components in 2-D) or `d64` (16 components in 64-D)."""
        if name not in PRESETS:
            raise ValueError(f"unknown mixture preset {name!r}; choose one of {', '.join(PRESETS)}")
        return PRESETS[name]()


class MixtureModel:
    """The Bayes-optimal denoiser of a GaussianMixture as a network net(x, t, cond=None).

    t: float tensor of shape (B,) (or a scalar) of times in [0, 1]; alpha(t), sigma(t) come from
    the schedule. Returns the `prediction` ("eps", "x0", "v" or "score") in x's dtype and shape.
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule | str, prediction: str = "eps"):
        self.mixture = mixture
        self.schedule = get_schedule(schedule)
        self.prediction = check_prediction(prediction)

    def __call__(self, x: Tensor, t, cond=None) -> Tensor:
        t = _f64(t)
        alpha, sigma = self.schedule.alpha(t), self.schedule.sigma(t)  # float64, (B,) or ()
        x0, eps, score = self.mixture.x0_eps_score(x, alpha, sigma)
        if self.prediction == "score":  # direct: exact at sigma = 0 too
            out = score
        else:
            a = alpha.reshape(-1, *([1] * (x.ndim - 1)))  # (B, 1, ...)
            s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
            out = from_x0_eps(x0, eps, a, s, self.prediction)
        return out.to(x.dtype)

    def __repr__(self) -> str:
        return f"MixtureModel({self.mixture!r}, {self.schedule!r}, prediction={self.prediction!r})"


# ----------------------------------------------------------------------------------------------
# Presets


def _rotated_cov(std1: float, std2: float, degrees: float) -> Tensor:
    """R(theta) diag(std1^2, std2^2) R(theta)^T in 2-D."""
    th = math.radians(degrees)
    R = _f64([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    return R @ torch.diag(_f64([std1**2, std2**2])) @ R.T


def preset_2d() -> GaussianMixture:
    """`2d`: 8 components in 2-D, a fixed hand-written layout inside roughly [-2, 2]^2.

    Weights 0.22, 0.05, 0.15, 0.08, 0.18, 0.04, 0.12, 0.16 (unequal, two small modes). Each
    covariance is diag(std1^2, std2^2) rotated by an angle: elongated (axis ratio 1.5 to 5),
    standard deviations from 0.03 to 0.35, so the modes are sharp and anisotropic but distinct.
    """
    #        weight   mean            std1  std2  angle (degrees)
    table = [
        (0.22, (-1.20, -1.00), 0.30, 0.06, 30.0),
        (0.05, (-0.30, -1.30), 0.15, 0.04, -60.0),
        (0.15, (1.00, -1.10), 0.25, 0.10, 100.0),
        (0.08, (1.30, 0.00), 0.20, 0.05, 75.0),
        (0.18, (0.60, 0.90), 0.35, 0.08, -20.0),
        (0.04, (-0.50, 1.20), 0.12, 0.03, 10.0),
        (0.12, (-1.40, 0.40), 0.22, 0.07, 135.0),
        (0.16, (0.00, 0.00), 0.18, 0.12, 45.0),
    ]
    weights = _f64([row[0] for row in table])
    means = _f64([row[1] for row in table])
    covs = torch.stack([_rotated_cov(*row[2:]) for row in table])
    return GaussianMixture(weights, means, covs)


def preset_d64(seed: int = 0) -> GaussianMixture:
    """`d64`: 16 components in 64-D, generated from torch.Generator().manual_seed(0).

    Draws, in this order: weights w = softmax(0.7 z), z ~ N(0, I_16) (unequal: 0.010 to 0.214);
    means mu_k ~ N(0, 0.5^2 I) (pairwise distances 4.2 and up, so the modes are distinct);
    eigen standard deviations log-uniform on [0.02, 0.3]; Haar-random rotations U_k (QR of a
    Gaussian matrix with the signs of R's diagonal fixed). Sigma_k = U_k diag(std^2) U_k^T. The
    coordinates have standard deviation 0.3 to 0.8 (mean 0.48), the scale of images in [-1, 1].
    """
    K, D = 16, 64
    gen = torch.Generator().manual_seed(seed)
    weights = torch.softmax(0.7 * torch.randn(K, generator=gen, dtype=torch.float64), 0)
    means = 0.5 * torch.randn(K, D, generator=gen, dtype=torch.float64)
    u = torch.rand(K, D, generator=gen, dtype=torch.float64)
    std = torch.exp(math.log(0.02) + u * (math.log(0.3) - math.log(0.02)))  # (K, D)
    G = torch.randn(K, D, D, generator=gen, dtype=torch.float64)
    Q, R = torch.linalg.qr(G)
    U = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))[:, None, :]  # (K, D, D) Haar
    covs = U @ torch.diag_embed(std**2) @ U.mT
    covs = 0.5 * (covs + covs.mT)
    return GaussianMixture(weights, means, covs)


PRESETS = {"2d": preset_2d, "d64": preset_d64}
