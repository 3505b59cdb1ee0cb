"""The training configuration: one dataclass, every field documented where it is declared."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..losses import TIME_SAMPLING, WEIGHTINGS
from ..predictions import check_prediction


class TrainError(ValueError):
    """A training run cannot go on; the message is one line that says why and what to do."""


# Fields that may change when a run is resumed: they do not change the trained weights.
RESUMABLE_FIELDS = frozenset({
    "steps", "sample_every", "num_sample", "sampler", "sample_steps", "checkpoint_every",
    "keep_checkpoints", "log_every", "run_dir", "num_workers", "progress", "device",
})


@dataclass
class TrainConfig:
    """Everything one training run needs (DESIGN.md section 4). Saved as `config.json`."""

    # --- what is trained, on what ---
    net: str = "mlp-2d"
    """Network preset of `difflab.nets` (`mlp-2d`, `unet-digits`, `unet-mnist`, `ddpm-cifar10`,
    `dit-s2`, ...)."""
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    """Overrides of the preset's constructor arguments, e.g. {"dropout": 0.0}."""
    dataset: str = "moons"
    """Dataset name of `difflab.data` (`moons`, `8gaussians`, `mixture-2d`, `digits`, `mnist`,
    `folder`, ...)."""
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of `difflab.data.get_dataset`, e.g. {"root": "data/mnist"}."""
    class_cond: bool = False
    """Condition the network on the dataset's labels (needs a dataset with `num_classes`)."""
    cond_drop: float = 0.1
    """With class_cond: probability in [0, 1) that a label is replaced by the null label
    `num_classes`, so that the model also learns the unconditional prediction (classifier-free
    guidance, Ho & Salimans 2022)."""

    # --- the diffusion loss (difflab.losses) ---
    schedule: str = "linear"
    """Noise schedule name of `difflab.get_schedule` (`linear`, `cosine`, `vp`, `ve`, `edm`,
    ...)."""
    schedule_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of `difflab.get_schedule`, e.g. {"T": 1000}."""
    prediction: str = "eps"
    """What the network predicts: `eps`, `x0`, `v` or `score`."""
    weighting: str = "simple"
    """Loss weighting: `simple`, `min_snr` or `elbo` (alias `vlb`)."""
    time_sampling: str = "uniform"
    """Training times: `uniform` on [t_min, 1], or `discrete` (a DDPM step i / T; discrete
    schedules only)."""

    # --- optimisation ---
    batch_size: int = 128
    """Global batch size: samples per optimizer step, summed over processes and accumulation
    steps; must be divisible by (processes x grad_accum)."""
    lr: float = 2e-4
    """Peak learning rate of AdamW."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW's (beta1, beta2)."""
    warmup_steps: int = 0
    """Linear learning-rate warm-up: step s (0-based) uses lr * min(1, (s + 1) / warmup_steps);
    constant afterwards. 0: no warm-up."""
    steps: int = 10_000
    """Optimizer steps to train for (the total, also when resuming)."""
    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this value; None or 0: no clipping."""
    grad_accum: int = 1
    """Micro-batches accumulated per optimizer step (the global batch is split over them)."""
    ema_decay: float = 0.9999
    """EMA decay in [0, 1); the EMA weights are used for sampling. 0: the EMA equals the model."""
    ema_warmup: bool = True
    """EMA warm-up: update t uses decay min(ema_decay, (1 + t) / (10 + t)), t counting the EMA
    updates so far (the first update copies the weights)."""
    bf16: bool = False
    """Run the network under bfloat16 autocast; the loss is computed in float32."""
    seed: int = 0
    """Seeds the initial weights, the data order, the training noise and times, and the samples."""

    # --- output ---
    run_dir: str = "runs/train"
    """Run directory: config.json, checkpoints/, samples/, metrics.jsonl."""
    sample_every: int = 1000
    """Draw a sample grid with the EMA weights every this many steps (and at the end); 0: never."""
    num_sample: int = 64
    """Samples per grid (2-D data: points in the scatter plot)."""
    sampler: str = "dpm++2m"
    """Sampler name for the grids (`difflab.samplers.available()`)."""
    sample_steps: int = 20
    """Network evaluations per sample grid."""
    checkpoint_every: int = 1000
    """Save a checkpoint every this many steps (and at the end, and on Ctrl-C); 0: only then."""
    keep_checkpoints: int = 3
    """Keep the last K checkpoints; 0: keep all."""
    log_every: int = 50
    """Append a metrics.jsonl line (loss averaged since the last line) every this many steps."""
    num_workers: int = 0
    """DataLoader worker processes. With random data augmentation, exact resume needs 0."""
    device: str = "auto"
    """`auto` (CUDA if available, else CPU), `cpu`, `cuda`, or `cuda:K` (single process)."""
    progress: bool = True
    """Show a tqdm progress bar (on the first process only)."""

    def __post_init__(self) -> None:
        if isinstance(self.adam_betas, (list, tuple)):
            self.adam_betas = tuple(self.adam_betas)  # JSON gives lists; validate() checks

    # ------------------------------------------------------------------------------------------

    def validate(self) -> TrainConfig:
        """Check every field's value; raise TrainError naming the first bad one."""

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise TrainError(f"config field {name} = {getattr(self, name)!r}: {what}")

        for name in ("net", "dataset", "schedule", "sampler", "run_dir", "device"):
            need(isinstance(getattr(self, name), str) and getattr(self, name) != "", name,
                 "must be a non-empty string")
        for name in ("net_kwargs", "dataset_kwargs", "schedule_kwargs"):
            need(isinstance(getattr(self, name), dict), name, "must be a dict")
        for name in ("batch_size", "steps", "grad_accum", "num_sample", "sample_steps"):
            v = getattr(self, name)
            need(_is_int(v) and v >= 1, name, "must be a positive integer")
        for name in ("warmup_steps", "sample_every", "checkpoint_every", "keep_checkpoints",
                     "num_workers", "seed"):
            v = getattr(self, name)
            need(_is_int(v) and v >= 0, name, "must be a non-negative integer")
        need(_is_int(self.log_every) and self.log_every >= 1, "log_every",
             "must be a positive integer")
        need(_is_num(self.lr) and self.lr > 0, "lr", "must be a positive number")
        need(_is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay",
             "must be >= 0")
        need(isinstance(self.adam_betas, tuple) and len(self.adam_betas) == 2
             and all(_is_num(b) and 0 <= b < 1 for b in self.adam_betas),
             "adam_betas", "must be two numbers in [0, 1)")
        need(self.seed < 2**63, "seed", "must be below 2**63")
        need(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device) is not None, "device",
             "choose auto, cpu, cuda, cuda:N or mps")
        need(self.grad_clip is None or (_is_num(self.grad_clip) and self.grad_clip >= 0),
             "grad_clip", "must be None or a number >= 0")
        need(_is_num(self.ema_decay) and 0 <= self.ema_decay < 1, "ema_decay",
             "must be in [0, 1)")
        need(_is_num(self.cond_drop) and 0 <= self.cond_drop < 1, "cond_drop",
             "must be in [0, 1)")
        for name in ("class_cond", "ema_warmup", "bf16", "progress"):
            need(isinstance(getattr(self, name), bool), name, "must be true or false")
        try:
            check_prediction(self.prediction)
        except ValueError as e:
            raise TrainError(f"config field prediction = {self.prediction!r}: {e}") from None
        need(self.weighting in (*WEIGHTINGS, "vlb"), "weighting",
             f"choose one of {', '.join(WEIGHTINGS)}")
        need(self.time_sampling in TIME_SAMPLING, "time_sampling",
             f"choose one of {', '.join(TIME_SAMPLING)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config from a dict as written by to_dict; unknown keys are an error."""
        if not isinstance(d, dict):
            raise TrainError(f"a training config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TrainError(f"unknown config field(s) {', '.join(map(repr, unknown))}; "
                             f"known fields: {', '.join(sorted(known))}")
        return cls(**d).validate()

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (unknown names are an error)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        """Read a config file: a TrainConfig dict, or a run's config.json (its "config")."""
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise TrainError(f"cannot read the config {path}: {one_line(e)}") from None
        if isinstance(d, dict) and "config" in d and "difflab_version" in d:
            d = d["config"]
        return cls.from_dict(d)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


__all__ = ["TrainConfig", "TrainError", "RESUMABLE_FIELDS"]
