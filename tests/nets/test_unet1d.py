"""difflab.nets.UNet1D (Diffusion Policy's temporal U-Net): shapes over horizons and observation
sizes, the parameter counts of the presets against the architecture's arithmetic, the one-line
errors, the step embedding and FiLM against their formulas, conditioning, gradients."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from difflab import nets
from difflab.nets.unet1d import ResBlock1D, UNet1D, UNet1DConfig

DOCS = Path(__file__).resolve().parents[2] / "docs" / "nets.md"


def small(**kw) -> UNet1D:
    """A narrow network for the behavioural tests (two levels unless told)."""
    torch.manual_seed(0)
    return UNet1D(UNet1DConfig(**{"down_dims": (16, 32), "horizon": 8, **kw}))


def inputs(config: UNet1DConfig, batch: int = 3, seed: int = 0):
    """(x, t, cond): a noisy chunk (B, Tp, A), times (B,), an observation window (B, To, obs)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.horizon, config.action_dim, generator=g)
    cond = torch.randn(batch, config.n_obs_steps, config.obs_dim, generator=g)
    return x, torch.rand(batch, generator=g), cond


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def reference_count(c: UNet1DConfig) -> int:
    """The parameter count of Diffusion Policy's ConditionalUnet1D for a config, by arithmetic
    over its layers (Conv1d weight c_in * c_out * k plus bias c_out; GroupNorm 2 c)."""
    k, d, cond = c.kernel_size, c.step_embed_dim, c.step_embed_dim + c.n_obs_steps * c.obs_dim

    def block(ci, co, kk):  # Conv1dBlock
        return ci * co * kk + co + 2 * co

    def res(ci, co):  # ConditionalResidualBlock1D
        film = (2 if c.cond_predict_scale else 1) * co
        skip = ci * co + co if ci != co else 0
        return block(ci, co, k) + block(co, co, k) + cond * film + film + skip

    dims = (c.action_dim, *c.down_dims)
    pairs = list(zip(dims[:-1], dims[1:], strict=True))
    total = d * 4 * d + 4 * d + 4 * d * d + d  # step MLP
    total += sum(res(ci, co) + res(co, co) for ci, co in pairs)  # down
    total += sum(co * co * 3 + co for _, co in pairs[:-1])  # Downsample1d
    total += 2 * res(dims[-1], dims[-1])  # mid
    total += sum(res(2 * co, ci) + res(ci, ci) + ci * ci * 4 + ci for ci, co in pairs[1:])  # up
    c0 = c.down_dims[0]
    return total + block(c0, c0, k) + c0 * c.action_dim + c.action_dim  # final


# ---------------------------------------------------------------------------------------------
# Shapes and sizes


@pytest.mark.parametrize("kw", [
    {"down_dims": (32, 64, 128)},  # the Push-T shape: Tp 16, 2 x 20 observations, 2 actions
    {"down_dims": (32, 64, 128), "horizon": 8, "obs_dim": 5},  # the 5-number Push-T state
    {"down_dims": (32, 64, 128), "horizon": 4, "obs_dim": 7, "n_obs_steps": 3, "action_dim": 3},
    {"down_dims": (16, 32), "horizon": 32, "obs_dim": 1, "n_obs_steps": 1, "action_dim": 7},
    {"down_dims": (16,), "horizon": 5, "obs_dim": 4},  # one level: any horizon
    {"down_dims": (16, 32, 32, 64), "horizon": 24, "cond_predict_scale": False},
])
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape(kw, batch):
    net = UNet1D(UNet1DConfig(**kw)).eval()
    x, t, cond = inputs(net.config, batch)
    with torch.no_grad():
        out = net(x, t, cond)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    assert n_params(net) == reference_count(net.config)


