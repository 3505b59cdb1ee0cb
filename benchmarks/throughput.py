"""Training and sampling throughput at 28x28, batch 64: difflab's `unet-mnist` against diffusers'
`UNet2DModel` and lucidrains' `Unet` (denoising-diffusion-pytorch) at a matched parameter count
(issue 3). The two peers are benchmark-only extras, never runtime dependencies:

    .venv/bin/pip install diffusers einops
    .venv/bin/pip install --no-deps denoising-diffusion-pytorch ema-pytorch
    .venv/bin/python benchmarks/throughput.py [--iters 5] [--compile] [--plain-malloc]

lucidrains' module imports torchvision and accelerate at the top for its Trainer; neither imports
beside this CPU torch, so the script puts empty stand-ins for them in sys.modules before importing
it. Only its `Unet` class is used, which needs neither.

Training = forward + backward + AdamW step (fp32 weights); sampling = a forward pass under
no_grad. Each figure is the median over --iters timed iterations after 2 warm-up iterations.
Ratios are given against the faster peer in float32 (the peers as they ship) and against the
faster peer under the same bf16 autocast. Every network runs in the same process after
`difflab.cpu.tune_malloc()`, as under the `difflab` command, unless --plain-malloc.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import types
from contextlib import nullcontext

import torch
from torch import nn
from unet1d_latency import _times

B, SIZE = 64, 28


def _stub_lucidrains_imports() -> None:
    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    tv.utils = types.ModuleType("torchvision.utils")
    acc = types.ModuleType("accelerate")
    acc.Accelerator = object
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms,
                        "torchvision.utils": tv.utils, "accelerate": acc})


class _Diffusers(nn.Module):
    """diffusers' UNet2DModel behind difflab's net(x, t) signature (timesteps 1000 t)."""

    def __init__(self):
        super().__init__()
        from diffusers import UNet2DModel

        self.net = UNet2DModel(sample_size=SIZE, in_channels=1, out_channels=1,
                               block_out_channels=(64, 128, 128), layers_per_block=2,
                               down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                               up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
                               norm_num_groups=32)

    def forward(self, x, t):
        return self.net(x, 1000 * t).sample


class _Lucidrains(nn.Module):
    """lucidrains' Unet behind difflab's net(x, t) signature (timesteps 1000 t)."""

    def __init__(self):
        super().__init__()
        _stub_lucidrains_imports()
        from denoising_diffusion_pytorch.denoising_diffusion_pytorch import Unet

        self.net = Unet(dim=72, dim_mults=(1, 2, 2), channels=1, flash_attn=True)  # 6.58M

    def forward(self, x, t):
        return self.net(x, 1000 * t)


def _difflab():
    from difflab.nets import get_net

    return get_net("unet-mnist")


def _time(fn, iters: int) -> float:
    """Median seconds of `iters` calls of fn after 2 warm-up calls."""
    return statistics.median(_times(fn, 2, iters))


def measure(net: nn.Module, iters: int, *, bf16: bool = False, channels_last: bool = False):
    """(training images/s, sampling evaluations/s) at batch B."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, 1, SIZE, SIZE, generator=g)
    t = torch.rand(B, generator=g)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

    def train_step():
        with amp:
            out = net(x, t)
        loss = (out.float() - x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sample_step():
        with torch.no_grad(), amp:
            net(x, t)

    net.train()
    train_s = _time(train_step, iters)
    net.eval()
    sample_s = _time(sample_step, iters)
    return B / train_s, B / sample_s


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--compile", action="store_true",
                   help="also time torch.compile'd difflab and diffusers under bf16 (minutes)")
    p.add_argument("--plain-malloc", action="store_true",
                   help="leave glibc's malloc thresholds alone (the `difflab` command tunes them)")
    args = p.parse_args()
    torch.manual_seed(0)
    tuned = False
    if not args.plain_malloc:
        from difflab.cpu import tune_malloc

        tuned = tune_malloc()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {B}, "
          f"{SIZE}x{SIZE}x1, median of {args.iters}, malloc {'tuned' if tuned else 'plain'}\n")
    cases = [
        ("difflab unet-mnist", _difflab, {}),
        ("difflab unet-mnist, channels-last", _difflab, {"channels_last": True}),
        ("difflab unet-mnist, bf16 autocast", _difflab, {"bf16": True}),
        ("difflab unet-mnist, bf16 autocast, channels-last", _difflab,
         {"bf16": True, "channels_last": True}),
        ("diffusers UNet2DModel", _Diffusers, {}),
        ("diffusers UNet2DModel, bf16 autocast", _Diffusers, {"bf16": True}),
        ("lucidrains Unet", _Lucidrains, {}),
        ("lucidrains Unet, bf16 autocast", _Lucidrains, {"bf16": True}),
    ]
    if args.compile:
        cases += [("difflab unet-mnist, bf16 autocast, torch.compile", _difflab,
                   {"bf16": True, "compile": True}),
                  ("diffusers UNet2DModel, bf16 autocast, torch.compile", _Diffusers,
                   {"bf16": True, "compile": True})]
    rows = []
    for name, make, kw in cases:
        net = make()
        params = sum(p.numel() for p in net.parameters())
        if kw.pop("compile", False):
            net = torch.compile(net)
        tr, sa = measure(net, args.iters, **kw)
        rows.append((name, params, tr, sa))
        print(f"{name}: {params / 1e6:.2f}M params, train {tr:.1f} img/s, sample {sa:.1f} evals/s",
              flush=True)

    def best(precision: str) -> tuple[float, float]:  # the faster eager peer at a precision
        peers = [r for r in rows if not r[0].startswith("difflab") and "compile" not in r[0]
                 and ("bf16" in r[0]) == (precision == "bf16")]
        return max(r[2] for r in peers), max(r[3] for r in peers)

    (f_tr, f_sa), (b_tr, b_sa) = best("fp32"), best("bf16")
    print("\n| network | parameters | training images/s | sampling evaluations/s | "
          "train / best fp32 peer | sample / best fp32 peer | train / best bf16 peer | "
          "sample / best bf16 peer |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, params, tr, sa in rows:
        print(f"| {name} | {params / 1e6:.2f}M | {tr:.1f} | {sa:.1f} | {tr / f_tr:.2f} | "
              f"{sa / f_sa:.2f} | {tr / b_tr:.2f} | {sa / b_sa:.2f} |")


if __name__ == "__main__":
    main()
