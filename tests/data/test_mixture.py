"""The analytic Gaussian mixture: score, x0, eps and density against autograd and closed forms."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from difflab.data import GaussianMixture
from difflab.predictions import to_x0_eps
from difflab.schedules import get_schedule

PAIRS = [(1.0, 0.0), (1.0, 0.05), (0.8, 0.6), (0.3, 2.0), (0.05, 1.0), (1.0, 80.0)]


@pytest.fixture(scope="module", params=["2d", "d64"])
def mix(request):
    return GaussianMixture.preset(request.param)


def noised(mix, n, alpha, sigma, seed=0):
    """x_t = alpha x0 + sigma eps for x0 ~ p_0."""
    x0 = mix.sample(n, seed=seed)
    eps = torch.randn(
        x0.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64
    )
    a = torch.as_tensor(alpha, dtype=torch.float64).reshape(-1, 1)
    s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1)
    return a * x0 + s * eps


def autograd_score(mix, x, alpha, sigma):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(mix.log_prob(x, alpha, sigma).sum(), x)
    return g


def assert_close(a, b, rtol=1e-8, atol=0.0):
    """|a - b| <= rtol * (|b| + max|b| * 1e-3) + atol, elementwise."""
    tol = rtol * (b.abs() + 1e-3 * b.abs().max()) + atol
    err = (a - b).abs()
    msg = f"max error {float(err.max()):.3g}, scale {float(b.abs().max()):.3g}"
    assert bool((err <= tol).all()), msg


def random_spd(D, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(D, D, generator=g, dtype=torch.float64)
    return A @ A.T / D + 0.1 * torch.eye(D, dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# score


@pytest.mark.parametrize("alpha,sigma", PAIRS)
def test_score_equals_autograd_of_log_prob(mix, alpha, sigma):
    x = noised(mix, 64, alpha, sigma)
    assert_close(mix.score(x, alpha, sigma), autograd_score(mix, x, alpha, sigma))


def test_score_per_sample_alpha_sigma(mix):
    a = torch.tensor([1.0, 0.9, 0.5, 0.1, 1.0, 0.7], dtype=torch.float64)
    s = torch.tensor([0.0, 0.3, 0.8, 1.0, 2.0, 0.7], dtype=torch.float64)
    x = noised(mix, 6, a, s)
    got = mix.score(x, a, s)
    assert_close(got, autograd_score(mix, x, a, s))
    for i in range(6):  # each row equals the scalar evaluation, to rounding: a batch and a
        # single row take different BLAS kernels (measured on one CPU: 3.9e-13 at scale 43,
        # over the 1e-12 tolerance this test first had)
        assert_close(got[i : i + 1], mix.score(x[i : i + 1], float(a[i]), float(s[i])), rtol=1e-10)


@pytest.mark.parametrize("name", ["linear", "cosine", "vp", "edm"])
def test_model_score_equals_autograd_under_schedules(mix, name):
    sched = get_schedule(name)
    t = torch.tensor([sched.t_min, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0], dtype=torch.float64)
    alpha, sigma = sched.alpha(t), sched.sigma(t)
    x = noised(mix, len(t), alpha, sigma, seed=3)
    net = mix.model(sched, prediction="score")
    assert net.prediction == "score" and net.schedule is sched
    assert_close(net(x, t), autograd_score(mix, x, alpha, sigma))


# ----------------------------------------------------------------------------------------------
# x0 and eps


@pytest.mark.parametrize("alpha,sigma", [p for p in PAIRS if p[1] > 0])
def test_x0_is_tweedie(mix, alpha, sigma):
    x = noised(mix, 256, alpha, sigma)
    score = mix.score(x, alpha, sigma)
    tweedie = (x + sigma**2 * score) / alpha  # Efron 2011, Tweedie's formula
    cancel = 1e-14 * float(x.abs().max()) / alpha  # rounding of x / alpha in the formula
    assert_close(mix.x0(x, alpha, sigma), tweedie, rtol=1e-9, atol=100 * cancel)
    eps = mix.eps(x, alpha, sigma)
    assert_close(
        eps,
        (x - alpha * mix.x0(x, alpha, sigma)) / sigma,
        rtol=1e-9,
        atol=100 * cancel * alpha / sigma,
    )
    x0b, epsb, scoreb = mix.x0_eps_score(x, alpha, sigma)
    assert_close(x0b, mix.x0(x, alpha, sigma), rtol=1e-12)
    assert_close(epsb, eps, rtol=1e-12)
    assert_close(scoreb, score, rtol=1e-12)


def test_x0_at_sigma_zero_is_identity(mix):
    x = mix.sample(100, seed=5)
    assert_close(mix.x0(x, 1.0, 0.0), x, rtol=1e-10)


def test_pure_noise_limit(mix):
    """alpha = 0: p_t = N(0, sigma^2 I), so score = -x / sigma^2 and x0 = E[x0]."""
    x = noised(mix, 50, 0.0, 1.5)
    assert_close(mix.score(x, 0.0, 1.5), -x / 1.5**2, rtol=1e-12)
    assert_close(mix.x0(x, 0.0, 1.5), mix.mean.expand_as(x), rtol=1e-10)
    expected = MultivariateNormal(
        torch.zeros(mix.dim, dtype=torch.float64), 2.25 * torch.eye(mix.dim, dtype=torch.float64)
    ).log_prob(x)
    assert_close(mix.log_prob(x, 0.0, 1.5), expected, rtol=1e-12)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score"])
@pytest.mark.parametrize("name", ["cosine", "edm"])
def test_model_predictions_are_consistent(mix, name, prediction):
    sched = get_schedule(name)
    t = torch.tensor([0.02, 0.2, 0.5, 0.8, 1.0], dtype=torch.float64)
    alpha, sigma = sched.alpha(t), sched.sigma(t)
    x = noised(mix, len(t), alpha, sigma, seed=7)
    out = mix.model(sched, prediction)(x, t)
    a, s = alpha[:, None], sigma[:, None]
    x0, eps = to_x0_eps(out, x, a, s, prediction)
    assert_close(x0, mix.x0(x, alpha, sigma), rtol=1e-7)
    assert_close(eps, mix.eps(x, alpha, sigma), rtol=1e-7)


def test_model_dtype_shape_and_names():
    mix = GaussianMixture.preset("d64")
    net = mix.model("cosine", prediction="v")
    x = torch.randn(4, 1, 8, 8)  # image-shaped float32, 64 elements per sample
    t = torch.full((4,), 0.5)
    out = net(x, t, cond=None)
    assert out.dtype == torch.float32 and out.shape == x.shape
    ref = mix.model("cosine", prediction="v")(x.reshape(4, 64).double(), t.double())
    torch.testing.assert_close(out.reshape(4, 64), ref.float())
    assert net.prediction == "v" and net.schedule.name == "cosine"
    with pytest.raises(ValueError, match="unknown prediction"):
        mix.model("cosine", prediction="noise")
    with pytest.raises(ValueError, match="elements per sample"):
        net(torch.randn(4, 63), t)


def test_single_component_x0_matches_linear_gaussian():
    """K = 1: E[x0 | x] = mu + alpha Sigma (alpha^2 Sigma + sigma^2 I)^{-1} (x - alpha mu)."""
    D = 5
    mu = torch.linspace(-1, 1, D, dtype=torch.float64)
    Sigma = random_spd(D, seed=1)
    mix = GaussianMixture(torch.ones(1), mu[None], Sigma[None])
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, D, generator=g, dtype=torch.float64)
    for alpha, sigma in [(1.0, 0.1), (0.6, 0.8), (0.2, 3.0)]:
        C = alpha**2 * Sigma + sigma**2 * torch.eye(D, dtype=torch.float64)
        expected = mu + alpha * torch.linalg.solve(C, (x - alpha * mu).T).T @ Sigma
        assert_close(mix.x0(x, alpha, sigma), expected, rtol=1e-10)
        assert_close(
            mix.score(x, alpha, sigma), -torch.linalg.solve(C, (x - alpha * mu).T).T, rtol=1e-10
        )


# ----------------------------------------------------------------------------------------------
# density and sampling


def test_log_prob_single_component_matches_torch():
    D = 6
    mu = torch.arange(D, dtype=torch.float64) / D
    Sigma = random_spd(D, seed=4)
    mix = GaussianMixture([1.0], mu[None], Sigma[None])
    x = torch.randn(30, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for alpha, sigma in [(1.0, 0.0), (0.9, 0.3), (0.1, 1.0)]:
        C = alpha**2 * Sigma + sigma**2 * torch.eye(D, dtype=torch.float64)
        expected = MultivariateNormal(alpha * mu, C).log_prob(x)
        assert_close(mix.log_prob(x, alpha, sigma), expected, rtol=1e-12)


@pytest.mark.parametrize("alpha,sigma", [(1.0, 0.0), (0.7, 0.5)])
def test_log_prob_equals_sum_of_noised_components(mix, alpha, sigma):
    x = noised(mix, 50, alpha, sigma, seed=11)
    eye = torch.eye(mix.dim, dtype=torch.float64)
    comps = [
        math.log(w) + MultivariateNormal(alpha * mu, alpha**2 * S + sigma**2 * eye).log_prob(x)
        for w, mu, S in zip(mix.weights.tolist(), mix.means, mix.covariances, strict=True)
    ]
    assert_close(mix.log_prob(x, alpha, sigma), torch.logsumexp(torch.stack(comps), 0), 1e-10)


@pytest.mark.parametrize("sigma", [0.0, 0.2])
def test_log_prob_2d_integrates_to_one(sigma):
    mix = GaussianMixture.preset("2d")
    h = 0.02  # the grid rule is spectrally accurate for Gaussians with std > h (min std 0.03)
    g = torch.arange(-3.0, 3.0, h, dtype=torch.float64)
    xy = torch.cartesian_prod(g, g)
    total = float(torch.exp(mix.log_prob(xy, 1.0, sigma)).sum()) * h * h
    assert abs(total - 1) < 1e-6


def test_sample_moments(mix):
    n = 200_000 if mix.dim == 2 else 40_000
    x, labels = mix.sample(n, seed=0, return_labels=True)
    assert x.dtype == torch.float64 and x.shape == (n, mix.dim) and labels.shape == (n,)
    freq = torch.bincount(labels, minlength=mix.n_components) / n
    assert float((freq - mix.weights).abs().max()) < 4 * math.sqrt(0.25 / n)
    sd = mix.covariance.diagonal().sqrt()
    assert bool(((x.mean(0) - mix.mean).abs() < 5 * sd / math.sqrt(n)).all())
    cov_err = (torch.cov(x.T) - mix.covariance).abs()
    assert float(cov_err.max()) < 6 * float(sd.max()) ** 2 * math.sqrt(2 / n)
    # the log density of a sample averages to the negative entropy; the noised sample's too
    assert torch.isfinite(mix.log_prob(x[:1000])).all()


def test_sample_is_deterministic(mix):
    a = mix.sample(500, seed=3)
    assert torch.equal(a, mix.sample(500, seed=3))
    assert not torch.equal(a, mix.sample(500, seed=4))
    x, labels = mix.sample(500, seed=3, return_labels=True)
    assert torch.equal(x, a) and labels.shape == (500,)


def test_noised_sample_has_noised_moments():
    mix = GaussianMixture.preset("2d")
    alpha, sigma, n = 0.6, 0.8, 200_000
    x = noised(mix, n, alpha, sigma)
    cov = alpha**2 * mix.covariance + sigma**2 * torch.eye(2, dtype=torch.float64)
    assert float((torch.cov(x.T) - cov).abs().max()) < 0.01
    # E[x0 | x_t] averages to E[x0] (tower property)
    assert float((mix.x0(x, alpha, sigma).mean(0) - mix.mean).abs().max()) < 0.01


# ----------------------------------------------------------------------------------------------
# presets and validation


def test_presets():
    m2, m64 = GaussianMixture.preset("2d"), GaussianMixture.preset("d64")
    assert (m2.n_components, m2.dim) == (8, 2) and (m64.n_components, m64.dim) == (16, 64)
    assert len(set(m2.weights.tolist())) > 1 and float(m64.weights.std()) > 0.01
    assert float(m2.means.abs().max()) < 2
    std64 = m64.eigvals.sqrt()
    assert 0.02 <= float(std64.min()) and float(std64.max()) <= 0.3
    assert 0.3 < float(m64.covariance.diagonal().sqrt().mean()) < 1.0
    assert torch.equal(GaussianMixture.preset("d64").covariances, m64.covariances)  # fixed seed
    ratio = m2.eigvals[:, 1] / m2.eigvals[:, 0]
    assert bool((ratio > 2).all())  # every 2-D component is elongated


def test_unknown_preset_lists_names():
    with pytest.raises(ValueError, match="2d, d64"):
        GaussianMixture.preset("cifar")


@pytest.mark.parametrize(
    "weights,means,covs,match",
    [
        ([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]], "sum to 1"),
        ([1.5, -0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]], "positive"),
        ([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.0, 1.0]]], "symmetric"),
        ([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]], "positive definite"),
        ([1.0], [[0.0, 0.0]], [[[1.0]]], "covariances must have shape"),
        ([0.5, 0.5], [[0.0, 0.0]], [[[1.0, 0.0], [0.0, 1.0]]], "weights must have shape"),
    ],
)
def test_validation(weights, means, covs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(weights, means, covs)


def test_bad_alpha_sigma():
    mix = GaussianMixture.preset("2d")
    x = mix.sample(4)
    with pytest.raises(ValueError, match="not both zero"):
        mix.score(x, 0.0, 0.0)
    with pytest.raises(ValueError, match="sigma must be"):
        mix.score(x, 1.0, torch.ones(3))
