"""`train(config)`: check the run directory, build the parts, start or resume, run the loop.

    run_dir = difflab.train.train(TrainConfig(net="mlp-2d", dataset="moons", steps=2000))
    config, model, ema = difflab.train.load_run(run_dir)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from . import rundir
from .checkpoint import remove_stale
from .config import TrainConfig, TrainError
from .distributed import Dist, init
from .hooks import build_hooks
from .loop import Loop
from .parts import build_dataset, build_net, build_schedule
from .rundir import RunDir
from .tasks import build_task, first_batch


def build_loop(cfg: TrainConfig, dist: Dist, *, net: nn.Module | None = None,
               dataset: Dataset | None = None) -> tuple[Loop, dict[str, Any]]:
    """The loop of this run, and what config.json records of what was built. Everything that
    can be wrong with the config fails here, before any file is written."""
    schedule = build_schedule(cfg)
    task = build_task(cfg, dataset if dataset is not None else build_dataset(cfg), schedule)
    hooks = build_hooks(cfg, task)
    # The same initial weights on every process: seed, then build (the loop seeds per process).
    torch.manual_seed(cfg.seed)
    net_kwargs = {**task.net_kwargs(), **cfg.net_kwargs}
    model = (net if net is not None else build_net(cfg.net, net_kwargs)).to(dist.device)
    task.check(model, first_batch(task.dataset), dist.device)
    loop = Loop(cfg, dist, task, model, hooks, RunDir(cfg.run_dir))
    resolved = {"world_size": dist.world_size, "device": str(dist.device), "task": task.name,
                **task.resolved(), "net_kwargs": net_kwargs, "net_class": type(model).__name__,
                "parameters": sum(p.numel() for p in model.parameters()),
                "torch_version": torch.__version__}
    return loop, resolved


def train(config: TrainConfig, resume: bool = False, force: bool = False, *,
          net: nn.Module | None = None, dataset: Dataset | None = None) -> Path:
    """Train the model a TrainConfig describes; returns the run directory.

    resume: continue the run in config.run_dir from its latest checkpoint (the config may differ
    only in RESUMABLE_FIELDS, e.g. more steps). force: start again in an existing run directory,
    deleting its checkpoints, samples and metrics. Without either, an existing run directory is
    an error. net / dataset: use these objects instead of building config.net / config.dataset
    by name (the net is trained in place; load_run then needs the same net=).

    Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and raises
    TrainInterrupted (a KeyboardInterrupt). A non-finite loss raises TrainError and keeps the
    last good checkpoint. Under torchrun every process calls train() with the same config.
    """
    if not isinstance(config, TrainConfig):
        raise TrainError(f"train() needs a TrainConfig, got {type(config).__name__}")
    cfg = TrainConfig.from_dict(config.to_dict())  # a validated copy
    if resume and force:
        raise TrainError("resume (--resume) and force (--force) exclude each other: pass one")
    d = init(cfg.device)
    problem = d.broadcast(rundir.check_start(cfg, resume, force) if d.is_main else None)
    if problem:
        raise TrainError(problem)
    loop, resolved = build_loop(cfg, d, net=net, dataset=dataset)
    run = loop.run
    if resume:
        ckpt = d.broadcast(str(run.latest_checkpoint()) if d.is_main else None)
        loop.restore(Path(ckpt))
        if cfg.steps < loop.step:
            raise TrainError(f"{run} is already at step {loop.step}, past steps = "
                             f"{cfg.steps}: ask for more steps to continue it")
        _say(cfg, d, f"resumed {run} from {ckpt} (step {loop.step})")
    if d.is_main:
        if force and not resume:
            rundir.clear(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        remove_stale(run.checkpoints)
        if resume:
            rundir.truncate_metrics(run.metrics_file, loop.step)
        rundir.write_config(run.path, cfg, resolved)
        loop.task.save(run)
    d.barrier()
    t0, start = time.perf_counter(), loop.step
    loop.fit()
    d.barrier()
    _say(cfg, d, f"trained steps {start}..{loop.step} in {time.perf_counter() - t0:.1f} s; "
                 f"run directory {run}")
    return run.path


def _say(cfg: TrainConfig, d: Dist, msg: str) -> None:
    if cfg.progress and d.is_main:
        print(f"difflab: {msg}", file=sys.stderr, flush=True)


__all__ = ["train", "build_loop"]
