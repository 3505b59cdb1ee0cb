import math

import pytest
import torch

from difflab import losses
from difflab.predictions import from_x0_eps
from difflab.schedules import DISCRETE, get_schedule

F64 = torch.float64


def test_targets():
    sched = get_schedule("cosine")
    t = torch.tensor([0.3, 0.7], dtype=F64)
    a, s = sched.alpha(t).view(2, 1), sched.sigma(t).view(2, 1)
    x0, eps = torch.randn(2, 3, dtype=F64), torch.randn(2, 3, dtype=F64)
    assert torch.equal(losses.target("eps", x0, eps, a, s), eps)
    assert torch.equal(losses.target("x0", x0, eps, a, s), x0)
    assert torch.allclose(losses.target("v", x0, eps, a, s), a * eps - s * x0)


@pytest.mark.parametrize("schedule", ["linear", "edm"])
@pytest.mark.parametrize("weighting", ["simple", "min_snr", "elbo"])
def test_weighting_is_the_same_objective_for_every_prediction(schedule, weighting):
    """min_snr and elbo weight the eps error the same whatever the network predicts."""
    sched = get_schedule(schedule)
    t = torch.tensor([0.01, 0.2, 0.5, 0.95], dtype=F64)
    a, s = sched.alpha(t).view(4, 1), sched.sigma(t).view(4, 1)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 6, generator=g, dtype=F64), torch.randn(4, 6, generator=g, dtype=F64)
    x = a * x0 + s * eps
    eps_hat = eps + 0.1 * torch.randn(4, 6, generator=g, dtype=F64)  # an imperfect network
    x0_hat = (x - s * eps_hat) / a
    per_pred = {}
    for p in ("eps", "x0", "v", "score"):
        pred = from_x0_eps(x0_hat, eps_hat, a, s, p)
        tgt = losses.target(p, x0, eps, a, s)
        per_pred[p] = losses.weight(weighting, t, sched, p) * ((pred - tgt) ** 2).mean(1)
    if weighting == "simple":
        return
    for p in ("x0", "v", "score"):
        assert torch.allclose(per_pred[p], per_pred["eps"], rtol=1e-9), p


def test_min_snr_formulas():
    sched = get_schedule("linear")
    t = torch.tensor([0.001, 0.05, 0.3, 0.9], dtype=F64)
    snr = torch.exp(sched.logsnr(t))
    m = torch.clamp(snr, max=5.0)
    assert torch.allclose(losses.weight("min_snr", t, sched, "eps"), m / snr)
    assert torch.allclose(losses.weight("min_snr", t, sched, "x0"), m)
    assert torch.allclose(losses.weight("min_snr", t, sched, "v"), m / (snr + 1))


def test_elbo_weighted_loss_integrates_to_the_gaussian_closed_form():
    """For data N(0, s^2) and the exact denoiser, E_t[elbo loss] (1 - t_min) equals
    1/2 log((1 + s^2 SNR(t_min)) / (1 + s^2 SNR(1))) nats per dimension."""
    sched = get_schedule("vp")
    s = 0.5

    def exact_eps(x, t):
        a = sched.alpha(t.double()).float().view(-1, 1)
        sg = sched.sigma(t.double()).float().view(-1, 1)
        return sg * x / (a**2 * s**2 + sg**2)  # E[eps | x_t] for N(0, s^2) data

    g = torch.Generator().manual_seed(0)
    vals = [losses.diffusion_loss(exact_eps, s * torch.randn(4096, 4, generator=g), sched,
                                  weighting="elbo", generator=g).item() for _ in range(40)]
    estimate = sum(vals) / len(vals) * (1 - sched.t_min)
    snr = lambda t: math.exp(float(sched.logsnr(t)))  # noqa: E731
    closed = 0.5 * math.log((1 + s**2 * snr(sched.t_min)) / (1 + s**2 * snr(1.0)))
    assert abs(estimate - closed) < 0.03 * closed, (estimate, closed)


def test_time_sampling():
    sched = get_schedule("linear")
    g = torch.Generator().manual_seed(0)
    t = losses.sample_t(10000, sched, "discrete", generator=g)
    k = torch.round(t.double() * 1000)
    assert torch.allclose(t.double() * 1000, k, atol=1e-3) and k.min() >= 1 and k.max() <= 1000
    u = losses.sample_t(10000, sched, "uniform", generator=g)
    assert float(u.min()) >= 1e-3 and float(u.max()) <= 1 and abs(float(u.mean()) - 0.5) < 0.01
    with pytest.raises(ValueError, match="needs a discrete schedule"):
        losses.sample_t(4, get_schedule("vp"), "discrete")
    with pytest.raises(ValueError, match="choose one of simple, min_snr, elbo"):
        losses.weight("snr", t, sched)


def test_loss_is_zero_for_a_perfect_network_and_float32():
    sched = get_schedule("linear")
    x0 = torch.randn(8, 2)
    eps = torch.randn(8, 2)
    t = torch.rand(8)

    def oracle(x, t_):
        return eps.to(torch.bfloat16)

    loss = losses.diffusion_loss(oracle, x0, sched, t=t, eps=eps)
    assert loss.dtype == torch.float32 and float(loss) < 1e-4


@pytest.mark.parametrize("schedule", ["linear", "cosine", "vp", "edm"])
def test_loss_follows_the_device_of_its_inputs(schedule):
    """Times on another device than the schedule's tables (CPU): 'meta' stands in for CUDA,
    where indexing a CPU grid with GPU times used to fail."""
    sched = get_schedule(schedule)
    x0 = torch.zeros(4, 2, device="meta")
    for weighting in ("simple", "min_snr", "elbo"):
        for time_sampling in ("uniform",) + (("discrete",) if schedule in DISCRETE else ()):
            loss = losses.diffusion_loss(lambda x, t: x, x0, sched, weighting=weighting,
                                  time_sampling=time_sampling, eps=torch.zeros_like(x0))
            assert loss.device.type == "meta"
    assert sched.t_of_logsnr(torch.zeros(3, device="meta")).device.type == "meta"


def test_min_snr_at_zero_terminal_snr():
    sched = get_schedule("cosine", zero_terminal_snr=True)
    t = torch.tensor([1.0, 0.5])
    w = {p: losses.weight("min_snr", t, sched, p) for p in ("eps", "x0", "v")}
    assert w["eps"][0] == 1 and w["x0"][0] == 0 and w["v"][0] == 0  # the SNR -> 0 limits
    snr = float(sched.alpha(0.5) / sched.sigma(0.5)) ** 2
    assert float(w["x0"][1]) == pytest.approx(min(snr, 5.0))
    assert float(w["v"][1]) == pytest.approx(min(snr, 5.0) / (snr + 1))
