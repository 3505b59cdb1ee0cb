"""Dataset base classes: every item is (x, y) with x float32 and y an int64 scalar (-1: no label).

Images are (C, H, W) in [-1, 1]; low-dimensional data is (D,). Each dataset carries `name`,
`shape` (of one x) and `num_classes` (0 when unlabelled), which is all a trainer needs to build a
network for it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["ImageArray", "LabeledDataset", "TensorSet", "default_root", "NO_LABEL"]

NO_LABEL = -1  # the label of every item of an unlabelled dataset


def default_root(name: str) -> Path:
    """Where a dataset's files live by default: $DIFFLAB_DATA/<name>, else ~/.cache/difflab/data."""
    base = os.environ.get("DIFFLAB_DATA") or Path.home() / ".cache" / "difflab" / "data"
    return Path(base).expanduser() / name


def _check_index(i: int, n: int) -> int:
    """A python index in [-n, n) as one in [0, n); IndexError otherwise (ends iteration)."""
    i = int(i)
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for a dataset of {n} items")
    return i + n if i < 0 else i


class LabeledDataset(Dataset):
    """Base class: items (x float32, y int64 scalar); attributes `name`, `shape`, `num_classes`."""

    name: str = ""
    shape: tuple[int, ...] = ()
    num_classes: int = 0

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def tensors(self) -> tuple[Tensor, Tensor]:
        """All items stacked: x (N, *shape) float32 and y (N,) int64 (in memory at once)."""
        items = [self[i] for i in range(len(self))]
        if not items:
            return torch.zeros(0, *self.shape), torch.zeros(0, dtype=torch.long)
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, n={len(self)}, shape={self.shape}, "
                f"num_classes={self.num_classes})")


class TensorSet(LabeledDataset):
    """In-memory float data: x (N, *shape) float32 and labels y (N,) int64 (None: all -1)."""

    def __init__(self, x: Tensor, y: Tensor | None, *, name: str, num_classes: int = 0):
        self.x = torch.as_tensor(x).to(torch.float32).contiguous()  # (N, *shape)
        n = self.x.shape[0]
        self.y = _labels(y, n, num_classes)  # (N,)
        self.name, self.shape, self.num_classes = name, tuple(self.x.shape[1:]), num_classes

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        i = _check_index(i, len(self))
        return self.x[i], self.y[i]

    def tensors(self) -> tuple[Tensor, Tensor]:
        return self.x, self.y


class ImageArray(LabeledDataset):
    """In-memory integer images (N, C, H, W) with values 0..max_value, served in [-1, 1].

    x = pixel * 2 / max_value - 1, so 0 -> -1 and max_value -> 1 exactly. With `hflip=True` the
    dataset has 2N items and item N + i is item i mirrored left-right (same label): the flip is a
    fixed function of the index, so shuffling the indices flips at random while every run, worker
    and rank that sees the same index sees the same image (DDPM's random flip, made reproducible).
    """

    def __init__(self, images: Tensor, labels: Tensor | None, *, name: str, num_classes: int,
                 max_value: int = 255, hflip: bool = False):
        images = torch.as_tensor(images)
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        self.images = images.contiguous()  # (N, C, H, W) integer
        self.labels = _labels(labels, images.shape[0], num_classes)  # (N,)
        self.max_value, self.hflip = max_value, bool(hflip)
        self.name, self.shape, self.num_classes = name, tuple(images.shape[1:]), num_classes

    def __len__(self) -> int:
        return self.images.shape[0] * (2 if self.hflip else 1)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        i = _check_index(i, len(self))
        n = self.images.shape[0]
        img = self.images[i % n]  # (C, H, W)
        if i >= n:
            img = img.flip(-1)
        return img.to(torch.float32) * (2.0 / self.max_value) - 1.0, self.labels[i % n]

    def tensors(self) -> tuple[Tensor, Tensor]:
        x = self.images.to(torch.float32) * (2.0 / self.max_value) - 1.0  # (N, C, H, W)
        if self.hflip:
            return torch.cat([x, x.flip(-1)]), torch.cat([self.labels, self.labels])
        return x, self.labels


def _labels(y, n: int, num_classes: int) -> Tensor:
    """Labels as an (n,) int64 tensor, checked to lie in [0, num_classes) (or all -1 if None)."""
    if y is None:
        return torch.full((n,), NO_LABEL, dtype=torch.long)
    y = torch.as_tensor(y).to(torch.long).reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"got {y.shape[0]} labels for {n} items")
    if n and num_classes and not bool(((y >= 0) & (y < num_classes)).all()):
        lo, hi = int(y.min()), int(y.max())
        raise ValueError(f"labels must lie in [0, {num_classes}), got {lo}..{hi}")
    return y.contiguous()
