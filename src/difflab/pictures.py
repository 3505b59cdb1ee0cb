"""Pictures of a diffusion: image grids as PNG (no dependency), scatter plots of 2-D points,
denoising animations, loss curves."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def write_png(path: str | Path, img: np.ndarray) -> None:
    """Write a uint8 image (H, W) grey or (H, W, 3) RGB as an 8-bit PNG."""
    img = np.ascontiguousarray(img, dtype=np.uint8)
    if img.ndim == 2:
        color = 0
    elif img.ndim == 3 and img.shape[2] == 3:
        color = 2
    else:
        raise ValueError(f"write_png needs (H, W) or (H, W, 3) uint8, got {img.shape}")
    h, w = img.shape[:2]
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    Path(path).write_bytes(png)


def image_grid(x: Tensor, nrow: int | None = None, pad: int = 2, min_size: int = 32
               ) -> np.ndarray:
    """Images (B, C, H, W) in [-1, 1] as one uint8 grid, C = 1 (grey) or 3 (RGB); images
    smaller than min_size pixels are enlarged by an integer factor (nearest neighbour)."""
    x = x.detach().float().cpu()
    B, C, H, W = x.shape
    if C not in (1, 3):
        raise ValueError(f"an image grid needs 1 or 3 channels, got {C}")
    if B == 0:
        raise ValueError("an image grid needs at least one image")
    k = max(1, math.ceil(min_size / max(H, W)))
    img = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()  # (B, C, H, W)
    img = img.repeat(k, axis=2).repeat(k, axis=3)
    H, W = H * k, W * k
    nrow = nrow or math.ceil(math.sqrt(B))
    ncol = math.ceil(B / nrow)
    grid = np.full((C, pad + ncol * (H + pad), pad + nrow * (W + pad)), 255, np.uint8)
    for i in range(B):
        r, c = divmod(i, nrow)
        y0, x0 = pad + r * (H + pad), pad + c * (W + pad)
        grid[:, y0:y0 + H, x0:x0 + W] = img[i]
    return grid[0] if C == 1 else grid.transpose(1, 2, 0)


def class_grid(num: int, num_classes: int) -> tuple[Tensor, int | None]:
    """Labels (num,) for a picture of num class-conditional samples, the classes in equal
    blocks, and the images per row that puts one class on each row (None when num is not a
    multiple of num_classes)."""
    labels = torch.arange(num, dtype=torch.long) * num_classes // num  # (num,)
    return labels, (num // num_classes if num % num_classes == 0 else None)


def save_samples(x: Tensor, path: str | Path, title: str = "", nrow: int | None = None
                 ) -> Path | None:
    """Save samples as a picture: a grid for images (B, C, H, W) with nrow per row, a scatter
    plot of the first two coordinates for vectors (B, D >= 2). Returns the path, or None for
    other shapes."""
    path = Path(path)
    if x.ndim == 4 and x.shape[1] in (1, 3):
        write_png(path, image_grid(x, nrow=nrow))
        return path
    if x.ndim == 2 and x.shape[1] >= 2:
        scatter_png(x[:, :2].detach().float().cpu().numpy(), path, title)
        return path
    return None


def scatter_png(points: np.ndarray, path: str | Path, title: str = "") -> None:
    """A scatter plot of (N, 2) points: matplotlib if installed, else a 2-D histogram image."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        write_png(path, _density_image(np.asarray(points)))
        return
    scatter_panels([(title, points)], path, cols=1, size=4.0)


