"""The baselines of the diffusion policy, with the same network, data and chunking: the chunk is
one deterministic output of net(0, 1, O).

- mean squared error (task `policy-mse`): it averages the modes of multimodal demonstrations
  (Chi et al. 2023, section 2);
- binned tokens (task `policy-binned`): each action dimension of each step is a categorical
  over BINS uniform bins of the normalised range [-1, 1] (as RT-1 and Octo tokenise actions);
  the policy takes the most likely bin's centre, so its resolution is one bin.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .diffusion import DiffusionPolicy


def regression_inputs(cond: Tensor, horizon: int, action_dim: int) -> tuple[Tensor, Tensor]:
    """The constant (x, t) the regression network sees: x = 0 (B, Tp, A) and t = 1 (B,)."""
    B = cond.shape[0]
    return (cond.new_zeros((B, horizon, action_dim)), cond.new_ones((B,)))


class RegressionPolicy(DiffusionPolicy):
    """A DiffusionPolicy whose chunk is the network's regression output (no sampling)."""

    @torch.no_grad()
    def sample_chunk(self, cond: Tensor, seed: int) -> Tensor:
        x, t = regression_inputs(cond, self.Tp, self.action_dim)
        out = self.model(x, t, cond)  # (B, Tp, A), normalised
        return out.clamp(-self.clip_x0, self.clip_x0) if self.clip_x0 else out


BINS = 256


def bin_index(a: Tensor, bins: int = BINS) -> Tensor:
    """The bin of each normalised action value (-1 <= a <= 1): bin k holds
    [-1 + 2k / bins, -1 + 2(k + 1) / bins)."""
    return ((a.clamp(-1, 1) + 1) * (bins / 2)).floor().long().clamp(max=bins - 1)


def bin_centre(k: Tensor, bins: int = BINS) -> Tensor:
    """The centre of bin k in the normalised range."""
    return -1 + (k.float() + 0.5) * (2 / bins)


class BinnedPolicy(DiffusionPolicy):
    """A DiffusionPolicy whose chunk is the centre of the most likely bin of every action
    dimension of every step."""

    @torch.no_grad()
    def sample_chunk(self, cond: Tensor, seed: int) -> Tensor:
        x, t = regression_inputs(cond, self.Tp, self.action_dim)
        logits = self.model(x, t, cond)  # (B, Tp, A * BINS)
        logits = logits.reshape(*x.shape, BINS)  # (B, Tp, A, BINS)
        return bin_centre(logits.argmax(-1))  # (B, Tp, A), normalised


__all__ = ["RegressionPolicy", "BinnedPolicy", "regression_inputs", "bin_index", "bin_centre",
           "BINS"]
