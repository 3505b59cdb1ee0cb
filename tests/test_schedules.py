import math

import pytest
import torch

from difflab import schedules as S
from difflab.schedules import get_schedule, get_times

T_GRID = torch.tensor([1e-3, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999, 1.0], dtype=torch.float64)
ALL = ["linear", "cosine", "sigmoid", "scaled_linear", "vp", "subvp", "ve", "edm"]


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid", "scaled_linear"])
def test_discrete_grid_equals_ddpm_product(name):
    sched = S.get_schedule(name)
    betas = S.betas_for(name, 1000)
    abar = torch.ones((), dtype=torch.float64)
    expected = []
    for b in betas.tolist():  # the DDPM product, one factor at a time
        abar = abar * (1 - b)
        expected.append(float(abar))
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    got = sched.alpha(t) ** 2
    assert torch.allclose(got, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


def test_linear_betas_are_ho_et_al():
    b = S.betas_for("linear", 1000)
    assert b[0] == 1e-4 and abs(float(b[-1]) - 0.02) < 1e-15 and len(b) == 1000


def test_cosine_is_nichol_dhariwal():
    sched = S.get_schedule("cosine")
    s, T = 0.008, 1000

    def f(i):
        return math.cos((i / T + s) / (1 + s) * math.pi / 2) ** 2

    # alpha_bar_i = f(i) / f(0) wherever beta was not clipped
    for i in [1, 10, 500, 900]:
        assert abs(float(sched.alpha(i / T)) ** 2 - f(i) / f(0)) < 1e-12
    assert float(S.betas_for("cosine").max()) <= 0.999


@pytest.mark.parametrize("name", ALL)
def test_t_of_logsnr_inverts_logsnr(name):
    sched = S.get_schedule(name)
    t = T_GRID[T_GRID >= sched.t_min]
    l = sched.logsnr(t)
    assert torch.allclose(sched.t_of_logsnr(l), t, atol=1e-9)
    assert bool((l[1:] < l[:-1]).all()), "logsnr must be strictly decreasing"


@pytest.mark.parametrize("name", ALL)
def test_alpha_sigma_logsnr_agree(name):
    sched = S.get_schedule(name)
    t = T_GRID
    a, s = sched.alpha(t), sched.sigma(t)
    assert torch.allclose(2 * torch.log(a / s), sched.logsnr(t), atol=1e-9)
    assert torch.allclose(sched.sigma_hat(t), s / a, rtol=1e-10)


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid", "scaled_linear", "vp"])
def test_vp_identity(name):
    sched = S.get_schedule(name)
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.allclose(sched.alpha(t) ** 2 + sched.sigma(t) ** 2, torch.ones_like(t),
                          atol=1e-14)


def test_subvp_and_ve_shapes():
    sub = S.get_schedule("subvp")
    t = torch.linspace(0.01, 1, 50, dtype=torch.float64)
    assert bool((sub.alpha(t) ** 2 + sub.sigma(t) ** 2 < 1).all())  # sub-VP: strictly below VP
    vp = S.get_schedule("vp")
    assert torch.allclose(sub.alpha(t), vp.alpha(t), rtol=1e-12)
    assert torch.allclose(sub.sigma(t), vp.sigma(t) ** 2, rtol=1e-12)  # sigma_sub = sigma_vp^2
    edm = S.get_schedule("edm")
    assert abs(float(edm.sigma(1.0)) - 80) < 1e-9 and abs(float(edm.sigma(0.0)) - 0.002) < 1e-12
    assert torch.equal(edm.alpha(t), torch.ones_like(t))


@pytest.mark.parametrize("name", ALL)
def test_sde_coefficients_match_derivatives(name):
    """f = d log alpha / dt and g^2 = d sigma^2/dt - 2 f sigma^2 (Song et al. 2021, eq. 5)."""
    sched = S.get_schedule(name)
    t = torch.tensor([0.05, 0.3, 0.62, 0.9], dtype=torch.float64)
    if name in S.DISCRETE:  # piecewise linear: take the derivative inside a segment
        t = (torch.floor(t * 1000) + 0.5) / 1000
    h = 1e-7
    dloga = (torch.log(sched.alpha(t + h)) - torch.log(sched.alpha(t - h))) / (2 * h)
    dsig2 = (sched.sigma(t + h) ** 2 - sched.sigma(t - h) ** 2) / (2 * h)
    assert torch.allclose(sched.f(t), dloga, rtol=1e-5, atol=1e-7)
    g2 = dsig2 - 2 * dloga * sched.sigma(t) ** 2
    assert torch.allclose(sched.g(t) ** 2, g2, rtol=1e-5, atol=1e-7)


def test_vp_and_subvp_share_their_linear_beta():
    """Both use beta(t) = beta_min + t (beta_max - beta_min) (Song et al. 2021, eq. 11 and 29)."""
    kw = dict(beta_min=0.5, beta_max=8.0, t_min=1e-4)
    vp, sub = S.get_schedule("vp", **kw), S.get_schedule("subvp", **kw)
    t = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    beta = 0.5 + t * (8.0 - 0.5)
    for sched in (vp, sub):
        assert (sched.beta_min, sched.beta_max, sched.t_min) == (0.5, 8.0, 1e-4)
        assert torch.allclose(sched.f(t), -0.5 * beta, rtol=1e-12)
    assert torch.allclose(sub.alpha(t), vp.alpha(t), rtol=1e-12)
    assert (repr(vp), repr(sub)) == ("VPSDE(vp)", "SubVPSDE(subvp)")


def test_vpsde_coefficients_are_song_et_al():
    vp = S.get_schedule("vp")
    t = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    beta = 0.1 + t * (20 - 0.1)
    assert torch.allclose(vp.f(t), -0.5 * beta, rtol=1e-12)
    assert torch.allclose(vp.g(t) ** 2, beta, rtol=1e-12)


def test_zero_terminal_snr():
    sched = S.get_schedule("linear", zero_terminal_snr=True)
    assert float(sched.alpha(1.0)) == 0.0
    assert float(sched.logsnr(1.0)) == -math.inf
    plain = S.get_schedule("linear")
    assert abs(float(sched.alpha(1e-3)) - float(plain.alpha(1e-3))) < 1e-12  # first step kept
    t = torch.linspace(0.001, 0.999, 50, dtype=torch.float64)
    assert bool((sched.alpha(t) < plain.alpha(t) + 1e-15).all())


def test_interpolation_between_grid_points_is_linear_in_logsnr():
    sched = S.get_schedule("linear")
    l1, l2 = float(sched.logsnr(0.100)), float(sched.logsnr(0.101))
    assert abs(float(sched.logsnr(0.1004)) - (0.6 * l1 + 0.4 * l2)) < 1e-10
    assert float(sched.logsnr(0.0)) == math.inf


@pytest.mark.parametrize("spacing", S.SPACINGS)
@pytest.mark.parametrize("name", ["linear", "cosine", "vp", "edm"])
@pytest.mark.parametrize("n", [1, 2, 7, 50])
def test_spacings_descend_and_end_at_zero(spacing, name, n):
    sched = S.get_schedule(name)
    ts = S.get_times(spacing, n, sched)
    assert len(ts) == n + 1 and float(ts[-1]) == 0.0
    assert bool((ts[1:] < ts[:-1]).all())
    assert float(ts[0]) <= 1.0 and float(ts[-2]) >= sched.t_min - 1e-15


def test_spacing_definitions():
    sched = S.get_schedule("linear")
    trailing = S.get_times("trailing", 4, sched)
    assert torch.allclose(trailing, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64))
    uniform = S.get_times("uniform", 4, sched)  # DDIM: k = 0, 250, 500, 750 -> t = (k + 1) / T
    assert torch.allclose(uniform, torch.tensor([0.751, 0.501, 0.251, 0.001, 0],
                                                dtype=torch.float64))
    ls = sched.logsnr(S.get_times("logsnr", 5, sched)[:-1])
    assert torch.allclose(ls[1:] - ls[:-1], (ls[1] - ls[0]).expand(4), atol=1e-9)
    sh = sched.sigma_hat(S.get_times("karras", 5, sched)[:-1]) ** (1 / 7)
    assert torch.allclose(sh[1:] - sh[:-1], (sh[1] - sh[0]).expand(4), atol=1e-9)


