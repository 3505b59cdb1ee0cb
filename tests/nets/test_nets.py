"""difflab.nets: shapes, parameter counts, conditioning, adaLN-Zero, gradients, the registry,
bf16 autocast and channels-last (the layers' formulas: test_layers.py; the 1-D U-Net:
test_unet1d.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from difflab import nets

# Small configs of every family, for the behavioural tests.
SMALL = {
    "unet": lambda **kw: nets.get_net("unet-digits", channels=32, **kw),
    "dit": lambda **kw: nets.DiT(nets.DiTConfig(in_channels=3, input_size=8, patch_size=2,
                                                hidden_size=64, depth=2, heads=4, **kw)),
    "mlp": lambda **kw: nets.get_net("mlp-2d", **kw),
}
SHAPES = {"unet": (4, 1, 8, 8), "dit": (4, 3, 8, 8), "mlp": (4, 2)}


def small_call(kind: str):
    """(net, (x, t, cond)) for the tests every family takes: the class-conditional families with
    labels (the null label and "unlabelled" among them), the 1-D U-Net (always conditioned on an
    observation window, no labels) with a window."""
    if kind == "unet1d":
        torch.manual_seed(0)
        net = nets.get_net("unet1d-pusht-small", down_dims=(16, 32), horizon=8)
        c = net.config
        x, t = inputs((4, c.horizon, c.action_dim))
        return net, (x, t, torch.randn(4, c.n_obs_steps, c.obs_dim))
    x, t = inputs(SHAPES[kind])
    return SMALL[kind](num_classes=10), (x, t, torch.tensor([1, 10, -1, 3]))


def randomize_zeros_(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every all-zero parameter (zero-initialised output layers, biases) random values, so
    the network is no longer the constant zero it is at initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if not p.any():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return net


def n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def inputs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.rand(shape[0], generator=g)


# ---------------------------------------------------------------------------------------------
# Presets: shapes and sizes


@pytest.mark.parametrize("name, shape", [
    ("mlp-2d", (5, 2)),
    ("unet-digits", (3, 1, 8, 8)),
    ("unet-mnist", (2, 1, 28, 28)),
    ("unet1d-pusht-small", (3, 16, 2)),  # (B, Tp, action_dim), with a (B, To, obs_dim) window
])
def test_preset_output_shape(name, shape):
    net = randomize_zeros_(nets.get_net(name)).eval()
    x, t = inputs(shape)
    c = net.config
    cond = (torch.randn(shape[0], c.n_obs_steps, c.obs_dim)
            if isinstance(c, nets.UNet1DConfig) else None)
    with torch.no_grad():
        out = net(x, t, cond)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all() and out.abs().sum() > 0


@pytest.fixture(scope="module")
def ddpm_cifar10():
    torch.manual_seed(0)
    return nets.get_net("ddpm-cifar10")


def test_ddpm_cifar10_matches_the_paper(ddpm_cifar10):
    # The released google/ddpm-cifar10-32 checkpoint has exactly this many parameters.
    assert n_params(ddpm_cifar10) == 35_746_307
    c = ddpm_cifar10.config
    assert (c.channels, c.channel_mult, c.num_res_blocks, c.attn_resolutions, c.dropout) == (
        128, (1, 2, 2, 2), 2, (16,), 0.1)
    # attention: at 16x16 on the way down (2) and up (3), and in the middle
    assert sum(isinstance(m, nets.unet.AttnBlock) for m in ddpm_cifar10.modules()) == 6
    # one time-embedding Linear per residual block: 4 x 2 down + 2 middle + 4 x 3 up
    assert sum(isinstance(m, nets.unet.ResBlock) for m in ddpm_cifar10.modules()) == 22
    x, t = inputs((1, 3, 32, 32))
    with torch.no_grad():
        assert ddpm_cifar10.eval()(x, t).shape == x.shape


def test_dit_s2_size_and_zero_output():
    torch.manual_seed(0)
    net = nets.get_net("dit-s2").eval()
    c = net.config
    assert (c.hidden_size, c.depth, c.heads, c.patch_size, c.in_channels, c.input_size) == (
        384, 12, 6, 2, 4, 32)
    assert n_params(net) == 32_474_512
    x, t = inputs((1, 4, 32, 32))
    with torch.no_grad():
        out = net(x, t)
    assert out.shape == x.shape
    assert torch.equal(out, torch.zeros_like(out))  # adaLN-Zero


def test_preset_sizes_stay_put():
    expected = {"mlp-2d": 183_298, "unet-digits": 1_001_729, "unet-mnist": 6_469_889}
    for name, n in expected.items():
        assert n_params(nets.get_net(name)) == n, name


# ---------------------------------------------------------------------------------------------
# Behaviour


def test_zero_output_at_init():
    # DDPM's zero-initialised output layers, DiT's adaLN-Zero, the MLP's zero output layer
    for kind, make in SMALL.items():
        x, t = inputs(SHAPES[kind])
        out = make()(x, t)
        assert torch.equal(out, torch.zeros_like(out)), kind


@pytest.mark.parametrize("kind", list(SMALL))
def test_class_conditioning_and_null_label(kind):
    torch.manual_seed(0)
    net = randomize_zeros_(SMALL[kind](num_classes=10)).eval()
    assert net.config.num_classes == 10
    x, t = inputs(SHAPES[kind])
    with torch.no_grad():
        a = net(x, t, torch.full((4,), 3))
        b = net(x, t, torch.full((4,), 5))
        null = net(x, t, torch.full((4,), 10))  # index num_classes: the reserved null label
        none = net(x, t)
        unlabelled = net(x, t, torch.full((4,), -1))  # difflab.data's NO_LABEL
    assert not torch.allclose(a, b)
    assert not torch.allclose(a, null)
    torch.testing.assert_close(null, none, atol=0, rtol=0)
    torch.testing.assert_close(unlabelled, none, atol=0, rtol=0)
    # per-sample labels: sample i depends on its own label only
    with torch.no_grad():
        mixed = net(x, t, torch.tensor([3, 5, 10, 3]))
    torch.testing.assert_close(mixed[[0, 3]], a[[0, 3]])
    torch.testing.assert_close(mixed[1], b[1])
    torch.testing.assert_close(mixed[2], none[2])


def test_unconditional_net_refuses_labels():
    x, t = inputs(SHAPES["mlp"])
    with pytest.raises(ValueError, match="unconditional"):
        SMALL["mlp"]()(x, t, torch.zeros(4, dtype=torch.long))


def test_time_argument_checks():
    net = randomize_zeros_(SMALL["mlp"]())
    x, t = inputs(SHAPES["mlp"])
    torch.testing.assert_close(net(x, torch.tensor(0.3)), net(x, torch.full((4,), 0.3)))
    with pytest.raises(ValueError, match="shape"):
        net(x, torch.rand(3))
    assert not torch.allclose(net(x, torch.full((4,), 0.1)), net(x, torch.full((4,), 0.9)))


@pytest.mark.parametrize("kind", list(SMALL))
def test_gradients_reach_every_parameter(kind):
    torch.manual_seed(0)
    net = randomize_zeros_(SMALL[kind](num_classes=10))
    x, t = inputs(SHAPES[kind])
    net(x, t, torch.tensor([0, 1, 2, 10])).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradients_flow_at_init():
    # at initialisation the output is zero, but the zero layers themselves get gradient
    net = SMALL["unet"]()
    x, t = inputs(SHAPES["unet"])
    (net(x, t) - x).square().mean().backward()
    assert net.conv_out.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", [*SMALL, "unet1d"])
def test_bf16_autocast(kind):
    torch.manual_seed(0)
    if kind == "unet1d":
        net, (x, t, cond) = small_call(kind)
    else:
        net, cond = randomize_zeros_(SMALL[kind]()), None
        x, t = inputs(SHAPES[kind])
    ref = net(x, t, cond)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, t, cond)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.isfinite(out).all()
    assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 1e-3
    out.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_unet_channels_last():
    net = randomize_zeros_(SMALL["unet"](num_classes=10)).eval()
    x, t = inputs((4, 1, 8, 8))
    cond = torch.tensor([1, 2, 3, 10])
    with torch.no_grad():
        ref = net(x, t, cond)
        net_cl = net.to(memory_format=torch.channels_last)
        out = net_cl(x.to(memory_format=torch.channels_last), t, cond)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", [*SMALL, "unet1d"])
def test_dynamo_traces_each_network_as_one_graph(kind):
    import torch._dynamo as dynamo

    net, args = small_call(kind)
    dynamo.reset()
    report = dynamo.explain(net)(*args)
    dynamo.reset()
    assert report.graph_count == 1 and report.graph_break_count == 0, report.break_reasons


def test_narrow_embeddings_and_label_range():
    from difflab.nets.layers import sinusoidal_embedding

    for dim in (2, 3, 4):  # dim 2 and 3 used to divide 0 by 0
        assert torch.isfinite(sinusoidal_embedding(torch.rand(5), dim)).all()
    mlp = nets.get_net("mlp-2d", hidden=2)
    assert torch.isfinite(mlp(torch.randn(4, 2), torch.rand(4))).all()
    net = SMALL["unet"](num_classes=10)
    x, t = inputs((2, 1, 8, 8))
    net(x, t, torch.tensor([10, -1]))  # the null label and "unlabelled" are fine
    with pytest.raises(ValueError, match="class label 11 is out of range"):
        net(x, t, torch.tensor([3, 11]))


def test_upsample_is_nearest_neighbour():
    up = nets.unet.Upsample(3)
    x = torch.randn(2, 3, 5, 7)
    for size in (None, (10, 14), (9, 13)):
        want = F.interpolate(x, scale_factor=2.0 if size is None else None, size=size,
                             mode="nearest")
        got = up(x, size)
        assert got.shape == want.shape
        torch.testing.assert_close(got, up.conv(want), rtol=0, atol=0)


def test_unet_odd_sizes_and_scale_shift():
    # 28 -> 14 -> 7 -> 4 and back to exactly 28; attention at 7; FiLM-style scale-shift
    net = nets.UNet(nets.UNetConfig(in_channels=1, image_size=28, channels=32,
                                    channel_mult=(1, 1, 2, 2), num_res_blocks=1,
                                    attn_resolutions=(7,), scale_shift=True, heads=2))
    randomize_zeros_(net).eval()
    x, t = inputs((2, 1, 28, 28))
    with torch.no_grad():
        assert net(x, t).shape == x.shape
        assert net(x[..., :22, :18], t).shape == (2, 1, 22, 18)
    assert sum(isinstance(m, nets.unet.AttnBlock) for m in net.modules()) == 1 + 1 + 2
    assert net.down[0].blocks[0].emb.out_features == 2 * 32


def test_dit_other_sizes():
    net = randomize_zeros_(SMALL["dit"]()).eval()
    with torch.no_grad():
        x, t = inputs((2, 3, 12, 4))
        assert net(x, t).shape == x.shape
        with pytest.raises(ValueError, match="patch_size"):
            net(torch.randn(2, 3, 7, 8), t)


def test_mlp_flattens_trailing_dims():
    net = randomize_zeros_(nets.get_net("mlp-2d", dim=12))
    x, t = inputs((3, 4, 3))
    out = net(x, t)
    assert out.shape == x.shape
    torch.testing.assert_close(out.reshape(3, 12), net(x.reshape(3, 12), t))
    with pytest.raises(ValueError, match="12"):
        net(torch.randn(3, 5), t)


def test_dropout_only_in_training():
    net = randomize_zeros_(nets.get_net("unet-digits", channels=32, dropout=0.5))
    x, t = inputs(SHAPES["unet"])
    net.eval()
    torch.testing.assert_close(net(x, t), net(x, t))
    net.train()
    assert not torch.allclose(net(x, t), net(x, t))


# ---------------------------------------------------------------------------------------------
# Registry


def test_registry_lists_and_describes():
    assert nets.available() == ["mlp-2d", "unet-digits", "unet-mnist", "ddpm-cifar10", "dit-s2",
                                "unet1d-pusht", "unet1d-pusht-small"]
    for name in nets.available():
        d = nets.describe(name)
        assert isinstance(d, str) and d and "\n" not in d


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown network 'unet-tiny'.*unet-digits.*dit-s2"):
        nets.get_net("unet-tiny")
    with pytest.raises(ValueError, match="unknown network"):
        nets.describe("nope")
    with pytest.raises(ValueError, match="'chanels'.*channels.*channel_mult"):
        nets.get_net("unet-digits", chanels=32)
    with pytest.raises(ValueError, match="groups"):
        nets.get_net("unet-digits", channels=48)  # 48 channels in 32 groups
    with pytest.raises(ValueError, match="patch_size"):
        nets.get_net("dit-s2", input_size=31)
    with pytest.raises(TypeError):
        nets.build(object())


def test_config_round_trip():
    net = nets.get_net("unet-mnist", num_classes=10, channel_mult=[1, 2, 2])
    assert net.config.channel_mult == (1, 2, 2)  # lists (from JSON) become tuples
    again = nets.get_net("unet-mnist", **dataclasses.asdict(net.config))
    assert again.config == net.config
    assert isinstance(nets.build(net.config), nets.UNet)


@pytest.mark.parametrize("config", [nets.UNetConfig, nets.DiTConfig, nets.MLPConfig])
def test_num_classes_is_one_shared_keyword_field(config):
    assert config(num_classes=3).num_classes == 3 and config().num_classes is None
    with pytest.raises(ValueError, match="num_classes must be None or >= 1, got 0"):
        config(num_classes=0)
    first = dataclasses.fields(config)[1].name  # the first positional field keeps its place
    assert getattr(config(7), first) == 7 and config(7).num_classes is None


def test_get_net_takes_num_classes_for_every_preset():
    # every preset but the 1-D U-Net, which is conditioned on observations and has no labels
    class_conditional = [n for n in nets.available() if not n.startswith("unet1d")]
    assert len(class_conditional) == 5
    for name in nets.available():
        if name not in class_conditional:
            with pytest.raises(ValueError, match="unknown field 'num_classes' for UNet1DConfig"):
                nets.get_config(name, num_classes=5)
            continue
        assert nets.get_config(name, num_classes=5).num_classes == 5
        with pytest.raises(ValueError, match="num_classes must be None or >= 1"):
            nets.get_config(name, num_classes=-1)
