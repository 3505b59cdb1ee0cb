"""The `difflab` command: train, sample, info, demo.

Each subcommand's options are parsed by tyro from a typed dataclass (or from TrainConfig itself),
so every field of a training config can be overridden on the command line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import tyro

from .errors import UserError, one_line
from .sampling import SamplingError
from .train import RunDir, TrainConfig

USAGE = """usage: difflab COMMAND [options]   (difflab COMMAND --help for its options)

commands:
  train PRESET|--config-file FILE [--FIELD VALUE ...] [--resume] [--force]
                       train a model (presets: difflab train --help); the dict fields take
                       JSON: --net-kwargs '{"dropout": 0}' --dataset-kwargs '{"root": "imgs"}'
  sample RUN           draw samples from a run's EMA weights: a PNG grid, optionally a GIF
  info RUN             what a run is: config, steps, last loss, checkpoints
  policy eval RUN      score a Push-T policy in the simulator as the paper does
  demo [samplers|policy]  the demo: train unet-digits on the 8x8 digits (about 3 minutes),
                       then sample; `demo samplers` compares every sampler on an exact problem;
                       `demo policy`: diffusion policy against MSE regression on a 2-way toy

options of every command:
  --traceback          show the full traceback of an error (also DIFFLAB_TRACEBACK=1)
"""


# ----------------------------------------------------------------------------------------------
# train


@dataclass
class TrainCommand:
    """Train a diffusion model."""

    config: tyro.conf.OmitArgPrefixes[TrainConfig]
    """The training configuration (every field can be overridden)."""
    resume: bool = False
    """Continue the run in --run-dir from its latest checkpoint, with its own config.json
    (fields given here, such as --steps, override it)."""
    force: bool = False
    """Start again in an existing run directory, deleting its checkpoints, samples, metrics and
    config."""


# The dict-valued config fields (net_kwargs, hooks, ...): given as JSON on the command line.
DICT_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.default_factory is dict)


def _pop_dict_options(args: list[str]) -> tuple[list[str], dict[str, dict]]:
    """Take --net-kwargs JSON (and the other dict fields, also as --name=JSON) out of args:
    tyro cannot parse free-form dicts."""
    keep, found, i = [], {}, 0
    while i < len(args):
        flag, eq, value = args[i].partition("=")
        name = flag[2:].replace("-", "_") if flag.startswith("--") else ""
        if name not in DICT_FIELDS:
            keep.append(args[i])
            i += 1
            continue
        if not eq:
            if i + 1 >= len(args):
                raise ValueError(f"{flag} needs a JSON object, e.g. {flag} '{{\"key\": 1}}'")
            value, i = args[i + 1], i + 1
        try:
            found[name] = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"{flag} {value!r} is not JSON ({e.msg}); give an object such "
                             f"as '{{\"key\": 1}}'") from None
        if not isinstance(found[name], dict):
            raise ValueError(f"{flag} needs a JSON object {{...}}, got {value!r}")
        i += 1
    return keep, found


def cmd_train(argv: list[str]) -> int:
    """difflab train PRESET|--config-file FILE [--FIELD VALUE ...] [--resume] [--force]"""
    from .train import train
    from .train.presets import TRAIN_PRESETS

    base, rest = None, list(argv)
    if rest and rest[0] in ("--config-file", "--config_file"):
        if len(rest) < 2:
            raise ValueError("--config-file needs a path to a config.json")
        base, rest = TrainConfig.from_json(Path(rest[1])), rest[2:]
    elif rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        if name not in TRAIN_PRESETS:
            raise ValueError(f"unknown training preset {name!r}; choose one of "
                             f"{', '.join(TRAIN_PRESETS)} or --config-file FILE")
        base = TRAIN_PRESETS[name]
    if base is None and not any(a in ("-h", "--help") for a in rest):
        raise ValueError("name a training preset (" + ", ".join(TRAIN_PRESETS)
                         + ") or give --config-file FILE")

    rest, dicts = _pop_dict_options(rest)

    def parse(base: TrainConfig) -> TrainCommand:
        merged = {name: {**getattr(base, name), **dicts.get(name, {})} for name in DICT_FIELDS}
        # tyro sees the dict fields empty (it would make options of their keys) and the merged
        # dicts go back after parsing
        default = TrainCommand(config=dataclasses.replace(base, **{n: {} for n in merged}))
        args = tyro.cli(TrainCommand, args=rest, default=default, prog="difflab train",
                        description="Train a diffusion model: difflab train PRESET [--FIELD "
                        "VALUE ...], or difflab train --config-file FILE [...]. Presets: "
                        + ", ".join(TRAIN_PRESETS) + ". The dict fields take JSON objects, "
                        "merged into the preset's: "
                        + ", ".join("--" + n.replace("_", "-") for n in DICT_FIELDS)
                        + ". With --resume the run's own config.json is the base and the "
                        "fields given override it.")
        return dataclasses.replace(args, config=dataclasses.replace(args.config, **merged))

    args = parse(base or TrainConfig())
    stored = RunDir(args.config.run_dir).config_file
    if args.resume and stored.is_file():  # continue the run as it was configured
        args = parse(TrainConfig.from_json(stored))
    run = train(args.config, resume=args.resume, force=args.force)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, the first process speaks
        print(f"difflab: run in {run}")
    return 0


# ----------------------------------------------------------------------------------------------
# sample


@dataclass
class SampleArgs:
    """Draw samples from a run's EMA weights."""

    run: tyro.conf.Positional[Path]
    """The run directory."""
    sampler: str = "unipc"
    """Sampler name (difflab.samplers.available())."""
    steps: int = 20
    """Network evaluations."""
    num: int = 64
    """Number of samples."""
    seed: int = 0
    """Seed: sample i uses the noise stream (seed, i)."""
    label: int | None = None
    """Class label for every sample (class-conditional runs); None: unconditional."""
    guidance: float | None = None
    """Classifier-free guidance weight w, out_uncond + w (out_cond - out_uncond), for a
    class-conditional run: towards --label, or each row's class of the grid."""
    out: Path | None = None
    """Output PNG (default RUN/samples/sample-SEED.png)."""
    gif: Path | None = None
    """Also write a GIF (.gif) of the denoising: x_t and x0_hat side by side over the steps."""
    bf16: bool = False
    """Run the network under bfloat16 autocast: 2-3x faster on CPUs with bf16 instructions
    (AMX, AVX512-BF16), slower on others; the sampler itself stays in float32."""