def test_bad_names_and_steps():
    with pytest.raises(ValueError, match="choose one of.*cosine.*linear"):
        S.get_schedule("lineer")
    with pytest.raises(ValueError, match="choose one of.*karras"):
        S.get_times("karas", 10, S.get_schedule("linear"))
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="positive integer"):
            S.get_times("karras", bad, S.get_schedule("linear"))
    with pytest.raises(ValueError, match="zero_terminal_snr"):
        S.get_schedule("vp", zero_terminal_snr=True)


def test_discrete_slope_at_the_end_is_the_last_segment():
    for name in ("linear", "cosine"):
        sched = get_schedule(name)
        L = sched.logsnr(torch.arange(1, 1001, dtype=torch.float64) / 1000)
        last = float((L[-1] - L[-2]) * 1000)
        assert float(sched.dlogsnr_dt(1.0)) == pytest.approx(last, rel=1e-12)
        assert float(sched.dlogsnr_dt(0.9995)) == pytest.approx(last, rel=1e-12)


def test_uniform_spacing_stays_within_t_start():
    sched = get_schedule("linear")
    ts = get_times("uniform", 4, sched, t_end=0.5)
    assert float(ts[0]) <= 1.0 and float(ts[-2]) == 0.5
    assert float(get_times("uniform", 1000, sched, t_start=0.8)[0]) <= 0.8
    default = get_times("uniform", 10, sched)  # unchanged: DDIM's leading spacing
    want = 0.001 + torch.arange(9, -1, -1, dtype=torch.float64) / 10
    assert torch.allclose(default[:-1], want, atol=1e-12)
    with pytest.raises(ValueError, match="need t_end < t_start"):
        get_times("linear", 3, sched, t_start=0.5, t_end=0.5)
