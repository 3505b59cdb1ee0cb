"""The run directory: the only code that knows its layout (DESIGN.md section 4).

    RUN/config.json      {"difflab_version", "config": TrainConfig, "resolved": what was built}
    RUN/checkpoints/     step-NNNNNNNN/ folders (checkpoint.py: what is inside one) and `latest`,
                         a text file naming the newest complete one
    RUN/samples/         pictures: step-NNNNNNNN.png from training, sample-SEED.png from sampling
    RUN/NAME.png|gif     pictures of the whole run that a program adds (RunDir.summary: the demo)
    RUN/normalizer.json  the data normaliser of a policy run (tasks that keep one)
    RUN/metrics.jsonl    one JSON object a line: {step, loss, lr, images_per_s} from training,
                         {step, hook, ...metrics} from hooks

`check_start` says whether a run may start (or resume) before anything is written; `load_run`
reads a trained network back.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._version import __version__
from ..errors import one_line
from .checkpoint import (
    EMA_FILE,
    MODEL_FILE,
    CheckpointError,
    fit_weights,
    load_weights,
    remove_stale,
    write_atomic,
    write_checkpoint,
)
from .config import RESUMABLE_FIELDS, TrainConfig, TrainError
from .parts import build_net

CONFIG_FILE, METRICS_FILE, CHECKPOINTS, SAMPLES = ("config.json", "metrics.jsonl", "checkpoints",
                                                   "samples")
NORMALIZER_FILE = "normalizer.json"
LATEST = "latest"
_CHECKPOINT = re.compile(r"^step-(\d{8,})$")


class RunDir:
    """The paths of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config_file = property(lambda self: self.path / CONFIG_FILE)
    metrics_file = property(lambda self: self.path / METRICS_FILE)
    checkpoints = property(lambda self: self.path / CHECKPOINTS)
    samples = property(lambda self: self.path / SAMPLES)
    normalizer_file = property(lambda self: self.path / NORMALIZER_FILE)

    def training_picture(self, step: int) -> Path:
        return self.samples / f"step-{step:08d}.png"

    def sample_picture(self, seed: int) -> Path:
        return self.samples / f"sample-{seed}.png"

    def summary(self, name: str) -> Path:
        """A picture a program draws of the whole run, beside its files (the demo's
        samples.png, denoising.gif and loss.png); `name` must not be one of the run's own."""
        own = (CONFIG_FILE, METRICS_FILE, CHECKPOINTS, SAMPLES, NORMALIZER_FILE)
        if name in own or "/" in name:
            raise ValueError(f"{name!r} is not a name for a summary picture of a run")
        return self.path / name

    def latest_checkpoint(self) -> Path | None:
        return latest_checkpoint(self.checkpoints)

    def list_checkpoints(self) -> list[Path]:
        return list_checkpoints(self.checkpoints)

    def __str__(self) -> str:
        return str(self.path)


# ----------------------------------------------------------------------------------------------
# checkpoints/


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def checkpoint_step(path: str | Path) -> int:
    """The step of a checkpoint folder, from its name."""
    m = _CHECKPOINT.match(Path(path).name)
    if m is None:
        raise CheckpointError(f"{path} is not a checkpoint folder (expected step-NNNNNNNN)")
    return int(m.group(1))


def list_checkpoints(root: str | Path) -> list[Path]:
    """The complete checkpoint folders under `root` (a run's checkpoints/), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The checkpoint `root/latest` names; None if there is no checkpoint at all."""
    root = Path(root)
    pointer = root / LATEST
    if not pointer.exists():
        kept = list_checkpoints(root)  # a run stopped before its first pointer update
        return kept[-1] if kept else None
    try:
        name = pointer.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"cannot read {pointer}: {one_line(e)}") from None
    if not _CHECKPOINT.match(name):  # never follow a path out of the folder
        raise CheckpointError(f"{pointer} names {name[:60]!r}, not a checkpoint folder")
    path = root / name
    if not path.is_dir():
        raise CheckpointError(f"{pointer} names {name}, which does not exist")
    return path


def save_checkpoint(root: str | Path, step: int, *, model: dict[str, Tensor],
                    ema: dict[str, Tensor], state: dict[str, Any], keep: int = 0) -> Path:
    """Write checkpoint `step` under root atomically, point `latest` at it (replaced
    atomically too: a crash leaves it naming a complete checkpoint) and keep the last `keep`
    (0: all)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale(root)
    name = checkpoint_name(step)
    final = write_checkpoint(root / name, step, model=model, ema=ema, state=state)
    write_atomic(root / LATEST, (name + "\n").encode())
    if keep > 0:
        for old in list_checkpoints(root)[:-keep]:
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
    return final


# ----------------------------------------------------------------------------------------------
# config.json


def load_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig stored in a run directory's config.json."""
    path = RunDir(run_dir).config_file
    if not path.is_file():
        raise TrainError(f"{run_dir} is not a run directory: it has no {CONFIG_FILE}")
    return TrainConfig.from_json(path)


def read_resolved(run_dir: str | Path) -> dict[str, Any]:
    """What config.json records of the built run (data shape, network kwargs, ...)."""
    path = RunDir(run_dir).config_file
    try:
        return json.loads(path.read_text()).get("resolved", {}) or {}
    except (OSError, ValueError) as e:
        raise TrainError(f"cannot read {path}: {one_line(e)}") from None


def write_config(run_dir: str | Path, cfg: TrainConfig, resolved: dict[str, Any]) -> None:
    """config.json: the full config, the difflab version and what was built from it."""
    doc = {"difflab_version": __version__, "config": cfg.to_dict(), "resolved": resolved}
    write_atomic(RunDir(run_dir).config_file, (json.dumps(doc, indent=2) + "\n").encode())


