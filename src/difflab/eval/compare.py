"""Compare samplers on the exact Gaussian-mixture test problem (DESIGN.md section 6).

Used by `difflab demo samplers` and `benchmarks/sampler_accuracy.py`: every sampler at several
NFE budgets, scored by sliced W2, mode total variation and the log-density gap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .. import samplers
from ..data.mixture import GaussianMixture
from ..sampling import sample
from ..schedules import get_schedule
from .metrics import evaluate, sw2_noise_floor


@dataclass
class Row:
    """One sampler at one budget: its scores and wall time."""

    sampler: str
    nfe: int
    spacing: str
    sw2: float
    mode_tv: float
    logp_gap: float
    seconds: float


def run_sampler(mixture: GaussianMixture, schedule, sampler: str, steps: int, *, n: int,
                seed: int = 0, spacing: str | None = None, **options) -> tuple[Row, torch.Tensor]:
    """Sample the mixture's exact eps model with one sampler and score the result."""
    sched = get_schedule(schedule)
    model = mixture.model(sched, "eps")
    calls = [0]

    def net(x, t, cond=None):
        calls[0] += 1
        return model(x, t)

    t0 = time.perf_counter()
    x = sample(net, sched, shape=(n, mixture.dim), prediction="eps", sampler=sampler,
               steps=steps, spacing=spacing, seed=seed, **options)
    seconds = time.perf_counter() - t0
    m = evaluate(mixture, x.double(), seed=seed)
    spacing = spacing or samplers.get(sampler).spacing
    return Row(sampler, calls[0], spacing, m["sw2"], m["mode_tv"], m["logp_gap"], seconds), x


def sampler_table(mixture: GaussianMixture, schedule, nfes=(5, 10, 20, 50), *, n: int = 20000,
                  seed: int = 0, names=None, spacing: str | None = None, keep_nfe: int = 10,
                  progress=None) -> tuple[list[Row], dict[str, torch.Tensor]]:
    """Rows for every sampler (or `names`) at every budget, and the samples at `keep_nfe`.
    rk45 runs once, at its default tolerances, and reports the evaluations it used."""
    rows, kept = [], {}
    for name in names or samplers.available():
        for steps in ([nfes[-1]] if name == "rk45" else nfes):
            row, x = run_sampler(mixture, schedule, name, steps, n=n, seed=seed, spacing=spacing)
            rows.append(row)
            if steps == keep_nfe or name == "rk45":
                kept[name] = x
            if progress is not None:
                progress(row)
    return rows, kept


HEADER = "| sampler | spacing | NFE | sliced W2 | mode TV | log-density gap | seconds |"


def format_row(r: Row) -> str:
    """One Markdown table row."""
    return (f"| {r.sampler} | {r.spacing} | {r.nfe} | {r.sw2:.4f} | {r.mode_tv:.4f} | "
            f"{r.logp_gap:+.3f} | {r.seconds:.2f} |")


def format_table(rows: list[Row], floor: float | None = None) -> str:
    """A Markdown table of rows (and the sliced-W2 noise floor under it)."""
    out = [HEADER, "|---|---|---:|---:|---:|---:|---:|"] + [format_row(r) for r in rows]
    if floor is not None:
        out.append(f"\nsliced W2 noise floor (two true samples of the same size): {floor:.4f}")
    return "\n".join(out)


def noise_floor(mixture: GaussianMixture, n: int, seed: int = 0) -> float:
    """The sliced W2 a perfect sampler scores at this sample size."""
    return sw2_noise_floor(mixture, n, seed=seed)


def plot_samples(mixture: GaussianMixture, kept: dict[str, torch.Tensor], path, *,
                 title: str = "", n_show: int = 4000) -> None:
    """A grid of scatter plots, one per sampler, with the true data first (2-D mixtures)."""
    from ..pictures import scatter_panels

    panels = [("true data", mixture.sample(n_show, seed=12345).numpy())] + [
        (k, v[:n_show].double().numpy()) for k, v in kept.items()]
    scatter_panels(panels, path, title=title, lim=2.5, colors={"true data": "k"})
