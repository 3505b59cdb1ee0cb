"""Training: `train(config)` writes a run directory; `load_run(run_dir)` reads it back.

    from difflab.train import TrainConfig, train, load_run
    run_dir = train(TrainConfig(net="mlp-2d", dataset="moons", steps=2000, run_dir="runs/moons"))
    config, model, ema = load_run(run_dir)
    x0 = difflab.sample(ema, config.schedule, shape=(1000, 2))

The same call runs on many processes under `torchrun --nproc_per_node K` (distributed.py).
"""

from .checkpoint import CheckpointError, latest_checkpoint, list_checkpoints
from .config import RESUMABLE_FIELDS, TrainConfig, TrainError
from .ema import ema_decay_at, make_ema
from .trainer import TrainInterrupted, load_config, load_run, read_metrics, train

__all__ = ["TrainConfig", "TrainError", "CheckpointError", "TrainInterrupted", "train",
           "load_run", "load_config", "latest_checkpoint", "list_checkpoints", "make_ema",
           "ema_decay_at", "RESUMABLE_FIELDS", "read_metrics"]
