"""The results queue: every sweep behind the committed tables, in order, resumably.

    python -m benchmarks.queue            # run what is left, in order (``make results``)
    python -m benchmarks.queue --list     # each step with its finished / total runs

Each step is one ``benchmarks.run`` sweep; a rerun skips finished runs, so the queue may be
stopped at any moment and started again. The order puts the cheapest missing rows first: the
baselines' seed 0 (AnoGAN first), then the paper schedule's seed 0, then the other seeds.
Steps that extend rows committed earlier keep those rows' thread setting, so that a table
never mixes two configurations (see ``benchmarks.run --jobs``).

On a machine that stops at a set time, ``--time-limit 2h50m`` starts only runs expected to finish
in time (``benchmarks.run --time-limit``): a step's runs that would not are deferred, and the
queue goes on to later steps whose runs are shorter, so the end of the time trains quick runs
instead of a paper run that the stop would cut off. The next invocation takes up the deferred runs
first, in order.
"""

from __future__ import annotations

import argparse
import sys
import time

from ganomaly_tf.cli import documented_parser, fail

from . import run as runner
from .execution import parse_duration

BASELINES = ["ae", "vae", "egbad"]

#: (what it adds, benchmarks.run options); every step is resumable.
STEPS: list[tuple[str, list[str]]] = [
    ("AnoGAN, MNIST, quick, seed 0", ["--dataset", "mnist", "--models", "anogan", "--seeds", "0"]),
    ("AnoGAN, CIFAR-10, quick, seed 0", ["--dataset", "cifar10", "--models", "anogan", "--seeds", "0"]),
    ("AE, VAE, EGBAD, both datasets, quick, seed 0", ["--dataset", "mnist", "--models", *BASELINES, "--seeds", "0"]),
    ("", ["--dataset", "cifar10", "--models", *BASELINES, "--seeds", "0"]),
    ("GANomaly, MNIST, paper schedule, seed 0", ["--dataset", "mnist", "--preset", "paper", "--seeds", "0"]),
    ("GANomaly, CIFAR-10, paper schedule, seed 0", ["--dataset", "cifar10", "--preset", "paper", "--seeds", "0"]),
    ("AnoGAN, both datasets, quick, seeds 1 2", ["--dataset", "mnist", "--models", "anogan", "--seeds", "1", "2"]),
    ("", ["--dataset", "cifar10", "--models", "anogan", "--seeds", "1", "2"]),
    ("AE, VAE, EGBAD, MNIST, quick, seeds 1 2", ["--dataset", "mnist", "--models", *BASELINES, "--seeds", "1", "2"]),
    (
        "AE, VAE, EGBAD, CIFAR-10, quick, seeds 1 2",
        ["--dataset", "cifar10", "--models", *BASELINES, "--seeds", "1", "2"],
    ),
    ("GANomaly, both datasets, quick, seeds 0 1 2", ["--dataset", "mnist", "--seeds", "0", "1", "2"]),
    ("", ["--dataset", "cifar10", "--seeds", "0", "1", "2"]),
    ("GANomaly, MNIST, paper schedule, seed 1", ["--dataset", "mnist", "--preset", "paper", "--seeds", "1"]),
    ("GANomaly, CIFAR-10, paper schedule, seed 1", ["--dataset", "cifar10", "--preset", "paper", "--seeds", "1"]),
    ("GANomaly, MNIST, paper schedule, seed 2", ["--dataset", "mnist", "--preset", "paper", "--seeds", "2"]),
    ("GANomaly, CIFAR-10, paper schedule, seed 2", ["--dataset", "cifar10", "--preset", "paper", "--seeds", "2"]),
]


def step_argv(options: list[str], out: str, extra: list[str]) -> list[str]:
    return [
        *options,
        "--all-classes",
        *(["--preset", "quick"] if "--preset" not in options else []),
        "--out",
        out,
        *extra,
    ]


def parser() -> argparse.ArgumentParser:
    p = documented_parser("python -m benchmarks.queue", __doc__)
    p.add_argument("--out", default="results", help="results root (default: results/)")
    p.add_argument("--list", action="store_true", help="show each step and how far it is, then exit")
    p.add_argument("--data-dir", help="folder with the dataset files (passed to every step)")
    p.add_argument("-q", "--quiet", action="store_true", help="only each step's final table")
    p.add_argument(
        "--time-limit",
        metavar="DURATION",
        help="start only runs expected to finish within DURATION (2h50m, 90m) from now; later steps' shorter "
        "runs fill the rest (see benchmarks.run --time-limit)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    deadline = None
    if args.time_limit and not args.list:
        try:
            deadline = time.time() + parse_duration(args.time_limit)
        except ValueError as e:
            fail(p, str(e))
    extra = [*(["--data-dir", args.data_dir] if args.data_dir else []), *(["-q"] if args.quiet else [])]
    failed = 0
    for i, (title, options) in enumerate(STEPS, 1):
        step = step_argv(options, args.out, extra)
        label = title or "(continued)"
        grid, sweep = runner.grid_of(step)
        done = sum(runner.RunFolder(sweep, c).status() == "ok" for c in grid)
        if args.list:
            print(f"{i:>2}. {label:<48} {done:>3}/{len(grid)}  python -m benchmarks.run {' '.join(step)}")
            continue
        if done == len(grid):  # its tables were made when its last run finished
            print(f"== queue step {i}/{len(STEPS)}: {label}: all {done} runs finished", flush=True)
            continue
        if deadline is not None:
            left = deadline - time.time()
            if left <= 0:
                print(f"== time limit {args.time_limit} reached: the queue stops; rerun it to go on", flush=True)
                break
            step = [*step, "--time-limit", f"{max(left, 1):.0f}s"]  # "0s" would be refused as no duration
        print(f"== queue step {i}/{len(STEPS)}: {label}", flush=True)
        status = runner.main(step)
        if status == 130:  # interrupted: the runner has said what finished and how to resume
            return status
        failed += status != 0
    return 1 if failed else 0


if __name__ == "__main__":
    from ganomaly_tf.cli import quiet_native_logs

    quiet_native_logs()
    sys.exit(main())
