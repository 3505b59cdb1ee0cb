"""EMA weights with warm-up or a power schedule, built on torch.optim.swa_utils.AveragedModel."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel


def ema_decay_at(t: int, decay: float, warmup: bool = True, power: float | None = None
                 ) -> float:
    """The decay of EMA update t (t >= 1 counts the updates before it).

    power: min(decay, 1 - t^-power), the power schedule of Karras et al. / diffusers' EMAModel
    with inv_gamma 1 as Chi et al. 2023 use it (power 0.75; update 1 copies again). Else with
    warm-up: min(decay, (1 + t) / (10 + t)) (diffusers' EMAModel, the DDPM/ADM code bases);
    else decay."""
    if power is not None:
        return min(decay, 1.0 - float(t) ** -power)
    return min(decay, (1 + t) / (10 + t)) if warmup else decay


def make_ema(model: nn.Module, decay: float, warmup: bool = True, power: float | None = None
             ) -> AveragedModel:
    """An AveragedModel whose update t is ema <- decay_t ema + (1 - decay_t) model.

    Its first update copies the model (AveragedModel's rule); buffers are averaged too (integer
    buffers are copied). `n_averaged` counts the updates and is saved with the checkpoint.
    """

    @torch.no_grad()
    def multi_avg_fn(ema_params: list[Tensor], model_params: list[Tensor], n_averaged) -> None:
        d = ema_decay_at(int(n_averaged), decay, warmup, power)
        if ema_params[0].is_floating_point():
            torch._foreach_lerp_(ema_params, model_params, 1.0 - d)  # ema += (1 - d)(p - ema)
        else:
            torch._foreach_copy_(ema_params, model_params)

    ema = AveragedModel(model, multi_avg_fn=multi_avg_fn, use_buffers=True)
    ema.requires_grad_(False)
    ema.eval()
    return ema


__all__ = ["make_ema", "ema_decay_at"]
