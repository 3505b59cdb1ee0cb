"""Tasks: what a batch is and how the network is trained on it (DESIGN.md section 4).

The loop (loop.py) knows only this interface. A task is built from the config, the dataset and
the schedule, and says
- `sample_shape`: the shape of one sample x0, and `net_kwargs()`: what the network needs to
  fit the data (e.g. the number of classes);
- `draws(g, n)`: the random numbers of n samples of a step (times, noise, condition drops),
  drawn from the step's seeded generator for the whole global batch, each tensor (n, ...), so
  that the loop can slice them per process and micro-batch;
- `loss(net, batch, draws, device)`: the loss of one micro-batch of the loader;
- `check(net, batch, device)`: one forward pass that fails, in one line, if the network does
  not fit;
- `preview(model, path, ...)`: a picture of samples drawn with `model`;
- `save(run)`: what the run must keep beside the weights (the policy task: its normaliser).
A new kind of data is a new Task subclass registered with `@register_task("name")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..errors import one_line
from ..losses import diffusion_loss, sample_t
from ..pictures import class_grid, save_samples
from ..predictions import check_net_output
from ..registry import Registry
from ..sampling import sample
from ..schedules import Schedule
from .config import TrainConfig, TrainError

TASKS: Registry[type[Task]] = Registry("task", TrainError)
register_task = TASKS.register  # class decorator: @register_task("name") makes cfg.task = name
available_tasks = TASKS.names


def build_task(cfg: TrainConfig, dataset: Dataset, schedule: Schedule) -> Task:
    """The task the config names, for this dataset and schedule."""
    return TASKS.get(cfg.task)(cfg, dataset, schedule)


def first_batch(dataset: Dataset, n: int = 2):
    """n items of the dataset collated as the loader does (for checks)."""
    return next(iter(DataLoader(dataset, batch_size=n)))


class Task:
    """The interface the loop trains through; see the module docstring."""

    name: ClassVar[str] = ""
    sample_shape: tuple[int, ...]

    def __init__(self, cfg: TrainConfig, dataset: Dataset, schedule: Schedule):
        if len(dataset) == 0:
            raise TrainError(f"dataset {cfg.dataset!r} is empty")
        self.cfg, self.dataset, self.schedule = cfg, dataset, schedule

    def net_kwargs(self) -> dict[str, Any]:
        """Network preset overrides the data requires (merged under cfg.net_kwargs)."""
        return {}

    def resolved(self) -> dict[str, Any]:
        """What config.json records about the data, beside the config."""
        return {"data_shape": list(self.sample_shape), "dataset_size": len(self.dataset)}

    def save(self, run) -> None:
        """Write what a later user of the run needs beside the weights (a normaliser) into
        the run directory `run` (a RunDir); main process, before training."""

    def draws(self, g: torch.Generator, n: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def loss(self, net, batch, draws: dict[str, Tensor], device: torch.device) -> Tensor:
        raise NotImplementedError

    def check(self, net: nn.Module, batch, device: torch.device) -> None:
        raise NotImplementedError

    def preview(self, model, path: Path, *, title: str = "") -> Path | None:
        """Write a picture of cfg.num_sample samples of `model` to `path` (creating its
        folder); None: this task draws none."""
        return None


def module_device(net) -> torch.device:
    """The device of a module's first parameter (the CPU for other callables)."""
    p = next(iter(net.parameters()), None) if isinstance(net, nn.Module) else None
    return p.device if p is not None else torch.device("cpu")


def split_item(batch) -> tuple[Tensor, Tensor | None]:
    """(x, y) of a dataset item or batch: (x, y), (x,) or x."""
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)):
        return (batch[0], None) if len(batch) == 1 else (batch[0], batch[1])
    raise TrainError(f"dataset items must be (x, y) or x, got {type(batch).__name__}")


