"""The training configuration: one dataclass, each field's meaning and check where it is declared.

`TrainConfig.validate` runs the check stored with every field (`_f(default, check)`), so there
is no second list of field names to keep in step; `resumable=True` marks the fields a resumed
run may change. A config.json written by an earlier difflab (0.1) loads as it is: fields added
since take their defaults (`from_dict`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import samplers
from ..errors import UserError, one_line
from ..losses import TIME_SAMPLING, WEIGHTINGS
from ..predictions import check_prediction


class TrainError(UserError):
    """A training run cannot go on; the message is one line that says why and what to do."""


Check = Callable[[Any], "str | None"]  # a field's value -> what is wrong with it, or None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _name(v):
    return None if isinstance(v, str) and v != "" else "must be a non-empty string"


def _dict(v):
    return None if isinstance(v, dict) else "must be a dict"


def _bool(v):
    return None if isinstance(v, bool) else "must be true or false"


def _positive(v):
    return None if _is_int(v) and v >= 1 else "must be a positive integer"


def _count(v):
    return None if _is_int(v) and v >= 0 else "must be a non-negative integer"


def _seed(v):
    return _count(v) or (None if v < 2**63 else "must be below 2**63")


def _unit(lo_name: str) -> Check:
    return lambda v: None if _is_num(v) and 0 <= v < 1 else f"must be in {lo_name}"


def _choice(*names: str, show: tuple[str, ...] | None = None) -> Check:
    return lambda v: None if v in names else f"choose one of {', '.join(show or names)}"


def _prediction(v):
    try:
        check_prediction(v)
    except ValueError as e:
        return str(e)
    return None


def _sampler(v):
    try:
        samplers.get(v)
    except (ValueError, TypeError) as e:
        return one_line(e)
    return None


def _device(v):
    ok = isinstance(v, str) and re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v) is not None
    return None if ok else "choose auto, cpu, cuda, cuda:N or mps"


def _betas(v):
    ok = isinstance(v, tuple) and len(v) == 2 and all(_is_num(b) and 0 <= b < 1 for b in v)
    return None if ok else "must be two numbers in [0, 1)"


def _hooks(v):
    if not isinstance(v, dict):
        return "must be a dict {hook name: interval in steps, or {\"every\": N, ...options}}"
    for name, spec in v.items():
        every = spec.get("every") if isinstance(spec, dict) else spec
        if not (_is_int(every) and every >= 0):
            return (f"hook {name!r} needs an interval: a non-negative integer, or "
                    f"{{\"every\": N, ...}}")
    return None


def _f(default: Any = dataclasses.MISSING, check: Check | None = None, *, factory=None,
       resumable: bool = False):
    """A config field with its check (value -> problem or None) and whether resume may change
    it."""
    meta = {"check": check, "resumable": resumable}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything one training run needs (DESIGN.md section 4). Saved as `config.json`."""

    # --- what is trained, on what ---
    net: str = _f("mlp-2d", _name)
    """Network preset of `difflab.nets` (`mlp-2d`, `unet-digits`, `unet-mnist`, `ddpm-cifar10`,
    `dit-s2`, ...)."""
    net_kwargs: dict[str, Any] = _f(check=_dict, factory=dict)
    """Overrides of the preset's constructor arguments, e.g. {"dropout": 0.0}."""
    dataset: str = _f("moons", _name)
    """Dataset name of `difflab.data` (`moons`, `8gaussians`, `mixture-2d`, `digits`, `mnist`,
    `folder`, ...)."""
    dataset_kwargs: dict[str, Any] = _f(check=_dict, factory=dict)
    """Keyword arguments of `difflab.data.get_dataset`, e.g. {"root": "data/mnist"}."""
    task: str = _f("generate", _name)
    """What is trained on the data (`difflab.train.tasks`): `generate` learns the data items
    (images or points), optionally conditioned on their class labels."""
    task_kwargs: dict[str, Any] = _f(check=_dict, factory=dict)
    """Options of the task, checked by the task (`generate` has none)."""
    class_cond: bool = _f(False, _bool)
    """Condition the network on the dataset's labels (needs a dataset with `num_classes`)."""
    cond_drop: float = _f(0.1, _unit("[0, 1)"))
    """With class_cond: probability in [0, 1) that a label is replaced by the null label
    `num_classes`, so that the model also learns the unconditional prediction (classifier-free
    guidance, Ho & Salimans 2022)."""

    # --- the diffusion loss (difflab.losses) ---
    schedule: str = _f("linear", _name)
    """Noise schedule name of `difflab.get_schedule` (`linear`, `cosine`, `vp`, `ve`, `edm`,
    ...)."""
    schedule_kwargs: dict[str, Any] = _f(check=_dict, factory=dict)
    """Keyword arguments of `difflab.get_schedule`, e.g. {"T": 1000}."""
    prediction: str = _f("eps", _prediction)
    """What the network predicts: `eps`, `x0`, `v` or `score`."""
    weighting: str = _f("simple", _choice(*WEIGHTINGS, "vlb", show=tuple(WEIGHTINGS)))
    """Loss weighting: `simple`, `min_snr` or `elbo` (alias `vlb`)."""
    time_sampling: str = _f("uniform", _choice(*TIME_SAMPLING))
    """Training times: `uniform` on [t_min, 1], or `discrete` (a DDPM step i / T; discrete
    schedules only)."""

    # --- optimisation ---
    batch_size: int = _f(128, _positive)
    """Global batch size: samples per optimizer step, summed over processes and accumulation
    steps; must be divisible by (processes x grad_accum)."""
    lr: float = _f(2e-4, lambda v: None if _is_num(v) and v > 0 else "must be a positive number")
    """Peak learning rate of AdamW."""
    weight_decay: float = _f(0.0, lambda v: None if _is_num(v) and v >= 0 else "must be >= 0")
    """AdamW's decoupled weight decay."""
    adam_betas: tuple[float, float] = _f((0.9, 0.999), _betas)
    """AdamW's (beta1, beta2)."""
    warmup_steps: int = _f(0, _count)
    """Linear learning-rate warm-up: step s (0-based) uses lr * min(1, (s + 1) / warmup_steps);
    constant afterwards. 0: no warm-up."""
    lr_schedule: str = _f("constant", _choice("constant", "cosine"))
    """After the warm-up: `constant`, or `cosine` decay to 0 at `steps` (diffusers'
    get_cosine_schedule_with_warmup, as Chi et al. 2023 train). With cosine, resuming with more
    steps stretches the rest of the decay."""
    steps: int = _f(10_000, _positive, resumable=True)
    """Optimizer steps to train for (the total, also when resuming)."""
    grad_clip: float | None = _f(1.0, lambda v: None if v is None or (_is_num(v) and v >= 0)
                                 else "must be None or a number >= 0")
    """Clip the global gradient norm to this value; None or 0: no clipping."""
    grad_accum: int = _f(1, _positive)
    """Micro-batches accumulated per optimizer step (the global batch is split over them)."""
    ema_decay: float = _f(0.9999, _unit("[0, 1)"))
    """EMA decay in [0, 1); the EMA weights are used for sampling. 0: the EMA equals the model."""
    ema_warmup: bool = _f(True, _bool)
    """EMA warm-up: update t uses decay min(ema_decay, (1 + t) / (10 + t)), t counting the EMA
    updates so far (the first update copies the weights)."""
    ema_power: float | None = _f(None, lambda v: None if v is None or (_is_num(v) and v > 0)
                                 else "must be None or a number > 0")
    """EMA power schedule: update t uses decay min(ema_decay, 1 - t^-ema_power) (Chi et al.
    2023 use 0.75 with ema_decay 0.9999); None: ema_warmup's rule."""
    bf16: bool = _f(False, _bool)
    """Run the network under bfloat16 autocast; the loss is computed in float32."""
    seed: int = _f(0, _seed)
    """Seeds the initial weights, the data order, the training noise and times, and the samples."""

    # --- output ---
    run_dir: str = _f("runs/train", _name, resumable=True)
    """Run directory: config.json, checkpoints/, samples/, metrics.jsonl."""
    sample_every: int = _f(1000, _count, resumable=True)
    """Interval of the `samples` hook: a sample picture drawn with the EMA weights every this
    many steps (and at the end); 0: never."""
    num_sample: int = _f(64, _positive, resumable=True)
    """Samples per picture (2-D data: points in the scatter plot)."""
    sampler: str = _f("dpm++2m", _sampler, resumable=True)
    """Sampler name for the pictures (`difflab.samplers.available()`)."""
    sample_steps: int = _f(20, _positive, resumable=True)
    """Network evaluations per sample picture."""
    hooks: dict[str, Any] = _f(check=_hooks, factory=dict, resumable=True)
    """More every-N-steps jobs (`difflab.train.hooks`), by name: {"ema_loss": 500} or
    {"ema_loss": {"every": 500, "batches": 4}}; their metrics go to metrics.jsonl."""
    checkpoint_every: int = _f(1000, _count, resumable=True)
    """Save a checkpoint every this many steps (and at the end, and on Ctrl-C); 0: only then."""
    keep_checkpoints: int = _f(3, _count, resumable=True)
    """Keep the last K checkpoints; 0: keep all."""
    log_every: int = _f(50, _positive, resumable=True)
    """Append a metrics.jsonl line (loss averaged since the last line) every this many steps."""
    num_workers: int = _f(0, _count, resumable=True)
    """DataLoader worker processes. With random data augmentation, exact resume needs 0."""
    device: str = _f("auto", _device, resumable=True)
    """`auto` (CUDA if available, else CPU), `cpu`, `cuda`, or `cuda:K` (single process)."""
    progress: bool = _f(True, _bool, resumable=True)
    """Show a tqdm progress bar (on the first process only)."""

    def __post_init__(self) -> None:
        if isinstance(self.adam_betas, (list, tuple)):
            self.adam_betas = tuple(self.adam_betas)  # JSON gives lists; validate() checks

    # ------------------------------------------------------------------------------------------

    def validate(self) -> TrainConfig:
        """Run every field's check; raise TrainError naming the first bad field."""
        for f in dataclasses.fields(self):
            check = f.metadata.get("check")
            problem = check(getattr(self, f.name)) if check is not None else None
            if problem:
                raise TrainError(f"config field {f.name} = {getattr(self, f.name)!r}: {problem}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config from a dict as written by to_dict (by this or an earlier difflab: absent
        fields take their defaults); unknown keys are an error."""
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


# Fields that may change when a run is resumed: they do not change the trained weights.
RESUMABLE_FIELDS = frozenset(f.name for f in dataclasses.fields(TrainConfig)
                             if f.metadata.get("resumable"))

__all__ = ["TrainConfig", "TrainError", "RESUMABLE_FIELDS"]
