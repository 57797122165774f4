"""Sweep runner: abnormal classes x seeds x models, resumable, safe to kill, parallel, shardable.

    python -m benchmarks.run --dataset mnist --all-classes --preset quick

Each run lands atomically in its own folder under ``<out>/<dataset>/<protocol>/<preset>/runs``
(see ``benchmarks.store``); ``summary.csv`` is rebuilt after every run; rerunning the same
command skips finished runs and redoes unfinished or failed ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from ganomaly_tf.cli import DATASET_HELP, add_debug_flag, add_run_options, documented_parser, run_cli, run_settings
from ganomaly_tf.config import RunConfig
from ganomaly_tf.constants import BACKENDS, DEFAULT_SEEDS, MODEL_NAMES
from ganomaly_tf.data import PROTOCOLS
from ganomaly_tf.data.sources import fixed_split, resolve_path
from ganomaly_tf.errors import ConfigError

from . import presets
from .execution import parse_duration, run_sweep
from .grid import build_grid, check_grid_fits, parse_shard, shard
from .store import RunFolder, any_recorded, sweep_dir

_EXAMPLES = """examples:
  # every abnormal MNIST digit, seeds 0 1 2, GANomaly, the quick preset (~40 min a seed on 2 cores)
  python -m benchmarks.run --dataset mnist --all-classes --preset quick
  # the paper's schedule for two CIFAR-10 classes, GANomaly and the autoencoder
  python -m benchmarks.run --dataset cifar10 --classes cat plane --models ganomaly ae --preset paper
  # the same sweep on the Keras JAX backend (the GPU path; TensorFlow need not be installed)
  python -m benchmarks.run --backend jax --dataset mnist --all-classes --seeds 0 --preset paper
  # split a sweep over 4 machines (or cluster array jobs 0..3); their folders merge
  python -m benchmarks.run --dataset mnist --all-classes --preset paper --shard 2/4
  # keep each run's model, then score new images with one of them
  python -m benchmarks.run --dataset mnist --classes 0 --seeds 0 --preset quick --val-fraction 0.1 --save-models
  python -m ganomaly_tf.score --model results/mnist/paper/quick+val0.1/runs/ganomaly-c0-s0-<hash> my_images/
  # a job that is stopped after 3 hours: start only runs that can finish in it; rerun to go on
  python -m benchmarks.run --dataset mnist --all-classes --preset paper --time-limit 2h55m
  # show the grid without running it
  python -m benchmarks.run --dataset mnist --all-classes --dry-run
"""


def parser() -> argparse.ArgumentParser:
    p = documented_parser("python -m benchmarks.run", __doc__, epilog=_EXAMPLES)
    p.add_argument("--dataset", required=True, metavar="DATASET", help=DATASET_HELP)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--all-classes",
        action="store_true",
        help="every class as the abnormal one (a fixed split: its one split, or every MVTec AD category)",
    )
    which.add_argument("--classes", nargs="+", metavar="C", help="abnormal classes, by index or name")
    p.add_argument(
        "--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), help="seeds (default: 0 1 2, as the paper)"
    )
    p.add_argument("--models", nargs="+", default=["ganomaly"], metavar="M", help=f"models: {' '.join(MODEL_NAMES)}")
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="split protocol (default: paper; fixed, the only one, for a folder that brings its own split)",
    )
    p.add_argument(
        "--preset", choices=tuple(presets.PRESETS), default="quick", help="schedule (see benchmarks/presets.py)"
    )
    add_run_options(p, SWEEP_OPTIONS, defaults=None)  # each, when given, overrides the preset
    p.add_argument("--out", default="results", help="results root (default: results/)")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Keras backend (default: $KERAS_BACKEND, else Keras's own default, tensorflow); jax is the GPU path",
    )
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (CPU threads are split)")
    p.add_argument("--shard", default="0/1", metavar="K/N", help="run only shard K of N (0-based), e.g. 2/4")
    p.add_argument("--force", action="store_true", help="redo finished runs")
    p.add_argument(
        "--time-limit",
        metavar="DURATION",
        help="start no run that would not finish within DURATION (2h30m, 90m, 45s) from now, judged by the "
        "sweep's finished runs of the same model (until it has one, by that model's runs at the same preset on "
        "other datasets), times 1.25; those are deferred to the next invocation. For "
        "machines or cluster jobs that stop at a set time: the time goes to runs that can finish",
    )
    p.add_argument(
        "--save-models",
        action="store_true",
        help="keep each run's trained model as model.keras in its run folder (git ignores it; 20-70 MB a run at "
        "the paper's sizes, optimiser state included) and a threshold chosen without test labels in its result.json, "
        "for python -m ganomaly_tf.score; a run's folder, identity and results are the same either way. "
        "Finished runs without a model are skipped and counted: add --force to retrain them with their models",
    )
    p.add_argument("--dry-run", action="store_true", help="print the grid and exit")
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    add_debug_flag(p)
    verbosity = p.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only the final table")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="Keras's per-epoch logs too")
    return p


def select_backend(backend: str | None, argv: list[str]) -> int | None:
    """Make ``backend`` the Keras backend of this sweep, before Keras is imported.

    Keras fixes its backend at import (``KERAS_BACKEND``). If this process has already imported
    Keras on another backend, the sweep runs in a child process instead: its exit status is
    returned; otherwise None, and the sweep runs here.
    """
    if backend is None:
        return None
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != backend:
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "KERAS_BACKEND": backend}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        return subprocess.call([sys.executable, "-m", "benchmarks.run", *argv], env=env)
    os.environ["KERAS_BACKEND"] = backend
    return None


#: The run settings a sweep may set on the command line; unset ones are the preset's.
SWEEP_OPTIONS = [
    "--epochs",
    "--batch-size",
    "--train-subset",
    "--image-size",
    "--steps-per-execution",
    "--bn-mode",
    "--val-fraction",
    "--strategy",
    "--dtype-policy",
    "--data-dir",
    "--skip-unreadable",
]


def _overrides(args: argparse.Namespace) -> dict:
    """The run settings given on the command line (None: the preset's)."""
    settings = run_settings(args, SWEEP_OPTIONS)
    if settings["data_dir"]:
        settings["data_dir"] = str(Path(settings["data_dir"]).resolve())
    # Parallel runs split the cores; the thread count is part of a run's identity.
    settings["threads"] = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
    return settings


def _grid(args: argparse.Namespace) -> tuple[list[RunConfig], Path, tuple[int, int]]:
    """The runs of this shard of the sweep, and its folder; ValueError (ConfigError) for bad options."""
    k, n = parse_shard(args.shard)
    if args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: need at least 1 parallel run; pass --jobs 1 or more")
    args.dataset = resolve_path(args.dataset)
    if args.protocol is None:
        args.protocol = "fixed" if fixed_split(args.dataset) else "paper"
    overrides = _overrides(args)
    grid = build_grid(
        args.dataset,
        None if args.all_classes else args.classes,
        args.seeds,
        args.models,
        protocol=args.protocol,
        preset=args.preset,
        overrides=overrides,
        data_dir=overrides["data_dir"],
    )
    defaults = {**RunConfig().to_dict(), "backend": "tensorflow"}
    backend = args.backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    folder = presets.variant_name(args.preset, {**overrides, "backend": backend}, defaults)
    return shard(grid, k, n), sweep_dir(Path(args.out), args.dataset, args.protocol, folder), (k, n)


def grid_of(argv: list[str]) -> tuple[list[RunConfig], Path]:
    """The runs and sweep folder that ``benchmarks.run ARGV`` would use (nothing is run)."""
    grid, sweep, _ = _grid(parser().parse_args(argv))
    return grid, sweep


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write a file in it (tried up front), or raise ConfigError saying why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"--out {folder}: cannot create or write a folder there ({e.strerror or e}); "
            "choose a folder you can write to"
        ) from None


