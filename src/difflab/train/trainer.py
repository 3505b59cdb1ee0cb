"""The trainer: a config in, a run directory out (DESIGN.md section 4).

    run_dir = difflab.train.train(TrainConfig(net="mlp-2d", dataset="moons", steps=2000))
    config, model, ema = difflab.train.load_run(run_dir)

A run directory holds config.json (the resolved config and the difflab version), checkpoints/
(checkpoint.py), samples/ (PNG pictures drawn with the EMA weights) and metrics.jsonl (one line
{step, loss, lr, images_per_s} every log_every steps).

Exact resume: the state after step s is a function of the config and s alone. The data order and
each step's times and noise come from (seed, step) (batches.py); the weights, EMA, AdamW moments,
LR schedule and every RNG the network may use (dropout: torch, CUDA, numpy, python, per process)
are saved, so training 2N steps straight and N + stop + resume + N steps give identical weights.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .. import samplers
from ..losses import diffusion_loss, sample_t
from ..pictures import save_samples
from ..sampling import SamplingError, sample
from ..schedules import Schedule, get_schedule
from . import batches
from .checkpoint import (
    EMA_FILE,
    MODEL_FILE,
    CheckpointError,
    fit_weights,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    remove_stale,
    save_checkpoint,
)
from .config import RESUMABLE_FIELDS, TrainConfig, TrainError, one_line
from .distributed import Dist, init
from .ema import make_ema

CONFIG_FILE, METRICS_FILE = "config.json", "metrics.jsonl"
CHECKPOINTS, SAMPLES = "checkpoints", "samples"


class TrainInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped training after a checkpoint was saved."""

    def __init__(self, message: str, checkpoint: Path | None):
        super().__init__(message)
        self.checkpoint = checkpoint


# ----------------------------------------------------------------------------------------------
# Building the parts from names


def _datasets_module():
    try:
        from .. import data
    except ImportError as e:  # pragma: no cover - the data package is part of difflab
        raise TrainError(f"difflab.data cannot be imported: {one_line(e)}") from None
    return data


def build_dataset(cfg: TrainConfig) -> Dataset:
    """The dataset named by the config (`difflab.data.get_dataset`)."""
    data = _datasets_module()
    if not hasattr(data, "get_dataset"):
        raise TrainError("difflab.data has no get_dataset; pass dataset=... to train()")
    try:
        return data.get_dataset(cfg.dataset, **cfg.dataset_kwargs)
    except TrainError:
        raise
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise TrainError(f"cannot load dataset {cfg.dataset!r}: {one_line(e)}") from None


