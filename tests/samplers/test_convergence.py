"""Every sampler converges to the exact Gaussian mixture as NFE grows (DESIGN.md section 6).

Sliced W2 between finite samples of a well-separated mixture is dominated by the random mode
weights (it scatters from 0.016 to 0.079 between two true samples of 4000 points), so the tests
use statistics with a known, small noise floor: the error of the mean and covariance, mode TV and
the log-density gap, each averaged over three seeds and compared with the same statistic of true
samples. Deterministic samplers are also compared path by path with the rk45 reference.
"""

import numpy as np
import pytest
import torch

import difflab
from difflab import samplers
from difflab.data import GaussianMixture
from difflab.eval.metrics import logdensity_gap, mode_tv
from difflab.schedules import get_schedule

N, SEEDS = 2000, (0, 1, 2)
SLACK = np.array([0.01, 0.015, 0.01, 0.15])  # absolute slack per statistic
FIRST_ORDER = {"ddpm", "ddim", "euler", "euler_maruyama", "pc"}


def _stats(mixture, x) -> np.ndarray:
    """[|mean error|, |covariance error|_F, mode TV, |log-density gap|] of samples x."""
    x = x.double()
    return np.array([float((x.mean(0) - mixture.mean).norm()),
                     float((torch.cov(x.T) - mixture.covariance).norm()),
                     mode_tv(mixture, x), abs(logdensity_gap(mixture, x, n_ref=N))])


@pytest.fixture(scope="module")
def problem():
    mixture = GaussianMixture.preset("2d")
    sched = get_schedule("linear")
    floor = np.mean([_stats(mixture, mixture.sample(N, seed=100 + s)) for s in SEEDS], 0)
    return mixture, sched, mixture.model(sched, "eps"), floor


def _run(problem, name, steps, seed):
    mixture, sched, model, _ = problem
    return difflab.sample(model, sched, shape=(N, 2), sampler=name, steps=steps, seed=seed)


def _mean_stats(problem, name, steps):
    return np.mean([_stats(problem[0], _run(problem, name, steps, s)) for s in SEEDS], 0)


@pytest.mark.parametrize("name", [s for s in samplers.available() if s != "rk45"])
def test_sampler_converges_to_the_mixture(problem, name):
    floor = problem[3]
    high_nfe = 500 if name in FIRST_ORDER else 100
    low, mid, high = (_mean_stats(problem, name, n) for n in (6, 30, high_nfe))
    assert low.sum() > mid.sum() and low.sum() > 2 * high.sum(), (name, low, mid, high)
    assert (high < 1.5 * floor + SLACK).all(), (name, high, floor)  # ... to the noise floor


@pytest.mark.parametrize("name", ["euler", "heun", "ddim", "dpm++2m", "dpm++3m", "unipc"])
def test_deterministic_samplers_converge_to_the_reference_path(problem, name):
    """The same starting noise gives the rk45 solution, ever closer as NFE grows."""
    ref = difflab.sample(problem[2], problem[1], shape=(N, 2), sampler="rk45", seed=0,
                         rtol=1e-7, atol=1e-7, dtype=torch.float64)
    err = [float((_run(problem, name, n, 0).double() - ref).abs().mean()) for n in (10, 40, 160)]
    assert err[0] > err[1] > err[2] and err[2] < 0.02, (name, err)


def test_rk45_reference_is_at_the_floor(problem):
    s = _mean_stats(problem, "rk45", 1)
    assert (s < 1.3 * problem[3] + SLACK / 2).all(), (s, problem[3])
