"""The `policy` task: Diffusion Policy (Chi et al. 2023) trains a network to denoise an action
chunk A (Tp, action_dim) conditioned on the observation window O (To, obs_dim) before it.

The dataset (difflab.data.trajectories.TrajectoryDataset) gives normalised items (O, A) and its
normaliser, which the task keeps in the run directory (normalizer.json) for the policy. The
network is called net(A_t (B, Tp, action_dim), t (B,), O (B, To, obs_dim)); there is no
condition dropout (the paper's policy is always conditioned).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..data.trajectories import TrajectoryNormalizer
from ..errors import one_line
from ..losses import diffusion_loss, sample_t
from ..policy import (
    BINS,
    BinnedPolicy,
    DiffusionPolicy,
    RegressionPolicy,
    bin_index,
    regression_inputs,
)
from ..predictions import check_net_output
from ..sampling import SamplingError, nfe_grid, sample
from ..schedules import Schedule
from .config import TrainConfig, TrainError
from .hooks import Hook, HookContext, register_hook
from .parts import build_schedule
from .rundir import RunDir, load_config, load_run, read_resolved
from .tasks import Task, module_device, register_task

NEEDS = ("obs_dim", "action_dim", "n_obs_steps", "horizon", "n_action_steps", "normalizer")


@register_task("policy")
class ActionChunks(Task):
    """Action chunks conditioned on observation windows (Chi et al. 2023, eq. 4-5)."""

    def __init__(self, cfg: TrainConfig, dataset: Dataset, schedule: Schedule):
        super().__init__(cfg, dataset, schedule)
        missing = [a for a in NEEDS if not hasattr(dataset, a)]
        if missing:
            raise TrainError(f"task policy needs a trajectory dataset (difflab.data."
                             f"trajectories); {cfg.dataset!r} has no {', '.join(missing)}")
        if cfg.task_kwargs or cfg.class_cond:
            raise TrainError("task policy takes no task_kwargs and no class_cond: the windows "
                             "are set by the dataset (n_obs_steps, horizon, n_action_steps)")
        d = dataset
        self.obs_shape = (d.n_obs_steps, d.obs_dim)
        self.sample_shape = (d.horizon, d.action_dim)
        try:
            sample_t(1, schedule, cfg.time_sampling, generator=torch.Generator())
        except ValueError as e:
            raise TrainError(one_line(e)) from None

    def net_kwargs(self) -> dict[str, Any]:
        d = self.dataset
        return {"action_dim": d.action_dim, "horizon": d.horizon, "obs_dim": d.obs_dim,
                "n_obs_steps": d.n_obs_steps}

    def resolved(self) -> dict[str, Any]:
        d = self.dataset
        out = {**super().resolved(), **self.net_kwargs(), "n_action_steps": d.n_action_steps}
        if hasattr(d, "obs_kind"):  # Push-T: what rollouts need to observe the simulator
            out["pusht"] = {"obs": d.obs_kind, "keypoints_local": d.keypoints_local.tolist()}
        return out

    def save(self, run: RunDir) -> None:
        self.dataset.normalizer.save(run.normalizer_file)

    def draws(self, g: torch.Generator, n: int) -> dict[str, Tensor]:
        return {"t": sample_t(n, self.schedule, self.cfg.time_sampling, generator=g),  # (n,)
                "eps": torch.randn((n, *self.sample_shape), generator=g)}  # (n, Tp, A)

    def loss(self, net, batch, draws: dict[str, Tensor], device: torch.device) -> Tensor:
        obs, action = (b.to(device, non_blocking=True) for b in batch)  # (B, To, O), (B, Tp, A)
        return diffusion_loss(net, action, self.schedule, prediction=self.cfg.prediction,
                              weighting=self.cfg.weighting, cond=obs, t=draws["t"].to(device),
                              eps=draws["eps"].to(device))

    def check(self, net: nn.Module, batch, device: torch.device) -> None:
        """One forward pass (eval mode) before anything is written; a misfit is one line."""
        obs, action = (b.to(device) for b in batch)
        training = net.training
        net.eval()
        try:
            with torch.no_grad():
                self._check_output(net, obs, action)
        except (RuntimeError, ValueError, TypeError, IndexError) as e:
            raise TrainError(f"network {self.cfg.net!r} does not fit action chunks "
                             f"{tuple(action.shape[1:])} with observations "
                             f"{tuple(obs.shape[1:])}: {one_line(e)} (--traceback shows "
                             f"where)") from e
        finally:
            net.train(training)

    def _check_output(self, net, obs: Tensor, action: Tensor) -> None:
        out = net(action, torch.full((action.shape[0],), 0.5, device=action.device), obs)
        check_net_output(out, action)

    def preview(self, model, path: Path, *, title: str = "") -> Path | None:
        """Sampled chunks (colours) against the demonstrated one (black) for a few windows of
        the data, in the first two action dimensions (normalised units)."""
        from ..pictures import chunk_panels

        cfg, dev = self.cfg, module_device(model)
        idx = torch.linspace(0, len(self.dataset) - 1, 6).long().tolist()
        obs, action = (torch.stack(x) for x in zip(*[self.dataset[i] for i in idx], strict=True))
        k = max(1, cfg.num_sample // len(idx))
        x = sample(model, self.schedule, shape=(len(idx) * k, *self.sample_shape),
                   prediction=cfg.prediction, sampler=cfg.sampler, steps=cfg.sample_steps,
                   seed=cfg.seed, cond=obs.repeat_interleave(k, 0).to(dev), device=dev,
                   clip_x0=1.0, bf16=cfg.bf16)
        path.parent.mkdir(parents=True, exist_ok=True)
        return chunk_panels(action, x.reshape(len(idx), k, *self.sample_shape).cpu(), path,
                            title=title)





@register_task("policy-mse")
class ChunkRegression(ActionChunks):
    """The baseline: the same network predicts the chunk from the observations alone,
    net(0, 1, O), fitted by mean squared error (no noise, no times)."""

    def draws(self, g: torch.Generator, n: int) -> dict[str, Tensor]:
        return {}

    def loss(self, net, batch, draws: dict[str, Tensor], device: torch.device) -> Tensor:
        obs, action = (b.to(device, non_blocking=True) for b in batch)  # (B, To, O), (B, Tp, A)
        x, t = regression_inputs(obs, *self.sample_shape)
        return ((net(x, t, obs).float() - action) ** 2).mean()

    def preview(self, model, path: Path, *, title: str = "") -> Path | None:
        return None


@register_task("policy-binned")
class ChunkBinned(ChunkRegression):
    """The binned-token baseline: net(0, 1, O) gives action_dim x BINS logits a step, fitted
    by cross-entropy to the bins of the demonstrated actions."""

    def net_kwargs(self) -> dict[str, Any]:
        return {**super().net_kwargs(), "out_dim": self.dataset.action_dim * BINS}

    def loss(self, net, batch, draws: dict[str, Tensor], device: torch.device) -> Tensor:
        obs, action = (b.to(device, non_blocking=True) for b in batch)  # (B, To, O), (B, Tp, A)
        x, t = regression_inputs(obs, *self.sample_shape)
        logits = net(x, t, obs).float().reshape(-1, BINS)  # (B Tp A, BINS)
        return torch.nn.functional.cross_entropy(logits, bin_index(action).reshape(-1))

    def _check_output(self, net, obs: Tensor, action: Tensor) -> None:
        x, t = regression_inputs(obs, *self.sample_shape)
        out = net(x, t, obs)
        if tuple(out.shape) != (*action.shape[:2], action.shape[2] * BINS):
            raise ValueError(f"task policy-binned needs a network with out_dim = action_dim x "
                             f"{BINS} = {action.shape[2] * BINS}; it returns "
                             f"{tuple(out.shape)}")


@register_hook("pusht_rollout")
class PushTRollout(Hook):
    """The EMA policy scored in the Push-T simulator as the paper scores it (difflab.eval.pusht:
    the first `episodes` of the 50 test starts, at most `max_steps` steps). Metrics: score,
    success_rate, seconds_per_chunk."""

    @dataclass
    class Options:
        episodes: int = 50
        """How many of the paper's 50 test starts."""
        max_steps: int = 300
        sampler: str = "ddpm"
        steps: int = 100

        def __post_init__(self):
            ok = (isinstance(self.episodes, int) and 1 <= self.episodes <= 50
                  and isinstance(self.max_steps, int) and self.max_steps >= 1)
            if not ok:
                raise TrainError(f"hook pusht_rollout: episodes must be an integer in 1..50 and "
                                 f"max_steps a positive integer, got {self.episodes!r} and "
                                 f"{self.max_steps!r}")

    def __init__(self, every: int, cfg: TrainConfig, task, **options):
        super().__init__(every, cfg, task, **options)
        if not isinstance(task, ActionChunks) or not hasattr(task.dataset, "obs_kind"):
            raise TrainError("hook pusht_rollout needs a policy task on the pusht dataset")
        if not isinstance(task, ChunkRegression):  # the sampler and its budget, now
            try:
                nfe_grid(self.options.sampler, self.options.steps, task.schedule)
            except ValueError as e:
                raise TrainError(f"hook pusht_rollout: {one_line(e)}") from None
        if every > 0:
            from ..eval.pusht import make_env

            make_env().close()  # the simulator is there, before training starts

    def __call__(self, ctx: HookContext) -> dict[str, float]:
        from ..eval.pusht import paper_rollouts

        d, o = ctx.task.dataset, self.options
        policy = policy_from(ctx.task, ctx.ema, sampler=o.sampler, steps=o.steps,
                             seed=self.cfg.seed, device=ctx.device)
        try:
            out = paper_rollouts(policy, o.episodes, obs=d.obs_kind,
                                 keypoints_local=d.keypoints_local, max_steps=o.max_steps)
        except SamplingError as e:
            print(f"difflab: warning: no Push-T rollouts at step {ctx.step}: {one_line(e)}",
                  file=sys.stderr, flush=True)
            return {}
        return {k: out[k] for k in ("score", "success_rate", "seconds_per_chunk")}


