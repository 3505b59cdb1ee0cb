"""Pictures of a diffusion: sample grids, denoising animations, loss curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor


def to_uint8_grid(x: Tensor, nrow: int | None = None) -> np.ndarray:
    """Images (B, C, H, W) in [-1, 1] as one uint8 grid (H', W') or (H', W', 3)."""
    from .train.images import image_grid

    return image_grid(x, nrow=nrow)


def denoising_gif(frames: list[tuple[Tensor, Tensor]], path: str | Path, *, nrow: int | None = None,
                  ms_per_frame: int = 120) -> Path:
    """A GIF of the denoising: each frame shows x_t (left) and x0_hat (right) at one step.

    frames: (x_t, x0_hat) pairs, each (B, C, H, W) in data scale; x_t is divided by its own
    scale sqrt(alpha^2 + sigma^2) ~ max |x_t| so that early, noisy frames stay visible."""
    from PIL import Image

    images = []
    for x_t, x0_hat in frames:
        scale = max(1.0, float(x_t.abs().amax()))
        left = to_uint8_grid((x_t / scale).clamp(-1, 1), nrow)
        right = to_uint8_grid(x0_hat.clamp(-1, 1), nrow)
        gap = np.full((left.shape[0], 8) + left.shape[2:], 255, dtype=np.uint8)
        images.append(Image.fromarray(np.concatenate([left, gap, right], axis=1)))
    images += [images[-1]] * 8  # hold the result
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    return path


def loss_curve(metrics_jsonl: str | Path, path: str | Path, title: str = "") -> Path:
    """A PNG of the training loss (and its running mean) from a run's metrics.jsonl."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line]
    rows = [r for r in rows if "loss" in r]
    steps = np.array([r["step"] for r in rows])
    loss = np.array([r["loss"] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, lw=1, alpha=0.5, label="loss (per log interval)")
    if len(loss) >= 5:
        k = max(2, len(loss) // 20)
        ax.plot(steps[k - 1:], np.convolve(loss, np.ones(k) / k, mode="valid"), lw=2,
                label=f"running mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["denoising_gif", "loss_curve", "to_uint8_grid"]
