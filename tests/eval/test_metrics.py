"""Sample-quality metrics: sliced W2, mode TV, log-density gap."""

import math

import pytest
import torch

from difflab.eval.metrics import (
    MIN_SAMPLES,
    _directions,
    evaluate,
    logdensity_gap,
    mode_tv,
    sliced_wasserstein2,
    sw2_noise_floor,
)


def gaussian(n, d, seed):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def shrunk(mix, n, factor, seed=0):
    """True samples pulled toward their own component's mean: mu_k + factor (x - mu_k)."""
    x, k = mix.sample(n, seed=seed, return_labels=True)
    return mix.means[k] + factor * (x - mix.means[k])


# ----------------------------------------------------------------------------------------------
# sliced Wasserstein


def test_sw2_self_is_zero_and_symmetric():
    x, y = gaussian(500, 8, 0), gaussian(700, 8, 1)
    assert sliced_wasserstein2(x, x) == 0.0
    assert sliced_wasserstein2(x, torch.cat([x, x])) < 1e-12  # same empirical measure
    assert sliced_wasserstein2(x, y) == pytest.approx(sliced_wasserstein2(y, x), rel=1e-12)
    assert sliced_wasserstein2(x, y, seed=3) == sliced_wasserstein2(x, y, seed=3)
    assert sliced_wasserstein2(x, y, seed=3) != sliced_wasserstein2(x, y, seed=4)


def test_sw2_of_a_shift():
    """Shifting by v moves every projection by theta^T v, so SW2^2 = mean_theta (theta^T v)^2,
    which is |v|^2 / D on average over the sphere."""
    D = 16
    x = gaussian(1000, D, 0)
    previous = 0.0
    for c in [0.1, 0.5, 2.0]:
        v = torch.full((D,), c, dtype=torch.float64)
        sw = sliced_wasserstein2(x, x + v, n_projections=2000, seed=1)
        exact = float(((_directions(2000, D, seed=1) @ v) ** 2).mean().sqrt())
        assert sw == pytest.approx(exact, rel=1e-10)
        assert sw == pytest.approx(c, rel=0.05)  # |v| / sqrt(D) = c
        assert sw > previous
        previous = sw


@pytest.mark.parametrize("n,m", [(120, 200), (150, 150)])
def test_sw2_is_exact_w2_in_one_dimension(n, m):
    """In 1-D every projection is +-1, so SW2 is W2 = (int_0^1 (F^-1 - G^-1)^2 du)^(1/2)."""
    x, y = gaussian(n, 1, 0), 0.5 + 2 * gaussian(m, 1, 1)
    u = (torch.arange(1_000_000, dtype=torch.float64) + 0.5) / 1_000_000  # midpoint rule
    xs, ys = x[:, 0].sort().values, y[:, 0].sort().values
    fx, gy = xs[(u * n).long()], ys[(u * m).long()]
    w2 = float(((fx - gy) ** 2).mean().sqrt())
    assert sliced_wasserstein2(x, y, n_projections=8) == pytest.approx(w2, rel=1e-5)


def test_sw2_noise_floor(mix2, mix64):
    for mix in (mix2, mix64):
        small = sw2_noise_floor(mix, 200)
        large = sw2_noise_floor(mix, 5000)
        assert 0 < large < small < 0.3
        assert large < 0.5 * small  # about 1 / sqrt(n)
    # a shifted sample sits far above the floor
    x, y = mix64.sample(2000, seed=1), mix64.sample(2000, seed=2)
    assert sliced_wasserstein2(x + 0.1, y) > 3 * sw2_noise_floor(mix64, 2000)


def test_sw2_rejects_too_few_samples_and_bad_shapes():
    with pytest.raises(ValueError, match="at least 100"):
        sliced_wasserstein2(gaussian(MIN_SAMPLES - 1, 2, 0), gaussian(500, 2, 1))
    with pytest.raises(ValueError, match="at least 100"):
        sliced_wasserstein2(gaussian(500, 2, 0), gaussian(50, 2, 1))
    with pytest.raises(ValueError, match="dimension"):
        sliced_wasserstein2(gaussian(500, 2, 0), gaussian(500, 3, 1))


def test_sw2_nonfinite_is_inf():
    x = gaussian(200, 2, 0)
    y = x.clone()
    y[3, 0] = math.nan
    assert sliced_wasserstein2(x, y) == math.inf


# ----------------------------------------------------------------------------------------------
# mode TV


def test_mode_tv_near_zero_for_true_samples(mix2, mix64):
    assert mode_tv(mix2, mix2.sample(20000, seed=1)) < 0.02
    assert mode_tv(mix64, mix64.sample(20000, seed=1)) < 0.02


def test_mode_tv_of_one_component(mix2, mix64):
    """All samples in component k: TV = 0.5 (1 - w_k + sum_{j != k} w_j) = 1 - w_k."""
    for mix, k in ((mix2, 0), (mix64, 5)):
        x, labels = mix.sample(20000, seed=2, return_labels=True)
        x = x[labels == k]
        assert mode_tv(mix, x) == pytest.approx(1 - float(mix.weights[k]), abs=0.01)


def test_mode_tv_counts_nonfinite_as_unassigned(mix2):
    x = mix2.sample(1000, seed=3)
    base = mode_tv(mix2, x)
    x[:100] = math.inf
    assert mode_tv(mix2, x) > base + 0.05


def test_mode_tv_rejects_too_few_samples(mix2):
    with pytest.raises(ValueError, match="at least 100"):
        mode_tv(mix2, mix2.sample(99))
    with pytest.raises(ValueError, match="dimensions"):
        mode_tv(mix2, gaussian(500, 3, 0))


# ----------------------------------------------------------------------------------------------
# log-density gap


def test_logdensity_gap_near_zero_for_true_samples(mix2, mix64):
    assert abs(logdensity_gap(mix2, mix2.sample(20000, seed=5))) < 0.05
    assert abs(logdensity_gap(mix64, mix64.sample(20000, seed=5))) < 0.3  # sd of log p is ~6


def test_logdensity_gap_sign(mix2, mix64):
    """Shrinking by f raises log p by about (1 - f^2) D / 2 (the Gaussian quadratic term)."""
    for mix in (mix2, mix64):
        sharp = logdensity_gap(mix, shrunk(mix, 5000, 0.5))
        assert sharp == pytest.approx(0.375 * mix.dim, rel=0.15)
        assert logdensity_gap(mix, shrunk(mix, 5000, 1.5)) < -0.3 * mix.dim


def test_logdensity_gap_errors_and_nonfinite(mix2):
    with pytest.raises(ValueError, match="at least 100"):
        logdensity_gap(mix2, mix2.sample(10))
    x = mix2.sample(500)
    x[0] = math.nan
    assert logdensity_gap(mix2, x) == -math.inf


# ----------------------------------------------------------------------------------------------
# evaluate


def test_evaluate(mix2):
    good = evaluate(mix2, mix2.sample(4000, seed=7))
    bad = evaluate(mix2, shrunk(mix2, 4000, 0.3, seed=7))
    assert set(good) == {"sw2", "mode_tv", "logp_gap"}
    assert all(isinstance(v, float) for v in good.values())
    assert good["sw2"] < 2 * sw2_noise_floor(mix2, 4000) < bad["sw2"]
    assert good["mode_tv"] < 0.03
    assert abs(good["logp_gap"]) < 0.1 < bad["logp_gap"]
    assert evaluate(mix2, mix2.sample(4000, seed=7)) == good  # deterministic