# ----------------------------------------------------------------------------------------------
# Starting, resuming, starting again


def _config_changes(cfg: TrainConfig, stored: TrainConfig) -> list[str]:
    """The fields that differ (in JSON form: tuples and lists compare equal), but for those a
    resumed run may change."""
    now, before = (json.loads(json.dumps(c.to_dict())) for c in (cfg, stored))
    return [f for f, v in now.items() if f not in RESUMABLE_FIELDS and before[f] != v]


def check_start(cfg: TrainConfig, resume: bool, force: bool) -> str | None:
    """Why this run cannot start (one line), or None. Reads only; runs on the main process."""
    run = RunDir(cfg.run_dir)
    if run.path.exists() and not run.path.is_dir():
        return f"run directory {run} is a file"
    if resume:
        if not run.config_file.is_file():
            return f"nothing to resume: {run} has no {CONFIG_FILE}"
        try:
            stored = load_config(run.path)
            if run.latest_checkpoint() is None:
                return (f"nothing to resume: {run.checkpoints} holds no checkpoint; start "
                        f"again with force=True (--force)")
        except TrainError as e:
            return str(e)
        changed = _config_changes(cfg, stored)
        if changed:
            before, now = stored.to_dict(), cfg.to_dict()
            diffs = ", ".join(f"{f} {before[f]!r} -> {now[f]!r}" for f in changed[:4])
            return (f"cannot resume {run} with a different config ({diffs}); only "
                    f"{', '.join(sorted(RESUMABLE_FIELDS))} may change")
    elif run.path.is_dir() and any(run.path.iterdir()) and not force:
        return (f"run directory {run} already exists: continue it with resume=True (--resume), "
                f"or start it again with force=True (--force), which deletes its checkpoints, "
                f"samples, metrics and config")
    return None


def clear(run_dir: str | Path) -> None:
    """--force: remove what an earlier run wrote (other files are left alone)."""
    run = RunDir(run_dir)
    for folder in (run.checkpoints, run.samples):
        shutil.rmtree(folder, ignore_errors=True)
    for file in (run.config_file, run.metrics_file, run.normalizer_file):
        file.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------
# metrics.jsonl


def training_record(step: int, loss: float, lr: float, samples_per_s: float) -> dict[str, Any]:
    """A training line of metrics.jsonl. The throughput is data samples per second whatever
    the data; its key, `images_per_s`, is the name difflab 0.1 gave it."""
    return {"step": step, "loss": loss, "lr": lr, "images_per_s": samples_per_s}


def _records(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON object line with a step (a line a crash cut short is skipped)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The training records of a metrics.jsonl ({step, loss, lr, images_per_s}), in order; a
    line a crash left half-written is skipped, a missing file gives []."""
    return [r for r in _records(Path(path)) if "loss" in r and "hook" not in r]


def read_hook_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The hooks' records of a metrics.jsonl ({step, hook, ...metrics}), in order."""
    return [r for r in _records(Path(path)) if isinstance(r.get("hook"), str)]


def truncate_metrics(path: str | Path, step: int) -> None:
    """On resume: drop the lines logged after the checkpoint (they will be logged again)."""
    path = Path(path)
    if path.is_file():
        keep = [row for row in _records(path) if row["step"] <= step]
        write_atomic(path, "".join(json.dumps(row) + "\n" for row in keep).encode())


class MetricsLog:
    """Appends records to metrics.jsonl, one flushed line each."""

    def __init__(self, path: str | Path):
        self.file = open(path, "a")  # noqa: SIM115 (closed by close())

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


# ----------------------------------------------------------------------------------------------
# Reading a trained network back


def load_run(run_dir: str | Path, *, net: nn.Module | Callable[[], nn.Module] | None = None,
             device: str | torch.device = "cpu", checkpoint: str | Path | None = None
             ) -> tuple[TrainConfig, nn.Module, nn.Module]:
    """(config, model, ema_model) of a run's latest checkpoint (or of `checkpoint`).

    Both networks are in eval mode on `device`, with `.prediction` set from the config (and
    `.data_shape`, one sample's shape as trained), so that
    `difflab.sample(ema_model, config.schedule, ...)` samples from them. net: the network (or a
    function making one) when the run was trained with train(..., net=...).
    """
    run = RunDir(run_dir)
    cfg = load_config(run.path)
    resolved = read_resolved(run.path)
    ckpt = Path(checkpoint) if checkpoint is not None else run.latest_checkpoint()
    if ckpt is None:
        raise CheckpointError(f"{run} has no checkpoint")
    model_sd, ema_sd = load_weights(ckpt / MODEL_FILE), load_weights(ckpt / EMA_FILE)
    if net is None:
        model = build_net(cfg.net, resolved.get("net_kwargs", cfg.net_kwargs))
    else:
        model = net() if callable(net) and not isinstance(net, nn.Module) else net
    ema = copy.deepcopy(model)
    fit_weights(model, model_sd, ckpt / MODEL_FILE)
    fit_weights(ema, ema_sd, ckpt / EMA_FILE)
    for m in (model, ema):
        m.to(device).eval().requires_grad_(False)
        m.prediction = cfg.prediction
        if resolved.get("data_shape"):
            m.data_shape = tuple(resolved["data_shape"])  # one sample, as trained
    return cfg, model, ema


__all__ = ["RunDir", "checkpoint_name", "checkpoint_step", "list_checkpoints",
           "latest_checkpoint", "save_checkpoint", "load_config", "read_resolved",
           "write_config", "check_start", "clear", "read_metrics", "read_hook_metrics",
           "truncate_metrics", "MetricsLog", "load_run", "training_record", "LATEST",
           "CONFIG_FILE", "METRICS_FILE", "CHECKPOINTS", "SAMPLES", "NORMALIZER_FILE"]
