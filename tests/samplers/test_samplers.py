import math

import numpy as np
import pytest
import torch

import difflab
from difflab import samplers
from difflab.noise import NoiseSource, sample_keys
from difflab.samplers.multistep import dpmpp_multistep
from difflab.schedules import get_schedule, get_times

F64 = torch.float64


# ---------------------------------------------------------------------------------------------
# order of accuracy on a single Gaussian, against rk45 at a tight tolerance

ORDERS = {"euler": 1, "ddim": 1, "heun": 2, "dpm++2m": 2, "dpm++3m": 3, "unipc": 3, "unipc3": 3}


@pytest.fixture(scope="module")
def order_problem(gaussian_x0):
    sched = get_schedule("linear")
    model = gaussian_x0(sched, m=0.5, s=0.5)
    x_T = torch.linspace(-2.5, 2.5, 16, dtype=F64).view(16, 1)

    def run(name, n, **kw):
        ts = get_times("logsnr", n, sched, t_end=0.05)
        return difflab.sample(model, sched, x_T=x_T, times=ts, sampler=name, dtype=F64, **kw)

    ref = run("rk45", 2, rtol=1e-12, atol=1e-12)
    return run, ref, model, x_T, sched


def test_rk45_matches_the_exact_ode_solution(order_problem):
    run, ref, model, x_T, sched = order_problem
    x_end = model.ode_solution(x_T, 1.0, 0.05)
    exact = model(x_end, torch.full((16,), 0.05, dtype=F64))  # the final denoise at t_end
    assert (ref - exact).abs().max() < 1e-9


@pytest.mark.parametrize("name", list(ORDERS))
def test_order_of_accuracy(order_problem, name):
    """Error ~ N^-p for N intervals: slope of log error against log N."""
    run, ref, *_ = order_problem
    ns = [40, 80, 160, 320]
    errs = [float((run(name, n) - ref).abs().max()) for n in ns]
    slope = -np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(slope - ORDERS[name]) < 0.35, (name, slope, errs)


def test_dpmpp_3m_step_is_exact_for_quadratic_x0():
    """The 3M update integrates x0_hat(lambda) = quadratic exactly (third order)."""
    from scipy.integrate import quad

    class Quadratic:  # a 'network' whose x0_hat depends only on lambda, quadratically
        prediction = "x0"

        def __init__(self, sched):
            self.sched = sched

        def __call__(self, x, t, cond=None):
            lam = 0.5 * self.sched.logsnr(t).to(x.dtype)
            return (0.3 * lam**2 - 0.7 * lam + 0.2).view(-1, 1).expand_as(x)

    sched = get_schedule("vp")
    times = [0.9, 0.7, 0.5, 0.4, 0.0]  # the fourth step is a full 3M step
    lam = [0.5 * float(sched.logsnr(t)) for t in times[:-1]]
    x = torch.zeros(1, 1, dtype=F64)
    got = {}
    samplers.Denoiser(Quadratic(sched), sched, "x0")

    def cb(i, t, x_i, x0_hat):
        got[i] = x_i

    den = samplers.Denoiser(Quadratic(sched), sched, "x0")
    dpmpp_multistep(den, x, times, noise=None, order=3, callback=cb)
    # exact: x_hat(lam_3) = e^{-h} x_hat(lam_2) + int_0^h e^{-(h - u)} D(lam_2 + u) du
    h = lam[3] - lam[2]
    D = lambda l: 0.3 * l * l - 0.7 * l + 0.2  # noqa: E731
    integral = quad(lambda u: math.exp(-(h - u)) * D(lam[2] + u), 0, h, epsabs=1e-14)[0]
    a2, a3 = float(sched.alpha(times[2])), float(sched.alpha(times[3]))
    expected = math.exp(-h) * float(got[2]) / a2 + integral
    assert abs(float(got[3]) / a3 - expected) < 1e-10


# ---------------------------------------------------------------------------------------------
# identities between samplers


def _den(model, sched):
    return samplers.Denoiser(model, sched, model.prediction)