def cmd_sample(argv: list[str]) -> int:
    args = tyro.cli(SampleArgs, args=argv, prog="difflab sample")
    from .commands import sample_run

    png, gif = sample_run(args.run, sampler=args.sampler, steps=args.steps, num=args.num,
                          seed=args.seed, label=args.label, guidance=args.guidance,
                          out=args.out, gif=args.gif, bf16=args.bf16)
    print(f"difflab: wrote {png}" + (f" and {gif}" if gif else ""))
    return 0


# ----------------------------------------------------------------------------------------------
# info


@dataclass
class InfoArgs:
    """Describe a run directory."""

    run: tyro.conf.Positional[Path]
    """The run directory."""


def cmd_info(argv: list[str]) -> int:
    args = tyro.cli(InfoArgs, args=argv, prog="difflab info")
    from .commands import run_info

    print(run_info(args.run))
    return 0


# ----------------------------------------------------------------------------------------------
# demo


@dataclass
class DemoArgs:
    """The demo. `difflab demo` trains unet-digits; `difflab demo samplers` compares samplers;
    `difflab demo policy` trains a diffusion policy and its MSE baseline on the bimodal toy."""

    which: tyro.conf.Positional[Literal["digits", "samplers", "policy"]] = "digits"
    """`digits` (the default), `samplers` or `policy`."""
    out: Path | None = None
    """Output folder (default runs/demo, runs/demo-samplers or runs/demo-policy)."""
    force: bool = True
    """Overwrite an earlier demo run in the output folder."""


def cmd_demo(argv: list[str]) -> int:
    args = tyro.cli(DemoArgs, args=argv, prog="difflab demo")
    from .commands import demo_digits, demo_policy, demo_samplers

    if args.which == "samplers":
        demo_samplers(args.out or Path("runs/demo-samplers"))
    elif args.which == "policy":
        demo_policy(args.out or Path("runs/demo-policy"), force=args.force)
    else:
        demo_digits(args.out or Path("runs/demo"), force=args.force)
    return 0


# ----------------------------------------------------------------------------------------------
# policy