def build_net(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """The network preset `name` with overrides (`difflab.nets.get_net`)."""
    try:
        from ..nets import get_net
    except ImportError:
        raise TrainError("difflab.nets has no get_net; pass net=... to train()") from None
    try:
        return get_net(name, **kwargs)
    except (ValueError, TypeError, KeyError) as e:
        raise TrainError(f"cannot build network {name!r} with {kwargs}: {one_line(e)}") from None


def net_overrides(cfg: TrainConfig, num_classes: int | None) -> dict[str, Any]:
    """The network overrides actually used: net_kwargs, plus num_classes with class_cond."""
    kw = dict(cfg.net_kwargs)
    if cfg.class_cond and "num_classes" not in kw:
        kw["num_classes"] = num_classes
    return kw


def build_schedule(cfg: TrainConfig) -> Schedule:
    try:
        return get_schedule(cfg.schedule, **cfg.schedule_kwargs)
    except (ValueError, TypeError) as e:
        raise TrainError(f"schedule {cfg.schedule!r}: {one_line(e)}") from None


def data_shape(dataset: Dataset) -> tuple[int, ...]:
    shape = getattr(dataset, "shape", None)
    if shape:
        return tuple(int(s) for s in shape)
    x, _ = _split_item(dataset[0])
    return tuple(x.shape)


def _split_item(batch) -> tuple[Tensor, Tensor | None]:
    """(x, y) of a dataset item or batch: (x, y), (x,) or x."""
    if isinstance(batch, Tensor):
        return batch, None
    if isinstance(batch, (tuple, list)):
        if len(batch) == 1:
            return batch[0], None
        return batch[0], batch[1]
    raise TrainError(f"dataset items must be (x, y) or x, got {type(batch).__name__}")


# ----------------------------------------------------------------------------------------------
# The run directory


def load_config(run_dir: str | Path) -> TrainConfig:
    """The TrainConfig stored in a run directory's config.json."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise TrainError(f"{run_dir} is not a run directory: it has no {CONFIG_FILE}")
    return TrainConfig.from_json(path)


def _read_run_json(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError) as e:
        raise TrainError(f"cannot read {run_dir / CONFIG_FILE}: {one_line(e)}") from None


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _check_run_dir(cfg: TrainConfig, resume: bool, force: bool) -> str | None:
    """Why this run cannot start (one line), or None. Reads only; runs on the main process."""
    run = Path(cfg.run_dir)
    if run.exists() and not run.is_dir():
        return f"run directory {run} is a file"
    exists = run.is_dir() and any(run.iterdir())
    if resume:
        if not (run / CONFIG_FILE).is_file():
            return f"nothing to resume: {run} has no {CONFIG_FILE}"
        try:
            stored = load_config(run)
            if latest_checkpoint(run / CHECKPOINTS) is None:
                return (f"nothing to resume: {run / CHECKPOINTS} holds no checkpoint; start "
                        f"again with force=True")
        except TrainError as e:
            return str(e)
        def plain(d):  # the JSON form: tuples and lists compare equal
            return json.loads(json.dumps(d))

        now, before = plain(cfg.to_dict()), plain(stored.to_dict())
        changed = [f for f, v in now.items() if f not in RESUMABLE_FIELDS and before[f] != v]
        if changed:
            diffs = ", ".join(f"{f} {before[f]!r} -> {now[f]!r}" for f in changed[:4])
            return (f"cannot resume {run} with a different config ({diffs}); only "
                    f"{', '.join(sorted(RESUMABLE_FIELDS))} may change")
    elif exists and not force:
        return (f"run directory {run} already exists: continue it with resume=True (--resume), "
                f"or start it again with force=True (--force), which deletes its checkpoints, "
                f"samples, metrics and config")
    return None


def _clear_run_dir(run: Path) -> None:
    """force=True: remove what an earlier run wrote (other files are left alone)."""
    for name in (CHECKPOINTS, SAMPLES):
        shutil.rmtree(run / name, ignore_errors=True)
    for name in (CONFIG_FILE, METRICS_FILE):
        (run / name).unlink(missing_ok=True)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The complete records of a run's metrics.jsonl ({step, loss, lr, images_per_s}), in
    order; a line a crash left half-written is skipped, a missing file gives []."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "step" in row and "loss" in row:
            rows.append(row)
    return rows


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume: drop the lines logged after the checkpoint (they will be logged again)."""
    if path.is_file():
        keep = [row for row in read_metrics(path) if row["step"] <= step]
        _write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in keep))


# ----------------------------------------------------------------------------------------------
# RNG states (the network's own randomness: dropout and the like)


def _rng_state(device: torch.device) -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if device.type == "cuda" and cuda:  # this process's GPU (resume may see fewer GPUs)
        # one entry since this format; every visible GPU's in checkpoints written before it
        mine = cuda[device.index] if len(cuda) > 1 and device.index < len(cuda) else cuda[0]
        torch.cuda.set_rng_state(mine, device)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _seed_process(seed: int, rank: int) -> None:
    s = batches.derive_seed(seed, batches.PROCESS_RNG, rank)
    torch.manual_seed(s)
    np.random.seed(s % 2**32)
    random.seed(s)


# ----------------------------------------------------------------------------------------------
# Ctrl-C