def test_pusht_preset_is_the_papers_network():
    net = nets.get_net("unet1d-pusht", action_dim=2, horizon=16, obs_dim=20, n_obs_steps=2)
    c = net.config
    assert (c.down_dims, c.kernel_size, c.n_groups, c.step_embed_dim, c.cond_predict_scale) == (
        (256, 512, 1024), 5, 8, 256, True)
    # ConditionalUnet1D(input_dim=2, global_cond_dim=40, diffusion_step_embed_dim=256,
    # down_dims=[256, 512, 1024], kernel_size=5, n_groups=8, cond_predict_scale=True)
    assert n_params(net) == reference_count(c) == 65_783_298
    assert n_params(nets.get_net("unet1d-pusht", obs_dim=5)) == 65_353_218  # the 5-number state
    # 2 blocks a level down (3), 2 in the middle, 2 a level up (2); 2 down- and 2 up-samplings
    assert sum(isinstance(m, ResBlock1D) for m in net.modules()) == 12
    assert sum(isinstance(m, torch.nn.ConvTranspose1d) for m in net.modules()) == 2
    assert sum(isinstance(m, torch.nn.Conv1d) and m.stride == (2,) for m in net.modules()) == 2
    x, t, cond = inputs(c, batch=1)
    with torch.no_grad():
        assert net.eval()(x, t, cond).shape == (1, 16, 2)


def test_small_preset_size_is_the_documented_one():
    net = nets.get_net("unet1d-pusht-small")
    row = next(line for line in DOCS.read_text().splitlines()
               if line.startswith("| `unet1d-pusht-small` |"))
    documented = int(row.split("|")[2].strip().replace(",", ""))
    assert n_params(net) == documented == reference_count(net.config)
    dims = ",".join(map(str, net.config.down_dims))
    assert dims in nets.describe("unet1d-pusht-small").replace(" ", "")
    assert 1_000_000 <= documented <= 10_000_000  # "a few million"


def test_config_round_trip():
    net = nets.get_net("unet1d-pusht-small", down_dims=[16, 32], horizon=8, obs_dim=5)
    assert net.config.down_dims == (16, 32)  # lists (from JSON) become tuples
    again = nets.get_net("unet1d-pusht-small", **dataclasses.asdict(net.config))
    assert again.config == net.config
    assert isinstance(nets.build(net.config), UNet1D)


# ---------------------------------------------------------------------------------------------
# One-line errors