def scatter_panels(panels: list[tuple[str, np.ndarray]], path: str | Path, *, title: str = "",
                   cols: int = 5, lim: float | None = None, colors: dict[str, str] | None = None,
                   size: float = 3.0) -> None:
    """A grid of scatter plots of (N, 2) points, one per (name, points) panel (matplotlib).
    lim: a shared [-lim, lim] square for every panel; None: each panel fits its points."""
    if not panels:
        raise ValueError("scatter_panels needs at least one (name, points) panel")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(1, min(cols, len(panels)))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (name, x) in zip(axes.flat, panels, strict=False):
        x = np.asarray(x, dtype=np.float64)
        x = x[np.isfinite(x).all(1)]
        ax.set_axis_on()
        ax.scatter(x[:, 0], x[:, 1], s=2 if len(x) > 2000 else 6, alpha=0.5, linewidths=0,
                   color=(colors or {}).get(name, "C0"))
        if lim is not None:
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        if name:
            ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _density_image(points: np.ndarray, size: int = 256) -> np.ndarray:
    finite = points[np.isfinite(points).all(1)]
    lim = float(np.abs(finite).max()) * 1.05 if len(finite) else 1.0
    h, _, _ = np.histogram2d(finite[:, 1], finite[:, 0], bins=size,
                             range=[[-lim, lim], [-lim, lim]])
    img = 255 - (255 * np.sqrt(h / max(h.max(), 1))).astype(np.uint8)
    return img[::-1]  # y up


def chunk_panels(true: Tensor, sampled: Tensor, path: str | Path, *, title: str = "") -> Path:
    """Action chunks in their first two dimensions, one panel per observation window: the
    demonstrated chunk true[i] (T, D) in black, the sampled ones sampled[i] (K, T, D) in colour,
    each starting at a dot (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = true.shape[0]
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, ax in zip(range(n), axes.flat, strict=False):
        ax.set_axis_on()
        for k, chunk in enumerate(sampled[i].detach().float().numpy()):
            ax.plot(chunk[:, 0], chunk[:, 1], lw=1, alpha=0.6, color=f"C{k % 10}")
            ax.plot(chunk[:1, 0], chunk[:1, 1], "o", ms=2, color=f"C{k % 10}")
        demo = true[i].detach().float().numpy()
        ax.plot(demo[:, 0], demo[:, 1], lw=2, color="k")
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(-1.1, 1.1)
        ax.set_aspect("equal")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def path_panels(panels: list[tuple[str, np.ndarray]], path: str | Path, *,
                circle: tuple[float, float, float] | None = None) -> Path:
    """Paths (N, K, 2) in panels side by side, one per (title, paths), with an optional round
    obstacle (x, y, radius) drawn in grey (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, (title, paths) in zip(axes[0], panels, strict=True):
        for p in np.asarray(paths):
            ax.plot(p[:, 0], p[:, 1], lw=0.7, alpha=0.6, color="C0")
        if circle is not None:
            ax.add_patch(plt.Circle(circle[:2], circle[2], color="0.5", alpha=0.5))
        ax.set_xlim(-1.1, 1.1)
        ax.set_ylim(-1.1, 1.1)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def denoising_gif(frames: list[tuple[Tensor, Tensor]], path: str | Path, *, nrow: int | None = None,
                  ms_per_frame: int = 120) -> Path:
    """A GIF of the denoising: each frame shows x_t (left) and x0_hat (right) at one step.

    frames: (x_t, x0_hat) pairs, each (B, C, H, W) in data scale; x_t is divided by its own
    scale sqrt(alpha^2 + sigma^2) ~ max |x_t| so that early, noisy frames stay visible."""
    from PIL import Image

    images = []
    for x_t, x0_hat in frames:
        scale = max(1.0, float(x_t.abs().amax()))
        left = image_grid((x_t / scale).clamp(-1, 1), nrow)
        right = image_grid(x0_hat.clamp(-1, 1), nrow)
        gap = np.full((left.shape[0], 8) + left.shape[2:], 255, dtype=np.uint8)
        images.append(Image.fromarray(np.concatenate([left, gap, right], axis=1)))
    images += [images[-1]] * 8  # hold the result
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    return path


def loss_curve(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """A PNG of the training loss (and its running mean) from a run's metrics records
    ({step, loss, ...}, as `difflab.train.read_metrics` gives them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


__all__ = ["write_png", "image_grid", "class_grid", "save_samples", "scatter_png", "scatter_panels",
           "denoising_gif", "loss_curve", "chunk_panels", "path_panels"]