class _StopRequest:
    """SIGINT / SIGTERM set a flag that the loop reads between steps (main thread only);
    a second Ctrl-C raises KeyboardInterrupt at once. One that comes within `grace` seconds of
    the first counts as the same request: a launcher may pass on the Ctrl-C the worker already
    had from the terminal."""

    grace = 2.0

    def __init__(self):
        self.requested = False
        self._since = 0.0
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            if signum == signal.SIGINT and time.monotonic() - self._since > self.grace:
                raise KeyboardInterrupt
            return
        self.requested, self._since = True, time.monotonic()

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C and SIGTERM (which a scheduler sends to every process
    of a job) to the main process, which stops between steps; the loader ends them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# ----------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """One training run on this process. Use `train()`; this class is its machinery."""

    def __init__(self, cfg: TrainConfig, dist: Dist, *, net: nn.Module | None = None,
                 dataset: Dataset | None = None):
        self.cfg, self.dist, self.device = cfg, dist, dist.device
        self.run = Path(cfg.run_dir)
        self.ckpt_root = self.run / CHECKPOINTS
        self.schedule = build_schedule(cfg)
        self.dataset = dataset if dataset is not None else build_dataset(cfg)
        if len(self.dataset) == 0:
            raise TrainError(f"dataset {cfg.dataset!r} is empty")
        self.shape = data_shape(self.dataset)
        self.num_classes = getattr(self.dataset, "num_classes", None) or None
        if cfg.class_cond and not self.num_classes:
            raise TrainError(f"class_cond needs a labelled dataset; {cfg.dataset!r} has no "
                             f"num_classes")
        try:
            self.chunk = batches.chunk_size(cfg.batch_size, cfg.grad_accum, dist.world_size)
        except ValueError as e:
            raise TrainError(str(e)) from None

        try:
            samplers.get(cfg.sampler)
            sample_t(1, self.schedule, cfg.time_sampling)
        except ValueError as e:
            raise TrainError(one_line(e)) from None

        # The same initial weights on every process: seed, build, then seed per process.
        torch.manual_seed(cfg.seed)
        self.net_kwargs = net_overrides(cfg, self.num_classes)
        model = net if net is not None else build_net(cfg.net, self.net_kwargs)
        self.model = model.to(self.device)
        self._check_net()
        self.model.train()
        self.ema = make_ema(self.model, cfg.ema_decay, cfg.ema_warmup)
        _seed_process(cfg.seed, dist.rank)
        self.ddp = dist.wrap(self.model)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                     betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay)
        w = cfg.warmup_steps
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: min(1.0, (s + 1) / w) if w > 0 else 1.0)
        self.step = 0
        # The loss summed over the steps since the last metrics line, and their count: kept in
        # the checkpoint so that a resumed run logs the same lines as a straight one.
        self.log_acc = [0.0, 0]

    def _check_net(self) -> None:
        """One forward pass on two data samples (eval mode, no RNG used) before any file is
        written: a network that does not fit the data fails here, in one line."""
        x, y = _split_item(next(iter(DataLoader(self.dataset, batch_size=2))))
        x = x.to(self.device)
        cond = y.to(self.device) if self.cfg.class_cond else None
        t = torch.full((x.shape[0],), 0.5, device=self.device)
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(x, t) if cond is None else self.model(x, t, cond)
        except Exception as e:
            raise TrainError(f"network {self.cfg.net!r} fails on {self.cfg.dataset!r} data of "
                             f"shape {tuple(x.shape)}: {one_line(e)}") from None
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise TrainError(f"network {self.cfg.net!r} returns {got} for {self.cfg.dataset!r} "
                             f"data of shape {tuple(x.shape)}: set net_kwargs to the data's "
                             f"shape")

    # --- the parts of a step ------------------------------------------------------------------

    def _net(self, x_t: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            return self.ddp(x_t, t) if cond is None else self.ddp(x_t, t, cond)

    def _loader(self) -> DataLoader:
        cfg, d = self.cfg, self.dist
        start = self.step * cfg.batch_size
        sampler = batches.StepBatches(len(self.dataset), cfg.seed, cfg.batch_size,
                                      cfg.grad_accum, d.rank, d.world_size, start=start)
        gen = torch.Generator().manual_seed(batches.derive_seed(cfg.seed, batches.LOADER, start))
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
                          pin_memory=self.device.type == "cuda", generator=gen,
                          worker_init_fn=_ignore_stop_signals if cfg.num_workers else None)

    def _train_step(self, batches_iter, request: _StopRequest) -> tuple[float, bool]:
        """One optimizer step; returns (the global batch's mean loss, stop requested anywhere).
        A non-finite loss or gradient norm returns NaN without touching the weights."""
        cfg, d, dev = self.cfg, self.dist, self.device
        t_all, eps_all, drop_all = batches.step_draws(
            cfg.seed, self.step, cfg.batch_size, self.shape, self.schedule, cfg.time_sampling,
            cfg.cond_drop if cfg.class_cond else None)
        loss_sum = torch.zeros((), device=dev)
        for m in range(cfg.grad_accum):
            x, y = _split_item(next(batches_iter))
            lo = (m * d.world_size + d.rank) * self.chunk
            sl = slice(lo, lo + self.chunk)
            x = x.to(dev, non_blocking=True)
            cond = None
            if cfg.class_cond:
                y = y.to(dev, non_blocking=True)
                cond = torch.where(drop_all[sl].to(dev), torch.full_like(y, self.num_classes), y)
            with d.no_sync(self.ddp, skip=m < cfg.grad_accum - 1):
                loss = diffusion_loss(self._net, x, self.schedule, prediction=cfg.prediction,
                                      weighting=cfg.weighting, cond=cond,
                                      t=t_all[sl].to(dev), eps=eps_all[sl].to(dev))
                (loss / cfg.grad_accum).backward()
            loss_sum += loss.detach()
        stats = torch.stack([loss_sum / cfg.grad_accum,
                             torch.tensor(float(request.requested), device=dev)])
        loss_mean, stop = (d.all_reduce_sum(stats) / torch.tensor([d.world_size, 1.0],
                                                                    device=dev)).tolist()
        if not np.isfinite(loss_mean):
            return loss_mean, stop > 0  # the caller stops; the weights are not touched
        # The norm is checked with clipping off too (max_norm inf scales by exactly 1): an
        # infinite gradient must not reach the weights, nor a checkpoint.
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                              cfg.grad_clip or float("inf"))
        if not torch.isfinite(norm):  # the same on every process (DDP averaged the grads)
            self.opt.zero_grad(set_to_none=True)
            return float("nan"), stop > 0
        self.opt.step()
        self.lr_schedule.step()
        self.opt.zero_grad(set_to_none=True)
        self.ema.update_parameters(self.model)
        self.step += 1
        return loss_mean, stop > 0

    # --- checkpoints ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The state file's contents (collective: every process must call it)."""
        from .. import __version__

        rng = self.dist.gather(_rng_state(self.device))
        return {"step": self.step, "data_position": self.step * self.cfg.batch_size,
                "optimizer": self.opt.state_dict(), "lr_schedule": self.lr_schedule.state_dict(),
                "ema_updates": int(self.ema.n_averaged), "rng": rng,
                "log_interval": [float(self.log_acc[0]), int(self.log_acc[1])],
                "world_size": self.dist.world_size, "batch_size": self.cfg.batch_size,
                "difflab_version": __version__}

    def save(self) -> Path | None:
        """Checkpoint the current step (collective; the main process writes)."""
        state = self.state()
        if not self.dist.is_main:
            return None
        return save_checkpoint(self.ckpt_root, self.step, model=self.model.state_dict(),
                               ema=self.ema.module.state_dict(), state=state,
                               keep=self.cfg.keep_checkpoints)

    def restore(self, path: Path) -> None:
        """Load a checkpoint into the model, EMA, optimizer, LR schedule and RNGs."""
        model_sd, ema_sd, state = load_checkpoint(path)
        fit_weights(self.model, model_sd, path / MODEL_FILE)
        fit_weights(self.ema.module, ema_sd, path / EMA_FILE)
        try:
            self.opt.load_state_dict(state["optimizer"])
            self.lr_schedule.load_state_dict(state["lr_schedule"])
            self.ema.n_averaged.fill_(int(state["ema_updates"]))
            self.step = int(state["step"])
            acc = state.get("log_interval", [0.0, 0])  # absent in older checkpoints
            self.log_acc = [float(acc[0]), int(acc[1])]
            if int(state["data_position"]) != self.step * self.cfg.batch_size:
                raise ValueError("its data position does not match its step and batch size")
            rng = state["rng"]
            if self.dist.rank < len(rng):
                _set_rng_state(rng[self.dist.rank], self.device)
            else:  # more processes than when saved: this one's dropout stream starts afresh
                _seed_process(self.cfg.seed + self.step, self.dist.rank)
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
            raise CheckpointError(f"{path} does not fit this run: {one_line(e)}") from None

    # --- pictures and metrics ---------------------------------------------------------------

    def draw_samples(self) -> Path | None:
        """A picture of num_sample samples from the EMA weights (main process only)."""
        cfg = self.cfg
        n, k = cfg.num_sample, self.num_classes
        cond = nrow = None
        if cfg.class_cond:  # classes in blocks: with n a multiple of k, one row per class
            cond = torch.arange(n, device=self.device) * k // n  # (n,)
            nrow = n // k if n % k == 0 else None
        image = len(self.shape) == 3  # images are in [-1, 1]: clamp x0_hat there
        x = sample(self.ema.module, self.schedule, shape=(n, *self.shape),
                   prediction=cfg.prediction, sampler=cfg.sampler, steps=cfg.sample_steps,
                   seed=cfg.seed, cond=cond, device=self.device, clip_x0=1.0 if image else None,
                   bf16=cfg.bf16)
        (self.run / SAMPLES).mkdir(parents=True, exist_ok=True)
        return save_samples(x, self.run / SAMPLES / f"step-{self.step:08d}.png",
                            title=f"{cfg.net} on {cfg.dataset}, step {self.step} (EMA)",
                            nrow=nrow)

    def _try_samples(self) -> None:
        """draw_samples, where a sampling failure (NaN) is reported and training goes on."""
        try:
            self.draw_samples()
        except SamplingError as e:
            print(f"difflab: warning: no samples at step {self.step}: {one_line(e)}",
                  file=sys.stderr, flush=True)

    def resolved(self) -> dict[str, Any]:
        return {"world_size": self.dist.world_size, "device": str(self.device),
                "data_shape": list(self.shape), "num_classes": self.num_classes,
                "dataset_size": len(self.dataset), "net_kwargs": self.net_kwargs,
                "net_class": type(self.model).__name__,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "torch_version": torch.__version__}

    def write_config(self) -> None:
        from .. import __version__

        doc = {"difflab_version": __version__, "config": self.cfg.to_dict(),
               "resolved": self.resolved()}
        _write_text_atomic(self.run / CONFIG_FILE, json.dumps(doc, indent=2) + "\n")

    # --- the loop -----------------------------------------------------------------------------

    def fit(self) -> None:
        cfg, d = self.cfg, self.dist
        main = d.is_main
        log = bar = loader_iter = None
        saved_at = sampled_at = self.step
        interval_time, interval_steps = 0.0, 0  # this process's speed since the last line
        stop = False
        try:
            if main:
                log = open(self.run / METRICS_FILE, "a")  # noqa: SIM115
            if main and cfg.progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=cfg.steps, initial=self.step, desc="train", dynamic_ncols=True)
            loader_iter = iter(self._loader())
            with _StopRequest() as request:
                while self.step < cfg.steps and not stop:
                    lr = self.opt.param_groups[0]["lr"]
                    t0 = time.perf_counter()
                    loss, stop = self._train_step(loader_iter, request)
                    if not np.isfinite(loss):
                        last = latest_checkpoint(self.ckpt_root) if main else None
                        where = (f"the last good checkpoint is {last}" if last is not None
                                 else "no checkpoint was written yet")
                        raise TrainError(f"the loss or its gradient is {loss} at step "
                                         f"{self.step + 1}: training stopped, {where}; lower "
                                         f"lr or set grad_clip and start again with force=True "
                                         f"(resuming would repeat the same steps exactly)")
                    interval_time += time.perf_counter() - t0
                    interval_steps += 1
                    self.log_acc = [self.log_acc[0] + loss, self.log_acc[1] + 1]
                    if bar is not None:
                        bar.update(1)
                    on_grid = self.step % cfg.log_every == 0
                    if on_grid or self.step == cfg.steps:
                        if log is not None:
                            rec = {"step": self.step, "loss": self.log_acc[0] / self.log_acc[1],
                                   "lr": lr, "images_per_s": interval_steps * cfg.batch_size
                                   / max(interval_time, 1e-9)}
                            log.write(json.dumps(rec) + "\n")
                            log.flush()
                            if bar is not None:
                                bar.set_postfix(loss=f"{rec['loss']:.4f}", refresh=False)
                        if on_grid:  # a run's last line off the grid keeps the interval open,
                            self.log_acc = [0.0, 0]  # should it be extended later
                        interval_time, interval_steps = 0.0, 0
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save()
                        saved_at = self.step
                    if main and cfg.sample_every and self.step % cfg.sample_every == 0:
                        self._try_samples()
                        sampled_at = self.step
                if self.step > saved_at:
                    self.save()
                if stop and self.step < cfg.steps:
                    last = latest_checkpoint(self.ckpt_root) if main else None
                    raise TrainInterrupted(f"training interrupted at step {self.step}: saved "
                                           f"{last}; continue with resume=True", last)
                if main and cfg.sample_every and self.step > sampled_at:
                    self._try_samples()
        finally:
            if bar is not None:
                bar.close()
            if log is not None:
                log.close()
            del loader_iter  # stops DataLoader workers


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
    problem = _check_run_dir(cfg, resume, force) if d.is_main else None
    problem = d.broadcast(problem)
    if problem:
        raise TrainError(problem)
    trainer = Trainer(cfg, d, net=net, dataset=dataset)
    run = trainer.run
    if resume:
        ckpt = d.broadcast(str(latest_checkpoint(trainer.ckpt_root)) if d.is_main else None)
        trainer.restore(Path(ckpt))
        if cfg.steps < trainer.step:
            raise TrainError(f"{run} is already at step {trainer.step}, past steps = "
                             f"{cfg.steps}: ask for more steps to continue it")
        if d.is_main:
            _say(cfg, f"resumed {run} from {ckpt} (step {trainer.step})")
    if d.is_main:
        if force and not resume:
            _clear_run_dir(run)
        run.mkdir(parents=True, exist_ok=True)
        remove_stale(trainer.ckpt_root)
        if resume:
            _truncate_metrics(run / METRICS_FILE, trainer.step)
        trainer.write_config()
    d.barrier()
    t0 = time.perf_counter()
    start = trainer.step
    trainer.fit()
    d.barrier()
    if d.is_main:
        _say(cfg, f"trained steps {start}..{trainer.step} in {time.perf_counter() - t0:.1f} s;"
                  f" run directory {run}")
    return run