@pytest.mark.parametrize("schedule", ["linear", "edm", "subvp"])
def test_ddim_eta0_equals_dpmpp1_and_euler(schedule, gaussian_x0):
    sched = get_schedule(schedule)
    model = gaussian_x0(sched)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    x = x * float(sched.sigma(1.0))
    ts = samplers.check_times(get_times("karras", 12, sched))
    a = samplers.ddim(_den(model, sched), x, ts, noise=None, eta=0.0)
    b = dpmpp_multistep(_den(model, sched), x, ts, noise=None, order=1)
    c = samplers.euler(_den(model, sched), x, ts)
    assert (a - b).abs().max() < 1e-6 and (a - c).abs().max() < 1e-6


def test_ddim_eta1_on_the_full_grid_equals_ddpm_small(gaussian_x0):
    sched = get_schedule("linear")
    model = gaussian_x0(sched)
    ts = samplers.check_times(get_times("trailing", 1000, sched))
    x = NoiseSource(sample_keys(3, 32), (2,), dtype=F64)()
    a = samplers.ddim(_den(model, sched), x, ts, noise=NoiseSource(sample_keys(5, 32), (2,),
                      dtype=F64), eta=1.0)
    b = samplers.ddpm(_den(model, sched), x, ts, noise=NoiseSource(sample_keys(5, 32), (2,),
                      dtype=F64), variance="small")
    assert (a - b).abs().max() < 1e-10


def test_ddpm_is_ho_et_al_algorithm_2(gaussian_x0):
    """On the full grid, ddpm equals Algorithm 2 written with betas (Ho et al. 2020)."""
    sched = get_schedule("linear")
    model = gaussian_x0(sched)
    betas, abar = sched.betas, sched.alphas_cumprod
    T = 1000
    keys = sample_keys(11, 16)
    x_T = NoiseSource(keys, (2,), dtype=F64)()
    for variance in ("small", "large"):
        ts = samplers.check_times(get_times("trailing", T, sched))  # the full grid i / T
        ours = samplers.ddpm(_den(model, sched), x_T, ts, noise=NoiseSource(keys, (2,), dtype=F64),
                             variance=variance)
        noise = NoiseSource(keys, (2,), dtype=F64)
        x = x_T
        for i in range(T, 0, -1):  # Algorithm 2, with the eps of the x0 model
            t = torch.full((16,), i / T, dtype=F64)
            eps = (x - abar[i - 1].sqrt() * model(x, t)) / (1 - abar[i - 1]).sqrt()
            mean = (x - betas[i - 1] / (1 - abar[i - 1]).sqrt() * eps) / (1 - betas[i - 1]).sqrt()
            if i == 1:
                x = mean
                break
            var = betas[i - 1] if variance == "large" else (
                (1 - abar[i - 2]) / (1 - abar[i - 1]) * betas[i - 1])
            x = mean + var.sqrt() * noise()
        assert (ours - x).abs().max() < 1e-9, variance


def test_ddim_replays_a_diffusers_timestep_list(gaussian_x0):
    """DDPM step k (0-based) is time (k + 1) / T: DDIM eq. 12 on alpha_bar[k] is replayed."""
    sched = get_schedule("cosine")
    model = gaussian_x0(sched)
    abar = sched.alphas_cumprod
    steps = [999, 899, 799, 599, 399, 199, 99, 49, 19, 0]  # any descending list
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    times = [(k + 1) / 1000 for k in steps] + [0.0]
    ours = difflab.sample(model, sched, x_T=x_T, times=times, sampler="ddim", dtype=F64)
    x = x_T
    for j, k in enumerate(steps):
        x0 = model(x, torch.full((8,), (k + 1) / 1000, dtype=F64))
        eps = (x - abar[k].sqrt() * x0) / (1 - abar[k]).sqrt()
        a_prev = abar[steps[j + 1]] if j + 1 < len(steps) else torch.tensor(1.0, dtype=F64)
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    assert (ours - x).abs().max() < 1e-10


# ---------------------------------------------------------------------------------------------
# batch independence, guidance, errors


@pytest.mark.parametrize("name", ["ddpm", "dpm++2m", "dpm++2m-sde", "heun", "pc"])
def test_seeded_samples_do_not_depend_on_the_batch(name, gaussian_x0):
    sched = get_schedule("linear")
    model = gaussian_x0(sched)
    kw = {"s_churn": 10.0} if name == "heun" else {}
    big = difflab.sample(model, sched, shape=(1000, 2), sampler=name, steps=10, seed=4, **kw)
    small = difflab.sample(model, sched, shape=(8, 2), sampler=name, steps=10, seed=4, **kw)
    assert torch.allclose(big[:8], small, atol=1e-6, rtol=0)
    other = difflab.sample(model, sched, shape=(8, 2), sampler=name, steps=10, seed=5, **kw)
    if samplers.get(name).stochastic or name == "heun":
        assert not torch.allclose(other, small)


