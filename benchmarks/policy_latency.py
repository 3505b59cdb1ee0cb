"""Latency of a Push-T diffusion policy's action chunk at batch 1 on the CPU, per sampler and
number of network evaluations (issue 8: at most 30 ms a chunk with the CPU preset and at most 10
evaluations; the paper's DDPM with 100 steps for comparison). The network is
`unet1d-pusht-small` (or --net) with random weights: the time does not depend on them. One call
of DiffusionPolicy.predict_action_chunk = normalise the window, sample the chunk, unnormalise.

    .venv/bin/python benchmarks/policy_latency.py [--net unet1d-pusht-small] [--iters 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from unet1d_latency import cpu_info

from difflab import get_schedule
from difflab.cpu import tune_malloc
from difflab.data.trajectories import TrajectoryNormalizer
from difflab.nets import get_net
from difflab.policy import DiffusionPolicy

SAMPLERS = (("ddpm", 100), ("ddim", 10), ("ddim", 5), ("dpm++2m", 10), ("dpm++2m", 5),
            ("unipc", 10), ("unipc", 5))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="unet1d-pusht-small")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tune_malloc()
    net = get_net(args.net, action_dim=2, horizon=16, obs_dim=20, n_obs_steps=2).eval()
    rng = np.random.default_rng(0)
    norm = TrajectoryNormalizer.fit(rng.uniform(0, 512, (100, 20)), rng.uniform(0, 512, (100, 2)))
    window = torch.as_tensor(rng.uniform(0, 512, (1, 2, 20)), dtype=torch.float32)
    print(f"{cpu_info()}; {args.threads} threads; {args.net}, batch 1, float32")
    print("| sampler | NFE | ms per chunk (median) | 10th percentile |")
    print("|---|---:|---:|---:|")
    for sampler, steps in SAMPLERS:
        policy = DiffusionPolicy(net, get_schedule("cosine", T=100), norm, obs_dim=20,
                                 action_dim=2, n_obs_steps=2, horizon=16, n_action_steps=8,
                                 prediction="eps", sampler=sampler, steps=steps)
        for _ in range(3):
            policy.predict_action_chunk(window)
        times = []
        for _ in range(args.iters):
            t0 = time.perf_counter()
            policy.predict_action_chunk(window)
            times.append(1000 * (time.perf_counter() - t0))
        print(f"| {sampler} | {steps} | {statistics.median(times):.1f} | "
              f"{np.percentile(times, 10):.1f} |", flush=True)


if __name__ == "__main__":
    main()
