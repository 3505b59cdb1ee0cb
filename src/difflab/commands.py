"""What the `difflab` subcommands do, as functions: sample a run, describe it, run the demo."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from .pictures import class_grid
from .sampling import sample
from .train.rundir import RunDir


def _labels(num: int, num_classes: int, label: int | None) -> torch.Tensor | None:
    """Labels for class-conditional sampling: `label` everywhere, else each class in turn."""
    if num_classes <= 0:
        if label is not None:
            raise ValueError("this run is unconditional: drop --label")
        return None
    if label is not None and not 0 <= label < num_classes:
        raise ValueError(f"--label must be in 0..{num_classes - 1}, got {label}")
    if label is not None:
        return torch.full((num,), label, dtype=torch.long)
    return class_grid(num, num_classes)[0]  # rows of equal classes


def sample_run(run: Path, *, sampler: str = "unipc", steps: int = 20, num: int = 64,
               seed: int = 0, label: int | None = None, guidance: float | None = None,
               out: Path | None = None, gif: Path | None = None,
               bf16: bool = False) -> tuple[Path, Path | None]:
    """Sample a run's EMA weights into a PNG (grid or scatter) and optionally a denoising GIF.
    bf16: run the network under bfloat16 autocast."""
    from .pictures import denoising_gif, save_samples
    from .train import load_run

    if not isinstance(num, int) or num < 1:
        raise ValueError(f"--num must be a positive number of samples, got {num}")
    if out is not None and (Path(out).is_dir() or Path(out).suffix.lower() != ".png"):
        raise ValueError(f"--out {out}: give a file name ending in .png")
    if gif is not None and (Path(gif).is_dir() or Path(gif).suffix.lower() != ".gif"):
        raise ValueError(f"--gif {gif}: give a file name ending in .gif")
    config, _, ema = load_run(run)
    num_classes = getattr(getattr(ema, "config", None), "num_classes", 0) or 0
    cond = _labels(num, num_classes if config.class_cond else 0, label)
    if guidance is not None and cond is None:
        raise ValueError("--guidance needs a class-conditional run")
    uncond = None if cond is None else torch.full_like(cond, num_classes)
    shape = (num, *_item_shape(config, ema))
    image = len(shape) == 4
    if gif is not None and not image:
        raise ValueError("--gif needs an image run; this run's samples are points "
                         f"of shape {shape[1:]}")
    frames: list = []

    def keep(i, t, x, x0_hat):
        if gif is not None:
            frames.append((x.detach().clone(), x0_hat.detach().clone()))

    x = sample(ema, config.schedule, shape=shape, prediction=config.prediction, sampler=sampler,
               steps=steps, seed=seed, cond=cond, uncond=uncond if guidance else None,
               guidance=guidance, clip_x0=1.0 if image else None, callback=keep,
               bf16=bf16)
    out = Path(out) if out is not None else RunDir(run).sample_picture(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = save_samples(x, out, title=f"{sampler}, {steps} NFE",
                           nrow=_nrow(num, num_classes if cond is not None and label is None
                                      else 0))
    if written is None:
        raise ValueError(f"cannot draw samples of shape {tuple(x.shape[1:])} as a picture")
    gif_path = denoising_gif(frames, gif, nrow=_nrow(num, num_classes)) if (
        gif is not None and image) else None
    return written, gif_path


def _nrow(num: int, num_classes: int) -> int | None:
    return class_grid(num, num_classes)[1] if num_classes else None


def _item_shape(config, net) -> tuple[int, ...]:
    """The shape of one sample: as trained (config.json), else from the network's config (so no
    dataset files are needed)."""
    if getattr(net, "data_shape", None):
        return tuple(int(d) for d in net.data_shape)
    c = getattr(net, "config", None)
    if hasattr(c, "image_size"):  # U-Net
        return (c.in_channels, c.image_size, c.image_size)
    if hasattr(c, "input_size"):  # DiT
        return (c.in_channels, c.input_size, c.input_size)
    if hasattr(c, "dim"):  # MLP
        return (c.dim,)
    raise ValueError(f"cannot tell the sample shape of the run's network {type(net).__name__}")


def run_info(run: Path) -> str:
    """A few lines on what a run is: config, progress, last loss, hook metrics, checkpoints."""
    from .train import load_config, read_hook_metrics, read_metrics
    from .train.rundir import checkpoint_step

    run = RunDir(run)
    cfg = load_config(run.path)
    ckpts = run.list_checkpoints()
    rows = read_metrics(run.metrics_file)
    last = rows[-1] if rows else None
    done = checkpoint_step(ckpts[-1]) if ckpts else 0
    lines = [
        f"run          {run}",
        f"net          {cfg.net} {cfg.net_kwargs or ''}".rstrip(),
        f"data         {cfg.dataset} {cfg.dataset_kwargs or ''}"
        f"{' (class-conditional)' if cfg.class_cond else ''}".rstrip(),
        f"diffusion    {cfg.schedule} schedule, {cfg.prediction} prediction, "
        f"{cfg.weighting} weighting",
        f"training     {done} of {cfg.steps} steps, batch {cfg.batch_size}, lr {cfg.lr}, "
        f"EMA {cfg.ema_decay}{', bf16' if cfg.bf16 else ''}",
        f"last loss    {last['loss']:.4f} at step {last['step']}" if last else "last loss    -",
    ]
    latest: dict[str, tuple[int, float]] = {}  # metric -> (step, value), the last one logged
    for rec in read_hook_metrics(run.metrics_file):
        for k, v in rec.items():
            if k not in ("step", "hook") and isinstance(v, (int, float)):
                latest[f"{rec['hook']}.{k}" if k != rec["hook"] else k] = (rec["step"], v)
    lines += [f"{name:<12} {v:.4g} at step {step}" for name, (step, v) in latest.items()]
    lines.append("checkpoints  " + (", ".join(p.name for p in ckpts) if ckpts else "none"))
    return "\n".join(lines)


def demo_digits(out: Path, *, force: bool = True) -> Path:
    """Train `unet-digits` on the 8x8 digits (the `digits` preset), then write a sample grid
    (one row per class), a denoising GIF and the loss curve to `out`."""
    from .pictures import loss_curve
    from .train import read_metrics, train
    from .train.presets import TRAIN_PRESETS

    t0 = time.perf_counter()
    cfg = dataclasses.replace(TRAIN_PRESETS["digits"], run_dir=str(out))
    print(f"difflab demo: training {cfg.net} on {cfg.dataset} for {cfg.steps} steps "
          f"(class-conditional, batch {cfg.batch_size}) into {out}")
    run = RunDir(train(cfg, force=force))
    trained = time.perf_counter() - t0
    grid, gif = sample_run(run.path, sampler="unipc", steps=20, num=100, seed=0,
                           out=run.summary("samples.png"), gif=run.summary("denoising.gif"))
    curve = loss_curve(read_metrics(run.metrics_file), run.summary("loss.png"),
                       title=f"{cfg.net} on {cfg.dataset}")
    print(f"difflab demo: trained in {trained:.0f} s; wrote\n  {grid}  (100 samples, one row "
          f"per digit, unipc 20 NFE)\n  {gif}  (x_t and x0_hat over the steps)\n  {curve}  "
          f"(training loss)")
    return run.path


POLICY_DEMO = dict(schedule="cosine", schedule_kwargs={"T": 100}, prediction="eps",
                   net="unet1d-pusht-small", net_kwargs={"down_dims": [32, 64]}, steps=600,
                   batch_size=128, lr=2e-3, warmup_steps=50, ema_decay=0.999, ema_power=0.75,
                   sample_every=0, checkpoint_every=0, log_every=100, device="cpu")


def demo_policy(out: Path, *, force: bool = True) -> Path:
    """Train a diffusion policy and its MSE baseline (the same 1-D U-Net, data and chunking) on
    the bimodal toy, roll both out closed loop and draw their paths side by side (a PNG)."""
    from .data.toy_policy import OBSTACLE, bimodal_demos
    from .data.trajectories import TrajectoryDataset
    from .eval.rollouts import bimodal_rollouts
    from .pictures import path_panels
    from .train import TrainConfig, load_policy, train

    d = bimodal_demos(200, seed=0)
    data = TrajectoryDataset(d["obs"], d["action"], d["episode_ends"], n_obs_steps=2,
                             horizon=16, n_action_steps=8)
    panels, lines = [], []
    for task, name in (("policy", "diffusion policy (DDPM-100)"), ("policy-mse", "MSE")):
        cfg = TrainConfig(task=task, dataset="bimodal", run_dir=str(out / task), **POLICY_DEMO)
        print(f"difflab demo policy: training {name} ({cfg.net}, {cfg.steps} steps)")
        run = train(cfg, force=force, dataset=data)
        r = bimodal_rollouts(load_policy(run, sampler="ddpm", steps=100), n=100)
        panels.append((f"{name}: {100 * r['collision_rate']:.0f}% collide", r["paths"]))
        lines.append(f"{name}: collisions {r['collision_rate']:.2f}, left "
                     f"{r['left_fraction']:.2f}, right {r['right_fraction']:.2f}")
    picture = path_panels(panels, out / "bimodal.png", circle=OBSTACLE)
    print("\n".join(lines) + f"\nwrote {picture}")
    return picture


def demo_samplers(out: Path, n: int = 20000, schedule: str = "linear") -> Path:
    """Every sampler on the exact 2-D mixture at 5, 10, 20, 50 NFE: a table and a picture."""
    from .data.mixture import GaussianMixture
    from .eval.compare import (
        HEADER,
        format_row,
        format_table,
        noise_floor,
        plot_samples,
        sampler_table,
    )

    mixture = GaussianMixture.preset("2d")
    t0 = time.perf_counter()
    print(f"difflab demo samplers: every sampler on the exact `2d` Gaussian mixture, "
          f"{schedule} schedule, {n} samples each")
    print(HEADER)
    rows, kept = sampler_table(mixture, schedule, n=n,
                               progress=lambda r: print(format_row(r), flush=True))
    floor = noise_floor(mixture, n)
    print(f"sliced W2 noise floor (two true samples of {n}): {floor:.4f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "samplers.md").write_text(format_table(rows, floor) + "\n")
    picture = out / "samplers_10nfe.png"
    plot_samples(mixture, kept, picture, title=f"`2d` mixture, 10 NFE, {schedule} schedule "
                 "(rk45: adaptive)")
    print(f"wrote {out / 'samplers.md'} and {picture} in {time.perf_counter() - t0:.0f} s")
    return picture


def policy_eval(run: Path, *, episodes: int = 50, sampler: str = "ddpm", steps: int = 100,
                max_steps: int = 300, seed: int = 0, gif: Path | None = None) -> dict:
    """Score a Push-T policy run in the simulator as the paper does (difflab.eval.pusht); a GIF
    of the first episodes if asked. Returns the result (score, success_rate, ...)."""
    from .eval.pusht import paper_rollouts
    from .policy import DiffusionPolicy
    from .train import load_policy
    from .train.rundir import read_resolved

    if not isinstance(episodes, int) or not 1 <= episodes <= 50:
        raise ValueError(f"--episodes must be in 1..50 (the paper's test starts), got {episodes}")
    if gif is not None and (Path(gif).is_dir() or Path(gif).suffix.lower() != ".gif"):
        raise ValueError(f"--gif {gif}: give a file name ending in .gif")
    policy = load_policy(run, sampler=sampler, steps=steps, seed=seed)
    pusht = read_resolved(run).get("pusht")
    if pusht is None:
        raise ValueError(f"{run} is a policy run, but not on the pusht dataset")
    out = paper_rollouts(policy, episodes, obs=pusht["obs"],
                         keypoints_local=np.asarray(pusht["keypoints_local"]),
                         max_steps=max_steps, gif_episodes=4 if gif is not None else 0)
    if gif is not None:
        _rollout_gif(out["frames"], Path(gif))
    diffusion = type(policy).sample_chunk is DiffusionPolicy.sample_chunk
    out["sampling"] = f"{sampler} {steps} NFE" if diffusion else "one network call"
    return out


def _rollout_gif(frames: list[list], path: Path) -> Path:
    """The episodes' RGB frames side by side, each held at its last frame once it ended."""
    from PIL import Image

    n = max(len(f) for f in frames)
    tiles = [[f[min(k, len(f) - 1)] for f in frames] for k in range(0, n, 2)]
    images = [Image.fromarray(np.concatenate(row, axis=1)).resize((128 * len(row), 128))
              for row in tiles]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    return path