def _say(cfg: TrainConfig, msg: str) -> None:
    if cfg.progress:
        print(f"difflab: {msg}", file=sys.stderr, flush=True)


def load_run(run_dir: str | Path, *, net: nn.Module | Callable[[], nn.Module] | None = None,
             device: str | torch.device = "cpu", checkpoint: str | Path | None = None
             ) -> tuple[TrainConfig, nn.Module, nn.Module]:
    """(config, model, ema_model) of a run's latest checkpoint (or of `checkpoint`).

    Both networks are in eval mode on `device`, with `.prediction` set from the config (and
    `.data_shape`, one sample's shape as trained), so that
    `difflab.sample(ema_model, config.schedule, ...)` samples from them. net: the network (or a
    function making one) when the run was trained with train(..., net=...).
    """
    run = Path(run_dir)
    cfg = load_config(run)
    resolved = _read_run_json(run).get("resolved", {}) or {}
    ckpt = Path(checkpoint) if checkpoint is not None else latest_checkpoint(run / CHECKPOINTS)
    if ckpt is None:
        raise CheckpointError(f"{run} has no checkpoint")
    model_sd, ema_sd = load_weights(ckpt / MODEL_FILE), load_weights(ckpt / EMA_FILE)
    if net is None:
        model = build_net(cfg.net, resolved.get("net_kwargs", net_overrides(cfg, None)))
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


__all__ = ["train", "load_run", "load_config", "read_metrics", "Trainer", "TrainInterrupted",
           "build_net", "build_dataset"]
