"""Named training configurations for `difflab train PRESET` (override any field after it)."""

from __future__ import annotations

from .config import TrainConfig

TRAIN_PRESETS: dict[str, TrainConfig] = {
    # the README demo: under 3 minutes on 2 CPU cores (7.4 steps/s), class-conditional digits
    "digits": TrainConfig(
        net="unet-digits", dataset="digits", class_cond=True, cond_drop=0.1, schedule="linear",
        prediction="v", batch_size=128, lr=2e-3, warmup_steps=100, steps=1200, ema_decay=0.999,
        sample_every=500, num_sample=100, sampler="unipc", sample_steps=20,
        checkpoint_every=500, log_every=25, run_dir="runs/digits"),
    # a 2-D toy: seconds on a CPU
    "moons": TrainConfig(
        net="mlp-2d", dataset="moons", schedule="linear", prediction="v", batch_size=256,
        lr=1e-3, warmup_steps=100, steps=3000, ema_decay=0.999, sample_every=1000,
        num_sample=2000, sampler="unipc", sample_steps=20, checkpoint_every=1000,
        run_dir="runs/moons"),
    "mnist": TrainConfig(
        net="unet-mnist", dataset="mnist", class_cond=True, schedule="linear", prediction="eps",
        batch_size=128, lr=2e-4, warmup_steps=1000, steps=50_000, ema_decay=0.9999,
        sample_every=2500, num_sample=100, sampler="unipc", sample_steps=20,
        checkpoint_every=2500, run_dir="runs/mnist"),
    # Ho et al. 2020's CIFAR-10 run: 800k steps at batch 128, lr 2e-4, warm-up 5000, EMA 0.9999
    "ddpm-cifar10": TrainConfig(
        net="ddpm-cifar10", dataset="cifar10", dataset_kwargs={"hflip": True},
        schedule="linear", prediction="eps", time_sampling="discrete", batch_size=128, lr=2e-4,
        warmup_steps=5000, steps=800_000, grad_clip=1.0, ema_decay=0.9999, sample_every=10_000,
        num_sample=64, sampler="unipc", sample_steps=20, checkpoint_every=10_000,
        run_dir="runs/ddpm-cifar10"),
    # Diffusion Policy on Push-T states (Chi et al. 2023, the low-dim U-Net run): To 2, Tp 16,
    # Ta 8 (the dataset's defaults), cosine schedule T = 100, eps, AdamW lr 1e-4 betas (0.95,
    # 0.999) weight decay 1e-6, 500 warm-up steps then cosine, batch 256, EMA power 0.75 up to
    # 0.9999, the paper's split (90 training episodes: 42 batches an epoch, 4500 epochs ~ 190k
    # steps). Give the data with --dataset-kwargs '{"root": "data/pusht"}'.
    "pusht": TrainConfig(
        task="policy", net="unet1d-pusht", dataset="pusht", dataset_kwargs={"split": "paper"},
        schedule="cosine", schedule_kwargs={"T": 100}, prediction="eps",
        time_sampling="discrete", batch_size=256, lr=1e-4, adam_betas=(0.95, 0.999),
        weight_decay=1e-6, warmup_steps=500, lr_schedule="cosine", steps=190_000,
        grad_clip=None, ema_decay=0.9999, ema_power=0.75, sample_every=10_000, num_sample=48,
        sampler="ddpm", sample_steps=100, checkpoint_every=10_000, run_dir="runs/pusht"),
    # the same at CPU size: unet1d-pusht-small (2.7M) trains at about 120 ms a step of 256 on 2
    # cores, so 50k steps take under 2 hours (the score it reaches is not measured yet)
    "pusht-small": TrainConfig(
        task="policy", net="unet1d-pusht-small", dataset="pusht",
        dataset_kwargs={"split": "paper"}, schedule="cosine", schedule_kwargs={"T": 100},
        prediction="eps", time_sampling="discrete", batch_size=256, lr=1e-4,
        adam_betas=(0.95, 0.999), weight_decay=1e-6, warmup_steps=500, lr_schedule="cosine",
        steps=50_000, grad_clip=None, ema_decay=0.9999, ema_power=0.75, sample_every=5000,
        num_sample=48, sampler="unipc", sample_steps=10, checkpoint_every=5000,
        run_dir="runs/pusht-small"),
}