POLICIES = {"policy": DiffusionPolicy, "policy-mse": RegressionPolicy,
            "policy-binned": BinnedPolicy}  # task name -> the policy of its networks
WINDOW = ("obs_dim", "action_dim", "n_obs_steps", "horizon", "n_action_steps")


def policy_from(task: ActionChunks, model, **kw):
    """The policy of a network trained by `task` (its dataset's windows and normaliser)."""
    d = task.dataset
    return POLICIES[task.name](model, task.schedule, d.normalizer,
                               **{k: getattr(d, k) for k in WINDOW},
                               prediction=task.cfg.prediction, **kw)


def load_policy(run_dir: str | Path, *, sampler: str = "ddpm", steps: int = 100, seed: int = 0,
                device: str | torch.device = "cpu", net=None,
                checkpoint: str | Path | None = None):
    """The DiffusionPolicy of a `policy` run: its EMA network, schedule and normaliser.
    net: the network (or a function making one) when it was trained with train(..., net=)."""

    run = RunDir(run_dir)
    cfg = load_config(run.path)
    if cfg.task not in POLICIES or not run.normalizer_file.is_file():
        raise TrainError(f"{run} is not a policy run (task {cfg.task!r}"
                         f"{'' if run.normalizer_file.is_file() else ', no normalizer.json'}): "
                         f"train one with task policy on a trajectory dataset")
    _, _, ema = load_run(run.path, net=net, device=device, checkpoint=checkpoint)
    r = read_resolved(run.path)
    return POLICIES[cfg.task](ema, build_schedule(cfg),
                              TrajectoryNormalizer.load(run.normalizer_file),
                              **{k: r[k] for k in WINDOW}, prediction=cfg.prediction,
                              sampler=sampler, steps=steps, seed=seed, device=device)


__all__ = ["ActionChunks", "ChunkRegression", "ChunkBinned", "PushTRollout", "policy_from",
           "load_policy"]
