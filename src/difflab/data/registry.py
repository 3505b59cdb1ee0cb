"""The registry of named datasets: get_dataset(name, root=None, **kw) and available_datasets()."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

from difflab.data.base import LabeledDataset

__all__ = ["DatasetInfo", "available_datasets", "dataset_info", "get_dataset", "register"]


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: its `name`, its `builder(root, **kw)` and a one-line `description`."""

    name: str
    builder: Callable[..., LabeledDataset]
    description: str


_REGISTRY: dict[str, DatasetInfo] = {}


def _key(name: str) -> str:
    """Lookup key: case-insensitive, `-` and `_` alike (`fashion-mnist` finds `fashion_mnist`)."""
    return name.strip().lower().replace("-", "_")


def register(name: str, description: str):
    """Decorator: register `builder(root, **kw) -> LabeledDataset` under `name`."""

    def deco(builder: Callable[..., LabeledDataset]) -> Callable[..., LabeledDataset]:
        if _key(name) in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[_key(name)] = DatasetInfo(name, builder, description)
        return builder

    return deco


def available_datasets() -> list[str]:
    """Names accepted by get_dataset, in registration order (image sets, then toy sets)."""
    return [info.name for info in _REGISTRY.values()]


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of `name`; ValueError naming the valid ones if there is none."""
    info = _REGISTRY.get(_key(name)) if isinstance(name, str) else None
    if info is None:
        valid = ", ".join(available_datasets())
        raise ValueError(f"unknown dataset {name!r}; choose one of {valid}")
    return info


def get_dataset(name: str, root: str | None = None, **kw) -> LabeledDataset:
    """The dataset `name` (see available_datasets()); `root` is where its files are, if any."""
    info = dataset_info(name)
    try:
        ds = info.builder(root, **kw)
    except TypeError as e:  # an option the dataset does not have
        bad = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if bad is None:
            raise
        params = [p for p in inspect.signature(info.builder).parameters if p != "root"]
        raise ValueError(f"dataset {info.name!r} has no option {bad.group(1)!r}; its options: "
                         f"{', '.join(params) or 'none'}") from None
    ds.name = info.name
    return ds
