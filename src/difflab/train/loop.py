"""The training loop (DESIGN.md section 4): AdamW with warm-up, clipping, accumulation, EMA,
bf16 autocast, DDP, stop requests, checkpoints, logging, progress and hooks. What a batch is and
what its loss is belong to the task (tasks.py); every-N-steps jobs to hooks (hooks.py).

Exact resume: the state after step s is a function of the config and s alone. The data order and
each step's random draws come from (seed, step) (batches.py); the weights, EMA, AdamW moments,
LR schedule and every RNG the network may use (dropout: torch, CUDA, numpy, python, per process)
are saved, so training 2N steps straight and N + stop + resume + N steps give identical weights.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .._version import __version__
from ..errors import one_line
from . import batches
from .checkpoint import EMA_FILE, MODEL_FILE, CheckpointError, fit_weights, load_checkpoint
from .config import TrainConfig, TrainError
from .distributed import Dist
from .ema import make_ema
from .hooks import Hook, HookContext, hook_record
from .rng import kept_rng, rng_state, seed_process, set_rng_state
from .rundir import MetricsLog, RunDir, save_checkpoint, training_record
from .stop import StopRequest, TrainInterrupted, ignore_stop_signals
from .tasks import Task


class Loop:
    """One training run on this process. Use `train()` (start.py); this is its machinery.

    model: the network, on dist.device, its initial weights the same on every process."""

    def __init__(self, cfg: TrainConfig, dist: Dist, task: Task, model: nn.Module,
                 hooks: list[Hook], run: RunDir):
        self.cfg, self.dist, self.device, self.task, self.hooks, self.run = (
            cfg, dist, dist.device, task, hooks, run)
        try:
            self.chunk = batches.chunk_size(cfg.batch_size, cfg.grad_accum, dist.world_size)
        except ValueError as e:
            raise TrainError(str(e)) from None
        self.model = model
        self.model.train()
        self.ema = make_ema(self.model, cfg.ema_decay, cfg.ema_warmup, cfg.ema_power)
        seed_process(cfg.seed, dist.rank)
        self.ddp = dist.wrap(self.model)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr,
                                     betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay)
        self.lr_schedule = torch.optim.lr_scheduler.LambdaLR(self.opt, self._lr_factor)
        self.step = 0
        # The loss summed over the steps since the last metrics line, and their count: kept in
        # the checkpoint so that a resumed run logs the same lines as a straight one.
        self.log_acc = [0.0, 0]

    def _lr_factor(self, s: int) -> float:
        """The learning rate of step s (0-based) over cfg.lr: linear warm-up, then constant or
        a cosine decay to 0 at cfg.steps."""
        w, total = self.cfg.warmup_steps, self.cfg.steps
        if w > 0 and s < w:
            return (s + 1) / w
        if self.cfg.lr_schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (s - w) / max(1, total - w))))
        return 1.0

    # --- one optimizer step -----------------------------------------------------------------

    def _net(self, x_t: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
            return self.ddp(x_t, t) if cond is None else self.ddp(x_t, t, cond)

    def _loader(self) -> DataLoader:
        cfg, d = self.cfg, self.dist
        start = self.step * cfg.batch_size
        sampler = batches.StepBatches(len(self.task.dataset), cfg.seed, cfg.batch_size,
                                      cfg.grad_accum, d.rank, d.world_size, start=start)
        gen = torch.Generator().manual_seed(batches.derive_seed(cfg.seed, batches.LOADER, start))
        return DataLoader(self.task.dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
                          pin_memory=self.device.type == "cuda", generator=gen,
                          worker_init_fn=ignore_stop_signals if cfg.num_workers else None)

    def train_step(self, loader_iter, request: StopRequest) -> tuple[float, bool]:
        """One optimizer step; returns (the global batch's mean loss, stop requested anywhere).
        A non-finite loss or gradient norm returns NaN without touching the weights."""
        cfg, d, dev = self.cfg, self.dist, self.device
        draws = self.task.draws(batches.step_generator(cfg.seed, self.step), cfg.batch_size)
        loss_sum = torch.zeros((), device=dev)
        for m in range(cfg.grad_accum):  # micro-batch m of this process: chunk m * K + rank
            lo = (m * d.world_size + d.rank) * self.chunk
            part = {k: v[lo:lo + self.chunk] for k, v in draws.items()}
            with d.no_sync(self.ddp, skip=m < cfg.grad_accum - 1):
                loss = self.task.loss(self._net, next(loader_iter), part, dev)
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

    # --- checkpoints ------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The state file's contents (collective: every process must call it)."""
        rng = self.dist.gather(rng_state(self.device))
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
        return save_checkpoint(self.run.checkpoints, self.step, model=self.model.state_dict(),
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
                set_rng_state(rng[self.dist.rank], self.device)
            else:  # more processes than when saved: this one's dropout stream starts afresh
                seed_process(self.cfg.seed + self.step, self.dist.rank)
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
            raise CheckpointError(f"{path} does not fit this run: {one_line(e)}") from None

    # --- hooks and metrics ------------------------------------------------------------------

    def run_hooks(self, log: MetricsLog | None, final: bool = False) -> None:
        """The hooks due at this step (final: those not yet run at it); main process only.
        Every RNG is put back as it was: a hook cannot change the trained weights."""
        due = [h for h in self.hooks
               if (h.last_step != self.step if final else h.due(self.step))]
        if not due or not self.dist.is_main:
            return
        ctx = HookContext(self.step, self.task, self.ema.module, self.run, self.device)
        for hook in due:
            with kept_rng(self.device), torch.no_grad():
                metrics = hook_record(hook, self.step, hook(ctx))
            hook.last_step = self.step
            if metrics and log is not None:
                log.write(metrics)

    def _log_line(self, log: MetricsLog | None, bar, lr: float, speed: float) -> None:
        """A training line: the loss averaged since the last one, lr, samples per second."""
        rec = training_record(self.step, self.log_acc[0] / self.log_acc[1], lr, speed)
        if log is not None:
            log.write(rec)
        if bar is not None:
            bar.set_postfix(loss=f"{rec['loss']:.4f}", refresh=False)

    def _stop_on_bad_loss(self, loss: float) -> None:
        if np.isfinite(loss):
            return
        last = self.run.latest_checkpoint() if self.dist.is_main else None
        where = (f"the last good checkpoint is {last}" if last is not None
                 else "no checkpoint was written yet")
        raise TrainError(f"the loss or its gradient is {loss} at step {self.step + 1}: "
                         f"training stopped, {where}; lower lr or set grad_clip and start again "
                         f"with force=True (resuming would repeat the same steps exactly)")

    # --- the loop ---------------------------------------------------------------------------

    def _open(self, stack: ExitStack) -> tuple[MetricsLog | None, Any]:
        """The metrics log and progress bar (main process), closed with the stack."""
        log = bar = None
        if self.dist.is_main:
            log = MetricsLog(self.run.metrics_file)
            stack.callback(log.close)
        if self.dist.is_main and self.cfg.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.cfg.steps, initial=self.step, desc="train", dynamic_ncols=True)
            stack.callback(bar.close)
        return log, bar

    def _steps(self, loader_iter, request: StopRequest, log: MetricsLog | None, bar) -> bool:
        """Optimizer steps to cfg.steps or a stop request (then True), with metrics lines,
        checkpoints and hooks on their intervals."""
        cfg, stop = self.cfg, False
        interval_time, interval_steps = 0.0, 0  # this process's speed since the last line
        while self.step < cfg.steps and not stop:
            lr, t0 = self.opt.param_groups[0]["lr"], time.perf_counter()
            loss, stop = self.train_step(loader_iter, request)
            self._stop_on_bad_loss(loss)
            interval_time += time.perf_counter() - t0
            interval_steps += 1
            self.log_acc = [self.log_acc[0] + loss, self.log_acc[1] + 1]
            if bar is not None:
                bar.update(1)
            on_grid = self.step % cfg.log_every == 0
            if on_grid or self.step == cfg.steps:
                self._log_line(log, bar, lr, interval_steps * cfg.batch_size
                               / max(interval_time, 1e-9))
                if on_grid:  # a run's last line off the grid keeps the interval open,
                    self.log_acc = [0.0, 0]  # should it be extended later
                interval_time, interval_steps = 0.0, 0
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save()
                self.saved_at = self.step
            self.run_hooks(log)
        return stop

    def fit(self) -> None:
        """Train to cfg.steps, checkpoint, run the hooks not yet run at the last step; on a stop
        request, checkpoint and raise TrainInterrupted."""
        self.saved_at = self.step
        for hook in self.hooks:
            hook.last_step = self.step  # what ran before a resume is not repeated at the end
        with ExitStack() as stack:
            log, bar = self._open(stack)
            request = stack.enter_context(StopRequest())
            loader_iter = iter(self._loader())
            try:
                stop = self._steps(loader_iter, request, log, bar)
            finally:
                del loader_iter  # stops DataLoader workers
            if self.step > self.saved_at:
                self.save()
            if stop and self.step < self.cfg.steps:
                last = self.run.latest_checkpoint() if self.dist.is_main else None
                raise TrainInterrupted(f"training interrupted at step {self.step}: saved "
                                       f"{last}; continue with resume=True", last)
            self.run_hooks(log, final=True)


__all__ = ["Loop"]
