"""The parts a config names, built from their registries: dataset, network, schedule."""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.utils.data import Dataset

from ..data import get_dataset
from ..errors import one_line
from ..nets import get_net
from ..schedules import Schedule, get_schedule
from .config import TrainConfig, TrainError


def build_dataset(cfg: TrainConfig) -> Dataset:
    """The dataset named by the config (`difflab.data.get_dataset`)."""
    try:
        return get_dataset(cfg.dataset, **cfg.dataset_kwargs)
    except TrainError:
        raise
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise TrainError(f"cannot load dataset {cfg.dataset!r}: {one_line(e)}") from e


def build_net(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """The network preset `name` with overrides (`difflab.nets.get_net`)."""
    try:
        return get_net(name, **kwargs)
    except (ValueError, TypeError, KeyError) as e:
        raise TrainError(f"cannot build network {name!r} with {kwargs}: {one_line(e)}") from e


def build_schedule(cfg: TrainConfig) -> Schedule:
    """The noise schedule named by the config (`difflab.get_schedule`)."""
    try:
        return get_schedule(cfg.schedule, **cfg.schedule_kwargs)
    except (ValueError, TypeError) as e:
        raise TrainError(f"schedule {cfg.schedule!r}: {one_line(e)}") from e


__all__ = ["build_dataset", "build_net", "build_schedule"]