@dataclass
class PolicyEvalArgs:
    """Score a Push-T policy run in the simulator as the paper does: the mean over episodes of
    the best min(coverage / 0.95, 1), from the paper's test starts (needs difflab[pusht])."""

    run: tyro.conf.Positional[Path]
    """The run directory (task policy, policy-mse or policy-binned, dataset pusht)."""
    episodes: int = 50
    """How many of the paper's 50 test starts."""
    sampler: str = "ddpm"
    """Sampler (ddpm with 100 steps is the paper's)."""
    steps: int = 100
    """Network evaluations per action chunk."""
    max_steps: int = 300
    """Environment steps per episode."""
    seed: int = 0
    """Seed of the policy's noise."""
    gif: Path | None = None
    """Also write a GIF (.gif) of the first four episodes."""


def cmd_policy(argv: list[str]) -> int:
    if not argv or argv[0] != "eval":
        raise ValueError("usage: difflab policy eval RUN [--episodes N --sampler S --steps K "
                         "--gif FILE]")
    args = tyro.cli(PolicyEvalArgs, args=argv[1:], prog="difflab policy eval")
    from .commands import policy_eval

    out = policy_eval(args.run, episodes=args.episodes, sampler=args.sampler, steps=args.steps,
                      max_steps=args.max_steps, seed=args.seed, gif=args.gif)
    print(f"score {out['score']:.3f}  success rate {out['success_rate']:.3f}  "
          f"({args.episodes} episodes, {out['sampling']}, "
          f"{1000 * out['seconds_per_chunk']:.1f} ms per chunk of {args.episodes})"
          + (f"; wrote {args.gif}" if args.gif else ""))
    return 0


# ----------------------------------------------------------------------------------------------

COMMANDS = {"train": cmd_train, "sample": cmd_sample, "info": cmd_info, "demo": cmd_demo,
            "policy": cmd_policy}


# What difflab raises on purpose for a user's mistake, beside UserError and SamplingError.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
               PermissionError)
PACKAGE_DIR = Path(__file__).resolve().parent


def is_user_error(e: BaseException) -> bool:
    """A user's mistake: a UserError or SamplingError (NaN while sampling, with what to check);
    an OSError about a named file (a path that is missing, not a folder, not writable); or one
    of USER_ERRORS that a `raise` statement in difflab's own code raised. The same exception
    raised elsewhere (inside torch, numpy or a user's network, or by a failing expression in
    difflab such as an unpacking) is unexpected: a bug."""
    if isinstance(e, (UserError, SamplingError)):
        return True
    if isinstance(e, OSError) and e.filename is not None:
        return True
    if not isinstance(e, USER_ERRORS) or e.__traceback__ is None:
        return False
    last = traceback.extract_tb(e.__traceback__)[-1]
    return (Path(last.filename).resolve().is_relative_to(PACKAGE_DIR)
            and (last.line or "").lstrip().startswith("raise"))


def report(e: Exception, show_traceback: bool) -> int:
    """Print an error as the command line reports it; returns the exit code (2 for a user's
    mistake, 1 for an unexpected error)."""
    if show_traceback:
        traceback.print_exception(e, file=sys.stderr)
    if is_user_error(e):
        print(f"difflab: error: {one_line(e)}", file=sys.stderr)
        return 2
    print(f"difflab: unexpected error: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
    if not show_traceback:
        print("difflab: this is a bug (in difflab, or in the network or data given to it): run "
              "again with --traceback (or DIFFLAB_TRACEBACK=1) to see where it happened",
              file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    show_traceback = "--traceback" in argv or os.environ.get("DIFFLAB_TRACEBACK", "") not in (
        "", "0")
    argv = [a for a in argv if a != "--traceback"]
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        print(f"difflab: unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    from .cpu import tune_malloc

    tune_malloc()  # this process is ours: reuse big buffers (difflab/cpu.py)
    try:
        return cmd(argv[1:])
    except KeyboardInterrupt:
        # The checkpoint is saved: a Ctrl-C passed on late (by torchrun, or a second key
        # press) must not turn the clean exit into a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if os.environ.get("RANK", "0") == "0":  # under torchrun, once
            print("difflab: interrupted (a checkpoint was saved if training)", file=sys.stderr)
        return 130
    except Exception as e:
        return report(e, show_traceback)


if __name__ == "__main__":
    sys.exit(main())
