"""Training: `train(config)` writes a run directory; `load_run(run_dir)` reads it back.

    from difflab.train import TrainConfig, train, load_run
    run_dir = train(TrainConfig(net="mlp-2d", dataset="moons", steps=2000, run_dir="runs/moons"))
    config, model, ema = load_run(run_dir)
    x0 = difflab.sample(ema, config.schedule, shape=(1000, 2))

The parts: loop.py (the optimizer loop), tasks.py (what a batch is and its loss), hooks.py
(every-N-steps jobs), rundir.py (the run directory), checkpoint.py, config.py, batches.py (which
data and noise each step uses), distributed.py (the same call under `torchrun`).
"""

from . import actions  # noqa: F401  (registers the policy task)
from .actions import load_policy
from .checkpoint import CheckpointError
from .config import RESUMABLE_FIELDS, TrainConfig, TrainError
from .ema import ema_decay_at, make_ema
from .hooks import Hook, HookContext, available_hooks, register_hook
from .rundir import (
    RunDir,
    latest_checkpoint,
    list_checkpoints,
    load_config,
    load_run,
    read_hook_metrics,
    read_metrics,
)
from .start import train
from .stop import TrainInterrupted
from .tasks import Task, available_tasks, register_task

__all__ = ["TrainConfig", "TrainError", "CheckpointError", "TrainInterrupted", "train",
           "load_run", "load_config", "latest_checkpoint", "list_checkpoints", "make_ema",
           "ema_decay_at", "RESUMABLE_FIELDS", "read_metrics", "read_hook_metrics", "RunDir",
           "Task", "register_task", "available_tasks", "Hook", "HookContext", "register_hook",
           "available_hooks", "load_policy"]