def one_line_error(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(ValueError, match=match) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_bad_horizon_is_one_line():
    msg = one_line_error(r"horizon 10 cannot be halved 2 times", nets.get_net, "unet1d-pusht",
                         horizon=10)
    assert "multiple of 4" in msg and "4, 8, 12, 16" in msg
    one_line_error(r"horizon 12 .* multiple of 8", UNet1DConfig, down_dims=(8, 8, 8, 8),
                   horizon=12)
    net = small()  # built for 8, called with 5: the same message
    x, t, cond = inputs(net.config)
    one_line_error(r"horizon 5 cannot be halved 1 times", net, x[:, :5], t, cond)
    assert net(x[:, :4], t, cond).shape == (3, 4, 2)  # any multiple works at call time


def test_cond_errors_are_one_line():
    net = small()
    x, t, cond = inputs(net.config)
    one_line_error(r"always conditioned.*\(B, 2, 20\)", net, x, t)
    one_line_error(r"always conditioned", net, x, t, None)
    one_line_error(r"cond must be .* \(3, 2, 20\).* got \(3, 40\)", net, x, t,
                   cond.reshape(3, 40))
    one_line_error(r"cond must be .* got \(3, 1, 20\)", net, x, t, cond[:, :1])
    one_line_error(r"cond must be .* got \(2, 2, 20\)", net, x, t, cond[:2])
    one_line_error(r"x must be \(B, T, 2\) .* got shape \(3, 2, 8\)", net, x.transpose(1, 2),
                   t, cond)
    with pytest.raises(ValueError, match="shape"):
        net(x, torch.rand(2), cond)


@pytest.mark.parametrize("kw, match", [
    ({"action_dim": 0}, "action_dim must be >= 1"),
    ({"n_obs_steps": 0}, "n_obs_steps must be >= 1"),
    ({"obs_dim": -1}, "obs_dim must be >= 1"),
    ({"down_dims": ()}, "down_dims must be a non-empty"),
    ({"down_dims": (256, 500)}, r"divisible by n_groups=8"),
    ({"kernel_size": 4}, "kernel_size must be odd"),
    ({"step_embed_dim": 1}, "step_embed_dim must be >= 2"),
])
def test_bad_config_values_are_one_line(kw, match):
    one_line_error(match, nets.get_config, "unet1d-pusht", **kw)


def test_not_class_conditional():
    one_line_error(r"unknown field 'num_classes' for UNet1DConfig", nets.get_net,
                   "unet1d-pusht-small", num_classes=10)


# ---------------------------------------------------------------------------------------------
# Formulas and conditioning


def test_step_embedding_is_the_sinusoid_of_1000_t():
    # Diffusion Policy's SinusoidalPosEmb: w_k = exp(-log(10000) k / (half - 1)), [sin, cos]
    net = small(step_embed_dim=32)
    seen = []
    net.step_mlp.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    x, t, cond = inputs(net.config)
    net(x, t, cond)
    k = torch.arange(16, dtype=torch.float64)
    args = 1000 * t.double()[:, None] * torch.exp(-math.log(10000) * k / 15)
    want = torch.cat([args.sin(), args.cos()], dim=1)
    torch.testing.assert_close(seen[0].double(), want, atol=2e-4, rtol=0)


@pytest.mark.parametrize("predict_scale", [True, False])
def test_residual_block_is_film(predict_scale):
    torch.manual_seed(0)
    block = ResBlock1D(4, 8, cond_dim=6, kernel_size=3, n_groups=2, predict_scale=predict_scale)
    x, emb = torch.randn(2, 4, 5), torch.randn(2, 6)
    e = block.film(F.mish(emb))[:, :, None]  # (B, 2C or C, 1)
    h = block.block1(x)
    h = e[:, :8] * h + e[:, 8:] if predict_scale else h + e  # scale * h + bias, or h + bias
    want = block.block2(h) + block.skip(x)
    torch.testing.assert_close(block(x, F.mish(emb)), want)  # the caller applies the Mish
    assert block.film.out_features == (16 if predict_scale else 8)
    assert isinstance(ResBlock1D(8, 8, 6, 3, 2, True).skip, torch.nn.Identity)


def test_conditioning_matters_and_stays_per_sample():
    net = small().eval()
    x, t, cond = inputs(net.config)
    with torch.no_grad():
        ref = net(x, t, cond)
        other_cond = net(x, t, cond + 0.5)
        other_t = net(x, torch.rand(3), cond)
        other_step = net(x, t + 1e-3, cond)  # one DDPM step at T = 1000
        mixed = net(x, t, torch.cat([cond[:1] + 0.5, cond[1:]]))
        scalar = net(x, torch.tensor(0.3), cond)
        full = net(x, torch.full((3,), 0.3), cond)
    for out in (other_cond, other_t, other_step):
        assert (out - ref).abs().amax(dim=(1, 2)).min() > 1e-4
    # sample i depends on its own observations only
    torch.testing.assert_close(mixed[0], other_cond[0])
    torch.testing.assert_close(mixed[1:], ref[1:])
    torch.testing.assert_close(scalar, full)
    # every observation step and dimension reaches the output
    for i in range(2):
        for j in (0, 19):
            bumped = cond.clone()
            bumped[:, i, j] += 1.0
            with torch.no_grad():
                assert (net(x, t, bumped) - ref).abs().max() > 1e-4, (i, j)


@pytest.mark.parametrize("predict_scale", [True, False])
def test_gradients_reach_every_parameter(predict_scale):
    net = small(down_dims=(16, 32, 64), cond_predict_scale=predict_scale)
    x, t, cond = inputs(net.config)
    cond.requires_grad_(True)
    net(x, t, cond).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert cond.grad.abs().sum() > 0


def test_documented_latency_command_exists():
    text = DOCS.read_text()
    assert "benchmarks/unet1d_latency.py" in text
    assert re.search(r"\| `unet1d-pusht` \| 65,783,298 \|", text)


def test_out_dim_gives_more_output_channels():
    """out_dim: the binned baseline's logits (action_dim x bins a step); None changes nothing."""
    from difflab.nets import get_net

    kw = dict(action_dim=2, horizon=16, obs_dim=4, n_obs_steps=2)
    plain = get_net("unet1d-pusht-small", **kw)
    wide = get_net("unet1d-pusht-small", out_dim=512, **kw)
    x, t, c = torch.zeros(3, 16, 2), torch.ones(3), torch.randn(3, 2, 4)
    assert plain(x, t, c).shape == (3, 16, 2) and wide(x, t, c).shape == (3, 16, 512)
    n = sum(p.numel() for p in plain.parameters())
    w = sum(p.numel() for p in wide.parameters())
    assert w - n == (512 - 2) * (40 + 1)  # the last 1x1 conv from 40 channels, with bias
