"""difflab.nets.layers against their formulas: DDPM's sinusoidal time embedding, the networks'
1000 t embedding, MAE's 2-D sin-cos positions, softmax attention."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from difflab.nets.layers import (
    ConditionEmbedding,
    SelfAttention,
    sincos_pos_embed_2d,
    sinusoidal_embedding,
)


def ddpm_timestep_embedding(timesteps: np.ndarray, dim: int) -> np.ndarray:
    """`get_timestep_embedding` of the DDPM reference code (diffusion_tf/nn.py), in numpy."""
    half = dim // 2
    emb = math.log(10000) / (half - 1)
    emb = np.exp(np.arange(half, dtype=np.float64) * -emb)
    emb = timesteps.astype(np.float64)[:, None] * emb[None, :]
    emb = np.concatenate([np.sin(emb), np.cos(emb)], axis=1)
    if dim % 2 == 1:
        emb = np.pad(emb, [[0, 0], [0, 1]])
    return emb


@pytest.mark.parametrize("dim", [4, 64, 128, 33])
def test_time_embedding_is_ddpm_formula(dim):
    steps = np.array([0, 1, 17, 250, 999, 1000])
    ref = ddpm_timestep_embedding(steps, dim)
    got = sinusoidal_embedding(torch.tensor(steps, dtype=torch.float32), dim)
    assert got.shape == (len(steps), dim) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), ref, atol=2e-4)  # float32 sin of arguments <= 1000
    # by hand, dim 4: frequencies 1 and 1e-4
    x = torch.tensor([1.0])
    np.testing.assert_allclose(sinusoidal_embedding(x, 4)[0].numpy(),
                               [math.sin(1), math.sin(1e-4), math.cos(1), math.cos(1e-4)],
                               rtol=1e-6)


def test_networks_embed_1000_t():
    # the network's embedding of time t is the DDPM embedding of step 1000 t, through the MLP
    emb = ConditionEmbedding(freq_dim=32, dim=16)
    t = torch.tensor([0.0, 0.001, 0.25, 1.0])
    ref = torch.tensor(ddpm_timestep_embedding(np.array([0, 1, 250, 1000]), 32)).float()
    with torch.no_grad():
        torch.testing.assert_close(emb(t), emb.mlp(ref), atol=1e-5, rtol=1e-5)


def test_2d_sincos_positions_are_mae():
    """MAE's get_2d_sincos_pos_embed (used by DiT), in numpy."""

    def one_d(dim, pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    dim, gh, gw = 16, 3, 5
    grid = np.stack(np.meshgrid(np.arange(gw, dtype=np.float64), np.arange(gh, dtype=np.float64)))
    ref = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)
    np.testing.assert_allclose(sincos_pos_embed_2d(dim, gh, gw).numpy(), ref, atol=1e-6)


def test_self_attention_is_softmax_attention():
    torch.manual_seed(0)
    attn = SelfAttention(12, heads=3)
    x = torch.randn(2, 5, 12)
    q, k, v = attn.qkv(x).chunk(3, dim=-1)
    split = lambda a: a.reshape(2, 5, 3, 4).transpose(1, 2)  # noqa: E731  (B, h, N, d)
    w = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(4), dim=-1)
    ref = attn.proj((w @ split(v)).transpose(1, 2).reshape(2, 5, 12))
    torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)
