"""Denoiser wrappers (samplers/guidance.py): classifier-free guidance, clipping, composition."""

import math
from functools import partial

import pytest
import torch

import difflab
from difflab import samplers
from difflab.predictions import to_x0_eps
from difflab.samplers import ClassifierFreeGuidance, ClipX0, Denoiser, DenoiserWrapper
from difflab.schedules import get_schedule

F64 = torch.float64
T = 0.4


class Toy:
    """An eps 'network' with known outputs: 0.5 x + cond (B, 1), or 0.5 x - 1 with no cond."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x, t, cond=None):
        self.calls += 1
        return 0.5 * x + (-1.0 if cond is None else cond.view(-1, 1))


def _setup():
    sched = get_schedule("cosine")
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    cond = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
    return sched, x, cond, Toy()


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score"])
def test_cfg_is_ho_salimans_eq_6(prediction):
    """(x0_hat, eps_hat) of out_u + w (out_c - out_u), out_c / out_u the net's outputs."""
    sched, x, cond, net = _setup()
    w = 2.5
    out_c, out_u = net(x, None, cond), net(x, None)
    alpha, sigma = float(sched.alpha(T)), float(sched.sigma(T))
    want = to_x0_eps(out_u + w * (out_c - out_u), x, alpha, sigma, prediction)
    den = ClassifierFreeGuidance(Denoiser(net, sched, prediction, cond=cond), None, w)
    got = den(x, T)
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_cfg_scale_1_is_the_conditional_and_scale_0_the_unconditional_denoiser():
    sched, x, cond, net = _setup()
    uncond = torch.full((4,), -0.25, dtype=F64)
    plain_c = Denoiser(net, sched, cond=cond)(x, T)
    plain_u = Denoiser(net, sched, cond=uncond)(x, T)
    for w, want in ((1.0, plain_c), (0.0, plain_u)):
        got = ClassifierFreeGuidance(Denoiser(net, sched, cond=cond), uncond, w)(x, T)
        for a, b in zip(got, want, strict=True):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-12), w


def test_uncond_none_calls_the_network_without_a_condition():
    sched, x, cond, net = _setup()
    den = Denoiser(net, sched, cond=cond)
    assert torch.equal(den(x, T, cond=None)[1], 0.5 * x - 1.0)  # eps_hat: the net's own null
    assert torch.equal(den(x, T)[1], 0.5 * x + cond.view(-1, 1))


def test_clip_x0_bounds_x0_hat_and_recomputes_eps_hat():
    sched, x, cond, net = _setup()
    x = 5 * x
    inner = Denoiser(net, sched, "x0")  # x0_hat = 0.5 x - 1: up to about 6 in size
    x0_raw, _ = inner(x, T)
    x0_hat, eps_hat = ClipX0(inner, 0.7)(x, T)
    alpha, sigma = float(sched.alpha(T)), float(sched.sigma(T))
    assert x0_raw.abs().max() > 2 and x0_hat.abs().max() <= 0.7
    assert torch.equal(x0_hat, x0_raw.clamp(-0.7, 0.7))
    assert torch.allclose(eps_hat, (x - alpha * x0_hat) / sigma, rtol=1e-12, atol=1e-12)
    assert torch.allclose(alpha * x0_hat + sigma * eps_hat, x, rtol=1e-12, atol=1e-12)


def test_wrappers_forward_the_denoiser_and_compose():
    sched, x, cond, net = _setup()
    den = Denoiser(net, sched, "v", cond=cond)
    cfg = ClassifierFreeGuidance(den, None, 3.0)
    outer = ClipX0(cfg, 1.0)
    # what samplers read comes from the inner denoiser
    assert outer.schedule is sched and outer.prediction == "v" and outer.cond is cond
    assert outer.alpha_sigma(T) == den.alpha_sigma(T) and outer.sigma_hat(T) == den.sigma_hat(T)
    assert outer.inner is cfg and cfg.inner is den
    x0_hat, eps_hat = outer(x, T)
    x0_cfg, _ = ClassifierFreeGuidance(Denoiser(net, sched, "v", cond=cond), None, 3.0)(x, T)
    assert torch.equal(x0_hat, x0_cfg.clamp(-1, 1))
    # nfe: one evaluation a call for what the sampler calls (as `steps` counts); the network
    # itself runs twice under guidance
    net.calls = 0
    for _ in range(3):
        outer(x, T)
    assert (outer.nfe, cfg.nfe, den.nfe, net.calls) == (4, 4, 8, 6)


def test_steps_count_guided_evaluations_once():
    """Under guidance `steps` still counts denoiser evaluations; the network runs twice each."""
    sched, _, cond, net = _setup()
    seen = []

    class Count(DenoiserWrapper):
        def forward(self, x, t, **kw):
            seen.append(t)
            return self.inner(x, t, **kw)

    difflab.sample(net, sched, shape=(4, 3), sampler="ddim", steps=6, seed=0, cond=cond,
                   guidance=2.0, wrappers=[Count])
    assert len(seen) == 6 and net.calls == 12


def test_sample_wrappers_equal_the_keyword_form():
    sched, _, cond, net = _setup()
    uncond = torch.zeros(4, dtype=F64)
    kw = dict(shape=(4, 3), sampler="dpm++2m", steps=8, seed=3, cond=cond, dtype=F64)
    keywords = difflab.sample(net, sched, guidance=4.0, uncond=uncond, clip_x0=1.5, **kw)
    wrapped = difflab.sample(net, sched, wrappers=[
        partial(ClassifierFreeGuidance, uncond=uncond, scale=4.0),
        lambda den: ClipX0(den, 1.5)], **kw)
    assert torch.equal(keywords, wrapped)
    plain = difflab.sample(net, sched, **kw)
    assert not torch.allclose(plain, wrapped)


@pytest.mark.parametrize("name", samplers.available())
def test_an_identity_wrapper_changes_no_sampler(name, gaussian_x0):
    sched = get_schedule("linear")
    model = gaussian_x0(sched)
    kw = dict(shape=(8, 2), sampler=name, steps=6, seed=1, dtype=F64)
    if name == "heun":
        kw["s_churn"] = 5.0  # reads schedule.t_of_sigma_hat through the wrapper
    plain = difflab.sample(model, sched, **kw)
    assert torch.equal(plain, difflab.sample(model, sched, wrappers=[DenoiserWrapper], **kw))


def test_guidance_and_wrapper_errors():
    sched, x, cond, net = _setup()
    den = Denoiser(net, sched, cond=cond)
    for bad in (math.inf, -math.inf, math.nan, "strong", None):
        with pytest.raises(ValueError, match="the guidance scale must be a finite number"):
            ClassifierFreeGuidance(den, None, bad)
    with pytest.raises(ValueError, match=r"guidance scale must be a finite number, got inf"):
        difflab.sample(net, sched, shape=(4, 3), cond=cond, guidance=float("inf"))
    with pytest.raises(ValueError, match="guidance needs a condition"):
        ClassifierFreeGuidance(Denoiser(net, sched), None, 2.0)
    for bad in (0, -1.0, math.nan, "one"):
        with pytest.raises(ValueError, match="clip_x0 must be a positive number"):
            ClipX0(den, bad)
    with pytest.raises(ValueError, match="put the one wrapper in a list"):
        difflab.sample(net, sched, shape=(4, 3), wrappers=DenoiserWrapper)
    with pytest.raises(ValueError, match="must hold callables"):
        difflab.sample(net, sched, shape=(4, 3), wrappers=[1.0])
