"""Fixtures shared by the whole suite: the exact single-Gaussian model and the Gaussian-mixture
presets (exact test problems, DESIGN.md section 6)."""

import math

import pytest

from difflab.data.mixture import GaussianMixture
from difflab.schedules import Schedule


class GaussianX0:
    """The exact x0 prediction for data N(m, s^2 I): the single-Gaussian test problem."""

    prediction = "x0"

    def __init__(self, schedule: Schedule, m: float = 0.5, s: float = 0.3):
        self.schedule, self.m, self.s = schedule, m, s

    def __call__(self, x, t, cond=None):
        """E[x0 | x_t] = m + alpha s^2 / (alpha^2 s^2 + sigma^2) (x_t - alpha m)."""
        shape = (-1, *[1] * (x.ndim - 1))
        a = self.schedule.alpha(t).to(x.dtype).view(shape)
        sg = self.schedule.sigma(t).to(x.dtype).view(shape)
        return self.m + a * self.s**2 / (a**2 * self.s**2 + sg**2) * (x - a * self.m)

    def ode_solution(self, x_start, t_start: float, t_end: float):
        """x at t_end on the probability-flow ODE, which keeps z = (x - alpha m) / std_t."""
        def std(t):
            return math.sqrt(float(self.schedule.alpha(t)) ** 2 * self.s**2
                             + float(self.schedule.sigma(t)) ** 2)

        a0, a1 = float(self.schedule.alpha(t_start)), float(self.schedule.alpha(t_end))
        z = (x_start - a0 * self.m) / std(t_start)
        return a1 * self.m + std(t_end) * z


@pytest.fixture(scope="session")
def gaussian_x0():
    """The class GaussianX0(schedule, m=0.5, s=0.3): an exact x0 'network' for N(m, s^2 I)."""
    return GaussianX0


@pytest.fixture(scope="session")
def mix2() -> GaussianMixture:
    """The `2d` Gaussian-mixture preset."""
    return GaussianMixture.preset("2d")


@pytest.fixture(scope="session")
def mix64() -> GaussianMixture:
    """The `d64` Gaussian-mixture preset."""
    return GaussianMixture.preset("d64")
