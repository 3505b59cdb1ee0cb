"""Latency of the 1-D U-Net (`difflab.nets.UNet1D`) at batch 1: one forward of a Push-T action
chunk (Tp 16, 2 actions, a window of 2 x 20 observations) for several widths, in float32 and
under bf16 autocast, on the CPU (issue 8: at most 30 ms per 10-evaluation action chunk, so about
3 ms per forward, on 2 cores), and one whole chunk drawn by `difflab.sample` (DDIM, 10 steps, the
cosine schedule with T = 100, clip_x0 = 1, an untrained network: the time does not depend on the
weights).

    .venv/bin/python benchmarks/unet1d_latency.py [--threads 2] [--iters 300] [--dims 64,128,256]

Each call runs under `torch.inference_mode()` after warm-up calls, with
`difflab.cpu.tune_malloc()` applied (as the `difflab` command does). Reported: the median and
the 10th percentile of --iters timed forwards (the 10th percentile is the figure on a machine
shared with other work) and the median of --iters / 10 timed chunks. The CPU model and its bf16
instruction flags come from /proc/cpuinfo.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from contextlib import nullcontext

import torch

from difflab import get_schedule, sample
from difflab.cpu import tune_malloc
from difflab.nets import UNet1D, UNet1DConfig

CANDIDATES = ((32, 64, 128), (40, 80, 160), (48, 96, 192), (56, 112, 224), (64, 128, 256),
              (96, 192, 384), (128, 256, 512), (256, 512, 1024))


def cpu_info() -> str:
    """The CPU model and the bf16-related flags (amx_bf16, avx512_bf16) from /proc/cpuinfo."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    models = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    model = models[0] if models else model
    for ln in lines:
        if ln.startswith("flags"):
            flags = set(ln.split(":", 1)[1].split())
            break
    bf16 = sorted(f for f in flags if "bf16" in f) or ["none"]
    return f"{model}; bf16 flags: {' '.join(bf16)}"


def _times(fn, warmup: int, iters: int) -> list[float]:
    """Sorted seconds of `iters` calls of fn after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)


def measure(dims: tuple[int, ...], iters: int, bf16: bool) -> tuple[int, float, float, float]:
    """(parameters, forward median, forward 10th percentile, DDIM-10 chunk median) in seconds,
    at batch 1."""
    torch.manual_seed(0)
    net = UNet1D(UNet1DConfig(down_dims=dims)).eval()
    c = net.config
    x = torch.randn(1, c.horizon, c.action_dim)  # (1, Tp, A)
    t = torch.rand(1)  # (1,)
    cond = torch.randn(1, c.n_obs_steps, c.obs_dim)  # (1, To, obs_dim)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    schedule = get_schedule("cosine", T=100)

    def chunk():
        sample(net, schedule, shape=(1, c.horizon, c.action_dim), sampler="ddim", steps=10,
               seed=0, cond=cond, clip_x0=1.0, bf16=bf16)

    with torch.inference_mode():
        with amp:
            fwd = _times(lambda: net(x, t, cond), 20, iters)
        chunks = _times(chunk, 3, max(iters // 10, 1))
    params = sum(p.numel() for p in net.parameters())
    return params, statistics.median(fwd), fwd[iters // 10], statistics.median(chunks)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--dims", nargs="*", default=None,
                   help="widths to time, each as 64,128,256 (default: a list from 1M to 66M)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tuned = tune_malloc()
    dims = ([tuple(int(d) for d in s.split(",")) for s in args.dims] if args.dims
            else CANDIDATES)
    print(f"{cpu_info()}\ntorch {torch.__version__}, {args.threads} threads, batch 1, Tp 16, "
          f"obs 2 x 20, {args.iters} timed forwards, malloc {'tuned' if tuned else 'plain'}\n")
    print("| down_dims | parameters | precision | forward median (ms) | forward p10 (ms) | "
          "10 x forward (ms) | DDIM-10 chunk (ms) |\n|---|---:|---|---:|---:|---:|---:|")
    for d in dims:
        for bf16 in (False, True):
            n, med, p10, chunk = measure(d, args.iters, bf16)
            print(f"| {', '.join(map(str, d))} | {n:,} | {'bf16 autocast' if bf16 else 'fp32'} "
                  f"| {1e3 * med:.2f} | {1e3 * p10:.2f} | {1e4 * med:.1f} | {1e3 * chunk:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