def test_classifier_free_guidance():
    sched = get_schedule("linear")

    def net(x, t, cond=None):  # x0 prediction: the class mean, or 0 for the null label
        return torch.zeros_like(x) if cond is None else cond.view(-1, 1).expand_as(x)

    x_T = torch.randn(4, 2, dtype=F64)
    cond = torch.tensor([1.0, -1.0, 2.0, 0.5], dtype=F64)
    out = difflab.sample(net, sched, x_T=x_T, prediction="x0", sampler="ddim", steps=5,
                         cond=cond, guidance=3.0, dtype=F64)
    assert torch.allclose(out, 3.0 * cond.view(-1, 1).expand(4, 2))  # 0 + 3 (c - 0)
    with pytest.raises(ValueError, match="guidance needs a condition"):
        difflab.sample(net, sched, x_T=x_T, prediction="x0", guidance=2.0)


def test_clip_x0_clamps_the_data_prediction():
    sched = get_schedule("cosine")

    def wild(x, t, cond=None):  # an eps network that is badly wrong: x0_hat explodes at t = 1
        return x + 3.0

    x0 = {None: [], 1.0: []}
    for clip in x0:
        difflab.sample(wild, sched, shape=(4, 2), sampler="ddim", steps=5, seed=0, clip_x0=clip,
                       callback=lambda i, t, x, x0_hat, c=clip: x0[c].append(x0_hat.abs().max()))
    x0 = {c: float(max(v)) for c, v in x0.items()}
    assert x0[None] > 100 and x0[1.0] <= 1.0
    with pytest.raises(ValueError, match="clip_x0 must be a positive number"):
        difflab.sample(wild, sched, shape=(4, 2), clip_x0=0)


def test_bf16_runs_the_network_under_autocast_and_keeps_the_state_in_float32():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.SiLU(), torch.nn.Linear(64, 2))
    seen = []

    def model(x, t):  # eps prediction from a small MLP; records the dtype it computed in
        out = net(x) * 0.1
        seen.append(out.dtype)
        return out

    kw = dict(shape=(256, 2), sampler="dpm++2m", steps=8, seed=0)
    ref = difflab.sample(model, "linear", **kw)
    assert set(seen) == {torch.float32}
    seen.clear()
    out = difflab.sample(model, "linear", bf16=True, **kw)
    assert set(seen) == {torch.bfloat16} and out.dtype == torch.float32
    err = (out - ref).abs().max().item()
    assert 0 < err < 0.02 * ref.abs().max().item()  # bf16 rounding, not a different sampler
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16=False leaves a caller's autocast
        difflab.sample(model, "linear", **kw)
    assert set(seen) == {torch.bfloat16}

    def guided(x, t, cond=None):  # eps prediction, shifted by the class
        return model(x, t) + (0.0 if cond is None else 0.1 * cond.view(-1, 1))

    cond = torch.arange(256) % 2 * 1.0
    kw.update(cond=cond, uncond=torch.zeros(256), guidance=2.0)
    ref = difflab.sample(guided, "linear", **kw)
    out = difflab.sample(guided, "linear", bf16=True, **kw)
    assert 0 < (out - ref).abs().max().item() < 0.02 * ref.abs().max().item()


def test_steps_count_network_evaluations(gaussian_x0):
    sched = get_schedule("linear")
    model = gaussian_x0(sched)
    calls = []

    def net(x, t, cond=None):
        calls.append(1)
        return model(x, t)

    for name in samplers.available():
        if name == "rk45":
            continue
        for steps in (5, 10):
            calls.clear()
            difflab.sample(net, sched, shape=(4, 2), prediction="x0", sampler=name, steps=steps)
            assert len(calls) <= steps and len(calls) >= steps - 1, (name, steps, len(calls))


def test_registry_names_papers():
    for name in samplers.available():
        doc = samplers.get(name).doc
        assert re_year(doc), (name, doc)


def re_year(doc: str) -> bool:
    import re

    return re.search(r"(19|20)\d\d", doc) is not None