@register_task("generate")
class Generate(Task):
    """Learn the data items x (images or points), optionally conditioned on class labels y
    (class_cond), a label replaced by the null label `num_classes` with probability cond_drop
    (classifier-free guidance, Ho & Salimans 2022). Items are (x, y), (x,) or x."""

    def __init__(self, cfg: TrainConfig, dataset: Dataset, schedule: Schedule):
        super().__init__(cfg, dataset, schedule)
        if cfg.task_kwargs:
            raise TrainError(f"task generate takes no options, got task_kwargs "
                             f"{cfg.task_kwargs}; use class_cond and cond_drop")
        shape = getattr(dataset, "shape", None)
        self.sample_shape = (tuple(int(s) for s in shape) if shape
                             else tuple(split_item(dataset[0])[0].shape))
        self.num_classes = getattr(dataset, "num_classes", None) or None
        if cfg.class_cond and not self.num_classes:
            raise TrainError(f"class_cond needs a labelled dataset; {cfg.dataset!r} has no "
                             f"num_classes")
        try:  # a time sampling the schedule cannot do fails here
            sample_t(1, schedule, cfg.time_sampling, generator=torch.Generator())
        except ValueError as e:
            raise TrainError(one_line(e)) from None

    def net_kwargs(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes} if self.cfg.class_cond else {}

    def resolved(self) -> dict[str, Any]:
        return {**super().resolved(), "num_classes": self.num_classes}

    def draws(self, g: torch.Generator, n: int) -> dict[str, Tensor]:
        out = {"t": sample_t(n, self.schedule, self.cfg.time_sampling, generator=g),  # (n,)
               "eps": torch.randn((n, *self.sample_shape), generator=g)}  # (n, *shape)
        if self.cfg.class_cond:
            out["drop"] = torch.rand(n, generator=g) < self.cfg.cond_drop  # (n,)
        return out

    def _x0_cond(self, batch, drop: Tensor | None, device) -> tuple[Tensor, Tensor | None]:
        x, y = split_item(batch)
        x = x.to(device, non_blocking=True)
        if not self.cfg.class_cond:
            return x, None
        y = y.to(device, non_blocking=True)
        if drop is None:
            return x, y
        return x, torch.where(drop.to(device), torch.full_like(y, self.num_classes), y)

    def loss(self, net, batch, draws: dict[str, Tensor], device: torch.device) -> Tensor:
        x0, cond = self._x0_cond(batch, draws.get("drop"), device)
        cfg = self.cfg
        return diffusion_loss(net, x0, self.schedule, prediction=cfg.prediction,
                              weighting=cfg.weighting, cond=cond, t=draws["t"].to(device),
                              eps=draws["eps"].to(device))

    def check(self, net: nn.Module, batch, device: torch.device) -> None:
        """One forward pass (eval mode, no RNG used) on a batch before any file is written."""
        x, cond = self._x0_cond(batch, None, device)
        t = torch.full((x.shape[0],), 0.5, device=x.device)
        cfg, training = self.cfg, net.training
        net.eval()
        try:
            with torch.no_grad():
                out = net(x, t) if cond is None else net(x, t, cond)
        except (RuntimeError, ValueError, TypeError, IndexError) as e:  # it does not fit: a
            # shape, a signature, a label range (other exceptions are bugs: they propagate)
            raise TrainError(f"network {cfg.net!r} fails on {cfg.dataset!r} data of shape "
                             f"{tuple(x.shape)}: {one_line(e)} (--traceback shows where)") from e
        finally:
            net.train(training)
        try:
            check_net_output(out, x)
        except ValueError as e:
            raise TrainError(f"network {cfg.net!r} returns a wrong prediction for "
                             f"{cfg.dataset!r} data: {e}; set net_kwargs to the data's "
                             f"shape") from None

    def preview(self, model, path: Path, *, title: str = "") -> Path | None:
        cfg, n = self.cfg, self.cfg.num_sample
        cond = nrow = None
        if cfg.class_cond:  # one row per class when n is a multiple of the classes
            cond, nrow = class_grid(n, self.num_classes)
        image = len(self.sample_shape) == 3  # images are in [-1, 1]: clamp x0_hat there
        dev = module_device(model)
        x = sample(model, self.schedule, shape=(n, *self.sample_shape),
                   prediction=cfg.prediction, sampler=cfg.sampler, steps=cfg.sample_steps,
                   seed=cfg.seed, cond=None if cond is None else cond.to(dev), device=dev,
                   clip_x0=1.0 if image else None, bf16=cfg.bf16)
        path.parent.mkdir(parents=True, exist_ok=True)
        return save_samples(x, path, title=title, nrow=nrow)


__all__ = ["Task", "Generate", "register_task", "available_tasks", "build_task", "split_item",
           "first_batch", "module_device"]