def resume_command(argv: list[str], time_limit: bool = True) -> str:
    """The command line of ``argv``; without its ``--time-limit`` where ``time_limit`` is false."""
    if not time_limit:
        drop = {i for i, a in enumerate(argv) if a == "--time-limit"}
        argv = [a for i, a in enumerate(argv) if not (i in drop or i - 1 in drop or a.startswith("--time-limit="))]
    return "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not args.dry_run:
        status = select_backend(args.backend, argv)
        if status is not None:
            return status
    grid, sweep, (k, n) = run_cli(p, args, lambda: _grid(args))
    limit = run_cli(p, args, lambda: parse_duration(args.time_limit)) if args.time_limit else None
    deadline = time.time() + limit if limit else None
    if args.dry_run:
        for c in grid:
            folder = RunFolder(sweep, c)
            print(f"{folder.name:<40} {folder.status() or 'to do'}")
        print(f"{len(grid)} runs (shard {k}/{n}) -> {sweep}")
        print("settings:", {f.name: getattr(grid[0], f.name) for f in dataclasses.fields(grid[0])} if grid else {})
        return 0
    if not grid:
        print(f"shard {k}/{n} of this sweep holds no runs: nothing to do (the grid has fewer than {n} runs)")
        return 0

    def prepare() -> int:
        from ganomaly_tf.data import load_dataset

        check_writable(Path(args.out))
        check_writable(sweep)
        for size in sorted({c.image_size or 0 for c in grid}):  # a folder's images are decoded at each size
            dataset = load_dataset(
                args.dataset, args.data_dir, image_size=size or None, skip_unreadable=grid[0].skip_unreadable
            )
            if dataset.manifest is not None:  # say which layout was found, and what it holds
                print(f"dataset {dataset.source}", flush=True)
            check_grid_fits([c for c in grid if (c.image_size or 0) == size], dataset)  # every run, before any
        return 0

    run_cli(p, args, prepare)
    verbosity = 0 if args.quiet else 2 if args.verbose else 1
    try:
        counts = run_sweep(
            grid,
            sweep,
            preset=sweep.name,
            jobs=args.jobs,
            force=args.force,
            verbosity=verbosity,
            save_models=args.save_models,
            deadline=deadline,
        )
    except KeyboardInterrupt:
        done = sum(RunFolder(sweep, c).status() == "ok" for c in grid)
        print(
            f"\ninterrupted: {done} of {len(grid)} runs finished in {sweep}; an unfinished run resumes from its last "
            f"finished epoch. Resume: {resume_command(argv)}",
            file=sys.stderr,
        )
        return 130
    from .report import build_report, sweep_table

    finished = any_recorded(sweep, grid)
    print(sweep_table(sweep) if finished else f"no run of this sweep has finished yet: no table in {sweep}")
    if counts["deferred"]:
        print(
            f"{counts['deferred']} run(s) deferred: they would not finish within --time-limit {args.time_limit}. "
            f"Run them with more time (or no limit): {resume_command(argv, time_limit=False)}",
            flush=True,
        )
    if finished and not args.no_report:
        try:
            build_report(sweep)
        except Exception as e:  # the runs are safe on disk whatever the report does
            print(f"report failed ({e!r}); rerun: python -m benchmarks.report {sweep}", file=sys.stderr)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    from ganomaly_tf.cli import quiet_native_logs

    quiet_native_logs()
    sys.exit(main())
