"""Hooks: jobs the loop runs every N steps (and once at the end), whose metrics go to
metrics.jsonl as {step, hook, ...metrics} and are shown by `difflab info` (DESIGN.md section 4).

A hook is a class registered with `@register_hook("name")`, built from its interval and its
options (a dataclass `Options`, so that a misspelt option is a one-line error), and called with a
HookContext; it returns a dict of numbers ({} for none). Hooks run on the main process only,
under torch.no_grad, with every RNG (torch, CUDA, numpy, python) saved and restored around
them: a hook never changes the trained weights. A hook calls eval/; eval/ never imports train/.

The config names the hooks: `sample_every` is the interval of the `samples` hook (pictures of
the EMA model's samples); `hooks` adds the others, {"ema_loss": 500} or
{"ema_loss": {"every": 500, "batches": 8}}.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import one_line
from ..registry import Registry
from ..sampling import SamplingError, nfe_grid
from . import batches
from .config import TrainConfig, TrainError
from .rng import seed_process
from .rundir import RunDir
from .tasks import Task

EVAL_SET = 0xE7A1  # the stream of the ema_loss hook's fixed batches (batches.derive_seed)


@dataclass
class HookContext:
    """What a hook sees: the step just finished, the task, the EMA network, the run."""

    step: int
    task: Task
    ema: nn.Module  # the EMA weights' network, in eval mode
    run: RunDir
    device: torch.device


class Hook:
    """An every-N-steps job; subclasses set `Options` and implement `__call__`."""

    name: ClassVar[str] = ""

    @dataclass
    class Options:
        pass

    def __init__(self, every: int, cfg: TrainConfig, task: Task, **options):
        fields = [f.name for f in dataclasses.fields(self.Options)]
        unknown = sorted(set(options) - set(fields))
        if unknown:
            raise TrainError(f"hook {self.name!r} has no option(s) {', '.join(unknown)}; its "
                             f"options: {', '.join(['every', *fields])}")
        self.every, self.cfg, self.task = every, cfg, task
        self.options = self.Options(**options)
        self.last_step = -1  # the step it last ran at (the loop sets it)

    def due(self, step: int) -> bool:
        return self.every > 0 and step % self.every == 0

    def __call__(self, ctx: HookContext) -> dict[str, float]:
        raise NotImplementedError


HOOKS: Registry[type[Hook]] = Registry("hook", TrainError)
register_hook = HOOKS.register  # class decorator: @register_hook("name") names it in cfg.hooks
available_hooks = HOOKS.names


def build_hooks(cfg: TrainConfig, task: Task) -> list[Hook]:
    """The hooks the config names: `samples` every sample_every steps, then cfg.hooks; an
    interval of 0 means never (so `--hooks '{"ema_loss": 0}'` turns off a preset's hook)."""
    specs: list[tuple[str, Any]] = [("samples", cfg.sample_every)] if cfg.sample_every else []
    for name, spec in cfg.hooks.items():
        if name == "samples":
            raise TrainError("the samples hook's interval is sample_every: set --sample-every "
                             "N instead of naming it in hooks")
        specs.append((name, spec))
    hooks = []
    for name, spec in specs:
        cls = HOOKS.get(name)
        options = dict(spec) if isinstance(spec, dict) else {"every": spec}
        every = options.pop("every")
        hook = cls(every, cfg, task, **options)  # options checked also when it never runs
        if every > 0:
            hooks.append(hook)
    return hooks


def hook_record(hook: Hook, step: int, metrics) -> dict[str, Any]:
    """The metrics.jsonl record of what a hook returned: {step, hook, **metrics}, every value
    a number ({} when it returned nothing)."""
    if not metrics:
        return {}
    if not isinstance(metrics, dict):
        raise TrainError(f"hook {hook.name!r} returned {type(metrics).__name__}; a hook returns "
                         f"a dict of numbers")
    record: dict[str, Any] = {"step": step, "hook": hook.name}
    for key, value in metrics.items():
        if key in record or not isinstance(key, str):
            raise TrainError(f"hook {hook.name!r} returned the metric name {key!r}: 'step' and "
                             f"'hook' are taken, names are strings")
        try:
            record[key] = float(value)
        except (TypeError, ValueError):
            raise TrainError(f"hook {hook.name!r} returned {key} = {value!r}, not a "
                             f"number") from None
    return record


@register_hook("samples")
class Samples(Hook):
    """A picture of cfg.num_sample samples of the EMA model (cfg.sampler, cfg.sample_steps),
    drawn by the task, in samples/step-NNNNNNNN.png. A sampler that produces NaN is reported
    and training goes on. No metrics."""

    def __init__(self, every: int, cfg: TrainConfig, task: Task, **options):
        super().__init__(every, cfg, task, **options)
        try:  # the sampler and its budget, checked before training starts
            nfe_grid(cfg.sampler, cfg.sample_steps, task.schedule)
        except ValueError as e:
            raise TrainError(f"the samples hook's sampler: {one_line(e)}") from None

    def __call__(self, ctx: HookContext) -> dict[str, float]:
        path = ctx.run.training_picture(ctx.step)
        cfg = self.cfg
        try:
            ctx.task.preview(ctx.ema, path, title=f"{cfg.net} on {cfg.dataset}, step "
                                                  f"{ctx.step} (EMA)")
        except SamplingError as e:
            print(f"difflab: warning: no samples at step {ctx.step}: {one_line(e)}",
                  file=sys.stderr, flush=True)
        return {}


@register_hook("ema_loss")
class EmaLoss(Hook):
    """The task's loss of the EMA network on a fixed evaluation set: `batches` batches of
    cfg.batch_size items, times and noise drawn once from their own seeded stream, so that the
    curve over training has no sampling noise between points. Metric: ema_loss."""

    @dataclass
    class Options:
        batches: int = 4
        """Batches of cfg.batch_size items in the evaluation set."""

        def __post_init__(self):
            if not (isinstance(self.batches, int) and self.batches >= 1):
                raise TrainError(f"hook ema_loss: batches must be a positive integer, got "
                                 f"{self.batches!r}")

    def __init__(self, every: int, cfg: TrainConfig, task: Task, **options):
        super().__init__(every, cfg, task, **options)
        self._set: list | None = None

    def _eval_set(self) -> list:
        """[(batch, draws)] of the fixed evaluation set, built once."""
        if self._set is None:
            n, B = len(self.task.dataset), self.cfg.batch_size
            stream = batches.IndexStream(n, batches.derive_seed(self.cfg.seed, EVAL_SET))
            index_lists = [stream.indices(k * B, B) for k in range(self.options.batches)]
            loader = DataLoader(self.task.dataset, batch_sampler=index_lists)
            g = torch.Generator().manual_seed(batches.derive_seed(self.cfg.seed, EVAL_SET, 1))
            # the same set whenever it is built (a resumed run builds it later): a dataset
            # that augments from the global RNGs draws from a fixed state here
            seed_process(batches.derive_seed(self.cfg.seed, EVAL_SET, 2), 0)
            self._set = [(batch, self.task.draws(g, B)) for batch in loader]
        return self._set

    def __call__(self, ctx: HookContext) -> dict[str, float]:
        losses = [float(ctx.task.loss(ctx.ema, batch, draws, ctx.device))
                  for batch, draws in self._eval_set()]
        return {"ema_loss": sum(losses) / len(losses)}


__all__ = ["Hook", "HookContext", "register_hook", "available_hooks", "build_hooks",
           "hook_record", "Samples", "EmaLoss"]
