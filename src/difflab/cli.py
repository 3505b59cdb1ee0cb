"""The `difflab` command."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def demo_samplers(out: Path, n: int = 20000, schedule: str = "linear") -> int:
    """Every sampler on the exact 2-D mixture at 5, 10, 20, 50 NFE: a table and a picture."""
    from .compare import format_table, noise_floor, plot_samples, sampler_table
    from .data.mixture import GaussianMixture

    mixture = GaussianMixture.preset("2d")
    t0 = time.perf_counter()
    print(f"difflab demo samplers: every sampler on the exact `2d` Gaussian mixture, "
          f"{schedule} schedule, {n} samples each")
    print("| sampler | spacing | NFE | sliced W2 | mode TV | log-density gap | seconds |")

    def show(r):
        print(f"| {r.sampler} | {r.spacing} | {r.nfe} | {r.sw2:.4f} | {r.mode_tv:.4f} | "
              f"{r.logp_gap:+.3f} | {r.seconds:.2f} |", flush=True)

    rows, kept = sampler_table(mixture, schedule, n=n, progress=show)
    floor = noise_floor(mixture, n)
    print(f"sliced W2 noise floor (two true samples of {n}): {floor:.4f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "samplers.md").write_text(format_table(rows, floor) + "\n")
    picture = out / "samplers_10nfe.png"
    plot_samples(mixture, kept, picture, title=f"`2d` mixture, 10 NFE, {schedule} schedule "
                 "(rk45: adaptive)")
    print(f"wrote {out / 'samplers.md'} and {picture} in {time.perf_counter() - t0:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="difflab", description="Diffusion models: sampling, "
                                     "training and evaluation.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the demo (the sampler comparison for now)")
    demo.add_argument("which", nargs="?", default="samplers", choices=["samplers"])
    demo.add_argument("--out", default="runs/demo-samplers", help="output folder")
    demo.add_argument("--n", type=int, default=20000, help="samples per sampler")
    demo.add_argument("--schedule", default="linear", help="noise schedule")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return demo_samplers(Path(args.out), n=args.n, schedule=args.schedule)
    except (ValueError, FileNotFoundError) as e:
        print(f"difflab: error: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
