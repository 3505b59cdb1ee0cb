"""Sampler accuracy on the exact Gaussian-mixture problems (issue 2's benchmark).

Every sampler at 5, 10, 20 and 50 NFE on the `2d` and `d64` presets under the `linear` and
`cosine` schedules, N = 20000 samples each: sliced W2 (with its noise floor), mode TV, log-density
gap, seconds. Prints Markdown tables; paste them into docs/benchmarks.md.

    .venv/bin/python benchmarks/sampler_accuracy.py [--presets 2d d64] [--schedules linear cosine]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from difflab.data.mixture import GaussianMixture
from difflab.eval.compare import format_table, noise_floor, sampler_table


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=["2d", "d64"])
    p.add_argument("--schedules", nargs="+", default=["linear", "cosine"])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--nfe", type=int, nargs="+", default=[5, 10, 20, 50])
    p.add_argument("--samplers", nargs="+", default=None)
    p.add_argument("--spacing", default=None, help="override every sampler's default spacing")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, N = {args.n}\n")
    for preset in args.presets:
        mixture = GaussianMixture.preset(preset)
        floor = noise_floor(mixture, args.n)
        for schedule in args.schedules:
            t0 = time.perf_counter()
            rows, _ = sampler_table(mixture, schedule, tuple(args.nfe), n=args.n,
                                    names=args.samplers, spacing=args.spacing)
            print(f"### `{preset}`, `{schedule}` schedule "
                  f"({time.perf_counter() - t0:.0f} s)\n")
            print(format_table(rows, floor) + "\n", flush=True)


if __name__ == "__main__":
    main()
