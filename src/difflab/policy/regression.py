"""The mean-squared-error baseline: the same network and chunking as the diffusion policy, but
the chunk is one deterministic prediction net(0, 1, O), fitted by regression (the `policy-mse`
task). It averages the modes of multimodal demonstrations (Chi et al. 2023, section 2)."""

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


__all__ = ["RegressionPolicy", "regression_inputs"]