@pytest.mark.parametrize("name", samplers.available())
def test_every_sampler_runs_on_a_zero_terminal_snr_schedule(name, gaussian_x0):
    """alpha(1) = 0 (Lin et al. 2024): ddpm and ddim use it as it is, the others a copy with a
    finite last log-SNR; all reach the data N(0.5, 0.3^2)."""
    sched = get_schedule("linear", zero_terminal_snr=True)
    assert float(sched.alpha(1.0)) == 0 and math.isinf(float(sched.logsnr(1.0)))
    finite = sched.with_finite_terminal_snr()
    assert math.isfinite(float(finite.logsnr(1.0))) and finite.with_finite_terminal_snr() is finite
    assert float(finite.logsnr(0.999)) == float(sched.logsnr(0.999))  # only the end changes
    x = difflab.sample(gaussian_x0(sched), sched, shape=(4000, 1), sampler=name, steps=100,
                       seed=0, dtype=F64)
    assert torch.isfinite(x).all()  # first-order samplers are still 0.03 narrow at 100 NFE
    assert abs(float(x.mean()) - 0.5) < 0.02 and abs(float(x.std()) - 0.3) < 0.035, (
        float(x.mean()), float(x.std()))


def test_float64_state_with_a_float32_network():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.SiLU(), torch.nn.Linear(16, 2))
    x64 = difflab.sample(lambda x, t: net(x), "linear", shape=(8, 2), steps=4, seed=0,
                         dtype=torch.float32)

    class Wrapped(torch.nn.Module):  # a module: the Denoiser casts the state to its dtype
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x, t):
            return self.net(x)

    out = difflab.sample(Wrapped(), "linear", shape=(8, 2), steps=4, seed=0, dtype=F64)
    assert out.dtype == F64 and torch.allclose(out.float(), x64, atol=1e-5)


def test_bad_input_errors(gaussian_x0):
    sched = get_schedule("linear")
    model = gaussian_x0(sched)
    with pytest.raises(ValueError, match="unknown sampler 'dpm\\+\\+4m'; choose one of .*ddim"):
        difflab.sample(model, sched, shape=(2, 2), sampler="dpm++4m")
    with pytest.raises(ValueError, match="unknown schedule 'lin'; choose one of .*linear"):
        difflab.sample(model, "lin", shape=(2, 2))
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            difflab.sample(model, sched, shape=(2, 2), steps=bad)
    with pytest.raises(ValueError, match="strictly descending"):
        difflab.sample(model, sched, shape=(2, 2), times=[1.0, 0.5, 0.7, 0.0])
    with pytest.raises(ValueError, match="must end at 0"):
        difflab.sample(model, sched, shape=(2, 2), times=[1.0, 0.5, 0.1])
    with pytest.raises(ValueError, match="start at t <= 1"):
        difflab.sample(model, sched, shape=(2, 2), times=[1.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="shape="):
        difflab.sample(model, sched)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        difflab.sample(model, sched, shape=(2, 2), sampler="ddim", eta=-0.5)
    with pytest.raises(ValueError, match="corrector_steps must be an integer >= 0"):
        difflab.sample(model, sched, shape=(2, 2), sampler="pc", corrector_steps=-1)
    with pytest.raises(ValueError, match="pc spends 2 evaluations a step"):
        difflab.sample(model, sched, shape=(2, 2), sampler="pc", steps=1)

    def unconditional(x, t):
        return torch.zeros_like(x)

    with pytest.raises(ValueError, match="cond= was given, but the network takes only"):
        difflab.sample(unconditional, sched, shape=(2, 2), cond=torch.zeros(2))
    assert difflab.sample(model, sched, shape=(2, 2), steps=np.int64(3)).shape == (2, 2)

    def wrong_shape(x, t, cond=None):
        return x[:, :1]

    with pytest.raises(ValueError, match=r"returned \(2, 1\) for an input of shape \(2, 2\)"):
        difflab.sample(wrong_shape, sched, shape=(2, 2))

    def nan_late(x, t, cond=None):
        return torch.where(t.view(-1, 1) < 0.5, torch.nan, 0.0) * torch.ones_like(x)

    with pytest.raises(difflab.SamplingError, match=r"NaN or inf at step 6 \(t = 0\.4"):
        difflab.sample(nan_late, sched, shape=(2, 2), sampler="ddim", steps=10, spacing="trailing")
