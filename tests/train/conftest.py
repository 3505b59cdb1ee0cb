"""Fixtures of the trainer tests: stand-ins for a network and a dataset (a tiny time-conditioned
MLP, a toy 2-D point set, a toy image set), given to tests as the `toys` fixture.

They keep the trainer tests and the DDP worker (_ddp_worker.py, which imports this file as a
module, being a script run by torchrun) independent of difflab.nets and difflab.data.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from difflab.train import TrainConfig


class ToyNet(nn.Module):
    """net(x (B, 2), t (B,), cond (B,) or None) -> (B, 2); label num_classes is the null label.

    interrupt_at: send SIGINT to this process at that training forward call (1-based).
    nan_at: return NaN from that training forward call on.
    inf_grad_at: from that training forward call on, the output stays finite but its gradient
    is not (sqrt at 0).
    """

    def __init__(self, dim: int = 2, hidden: int = 32, dropout: float = 0.0,
                 num_classes: int | None = None, interrupt_at: int | None = None,
                 nan_at: int | None = None, inf_grad_at: int | None = None):
        super().__init__()
        self.inp = nn.Linear(dim + 1, hidden)
        self.mid = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)
        self.label = nn.Embedding(num_classes + 1, hidden) if num_classes else None
        self.num_classes = num_classes
        self.interrupt_at, self.nan_at, self.inf_grad_at = interrupt_at, nan_at, inf_grad_at
        if inf_grad_at is not None:
            self.zero = nn.Parameter(torch.zeros(()))
        self.calls = 0
        self.last_dtype = None

    def forward(self, x, t, cond=None):
        if self.training:
            self.calls += 1
            if self.calls == self.interrupt_at:
                signal.raise_signal(signal.SIGINT)
        h = self.inp(torch.cat([x, t[:, None].to(x.dtype)], 1))  # (B, hidden)
        if self.label is not None:
            if cond is None:
                cond = torch.full((x.shape[0],), self.num_classes, device=x.device)
            h = h + self.label(cond)
        h = self.drop(torch.relu(self.mid(torch.relu(h))))  # (B, hidden)
        self.last_dtype = h.dtype
        out = self.out(h)  # (B, dim)
        if self.training and self.nan_at is not None and self.calls >= self.nan_at:
            out = out * float("nan")
        if self.training and self.inf_grad_at is not None and self.calls >= self.inf_grad_at:
            out = out + torch.sqrt(self.zero)  # value 0, gradient inf
        return out


class ToyPoints(Dataset):
    """n points around (-1, 0) (label 0) and (+1, 0) (label 1)."""

    num_classes = 2
    shape = (2,)
    name = "toy-points"

    def __init__(self, n: int = 256, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.x = torch.randn(n, 2, generator=g) * 0.15
        self.x[:, 0] += 2.0 * self.y - 1.0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def make_net(seed: int = 0, **kw) -> ToyNet:
    """A ToyNet with seeded initial weights (train() does not re-initialise a given net)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return ToyNet(**kw)


def toy_config(run_dir: Path, **kw) -> TrainConfig:
    """A small, quiet config for the stand-ins."""
    base = dict(net="toy", dataset="toy-points", run_dir=str(run_dir), steps=12, batch_size=16,
                lr=3e-3, ema_decay=0.9, sample_every=0, checkpoint_every=0, log_every=4,
                progress=False, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def state_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class ImageToy(nn.Module):
    """net(x (B, 1, H, W), t (B,)) -> (B, 1, H, W): two convolutions, t as an extra channel."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x, t, cond=None):
        tt = t.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:]).to(x.dtype)  # (B, 1, H, W)
        return self.b(torch.relu(self.a(torch.cat([x, tt], 1))))  # (B, 1, H, W)


class ToyImages(Dataset):
    """n 1x8x8 images in [-1, 1]: a bright square at a random place."""

    num_classes = 0
    shape = (1, 8, 8)
    name = "toy-images"

    def __init__(self, n: int = 64, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = -torch.ones(n, 1, 8, 8)
        for i, (r, c) in enumerate(torch.randint(0, 6, (n, 2), generator=g).tolist()):
            self.x[i, 0, r:r + 3, c:c + 3] = 1.0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], torch.tensor(-1)


@pytest.fixture(scope="session")
def toys() -> SimpleNamespace:
    """The stand-ins: toys.make_net(...), toys.toy_config(run_dir, ...), toys.ToyPoints(), ..."""
    return SimpleNamespace(ToyNet=ToyNet, ToyPoints=ToyPoints, make_net=make_net,
                           toy_config=toy_config, state_tensors=state_tensors, ImageToy=ImageToy,
                           ToyImages=ToyImages)
