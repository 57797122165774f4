"""Sweep runner: abnormal classes x seeds x models, resumable, safe to kill, parallel, shardable.

    python -m benchmarks.run --dataset mnist --all-classes --preset quick

Each run lands atomically in its own folder under ``<out>/<dataset>/<protocol>/<preset>/runs``
(see ``benchmarks.store``); ``summary.csv`` is rebuilt after every run; rerunning the same
command skips finished runs and redoes unfinished or failed ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from ganomaly_tf.cli import ArgumentParser, add_debug_flag, run_cli
from ganomaly_tf.constants import BACKENDS, BN_MODES, DTYPE_POLICIES, MODEL_NAMES, STRATEGIES
from ganomaly_tf.data import DATASETS, PROTOCOLS, resolve_class
from ganomaly_tf.data.datasets import SPECS
from ganomaly_tf.errors import ConfigError
from ganomaly_tf.experiment import RunConfig

from . import presets
from .store import RunFolder, rebuild_summary, sweep_dir

_EXAMPLES = """examples:
  # every abnormal MNIST digit, seeds 0 1 2, GANomaly, the quick preset (~40 min a seed on 2 cores)
  python -m benchmarks.run --dataset mnist --all-classes --preset quick
  # the paper's schedule for two CIFAR-10 classes, GANomaly and the autoencoder
  python -m benchmarks.run --dataset cifar10 --classes cat plane --models ganomaly ae --preset paper
  # the same sweep on the Keras JAX backend (the GPU path; TensorFlow need not be installed)
  python -m benchmarks.run --backend jax --dataset mnist --all-classes --seeds 0 --preset paper
  # split a sweep over 4 machines (or cluster array jobs 0..3); their folders merge
  python -m benchmarks.run --dataset mnist --all-classes --preset paper --shard 2/4
  # show the grid without running it
  python -m benchmarks.run --dataset mnist --all-classes --dry-run
"""


def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__.split("\n\n")[0],
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", choices=DATASETS, required=True)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all-classes", action="store_true", help="every class as the abnormal one")
    which.add_argument("--classes", nargs="+", metavar="C", help="abnormal classes, by index or name")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2, as the paper)")
    p.add_argument("--models", nargs="+", default=["ganomaly"], metavar="M", help=f"models: {' '.join(MODEL_NAMES)}")
    p.add_argument("--protocol", choices=PROTOCOLS, default="paper", help="split protocol (default: paper)")
    p.add_argument(
        "--preset", choices=tuple(presets.PRESETS), default="quick", help="schedule (see benchmarks/presets.py)"
    )
    p.add_argument("--epochs", type=int, help="override the preset's epochs")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--train-subset", type=int, help="override the preset's training-subset size (0: all)")
    p.add_argument(
        "--steps-per-execution", type=int, metavar="K", help="batches per dispatch (default 1; e.g. 50 on a GPU)"
    )
    p.add_argument(
        "--bn-mode",
        choices=BN_MODES,
        default="inference",
        help="BatchNorm at test time: inference (default), batch (the official code), per-image (its authors' advice)",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        metavar="F",
        help="hold out this fraction of the training normals to select an epoch without test labels (default 0)",
    )
    p.add_argument("--data-dir", help="folder with the dataset files (default: see README, Data)")
    p.add_argument("--out", default="results", help="results root (default: results/)")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Keras backend (default: $KERAS_BACKEND, else Keras's own default, tensorflow); jax is the GPU path",
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="tf.distribute strategy; on jax, default and mirrored both use every local device (DataParallel)",
    )
    p.add_argument("--no-determinism", action="store_true", help="allow non-deterministic ops")
    p.add_argument(
        "--dtype-policy",
        choices=DTYPE_POLICIES,
        default="float32",
        help="float32 (default) or mixed_bfloat16 (bf16 compute: CPUs with AVX-512 BF16/AMX, GPUs)",
    )
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (CPU threads are split)")
    p.add_argument("--shard", default="0/1", metavar="K/N", help="run only shard K of N (0-based), e.g. 2/4")
    p.add_argument("--force", action="store_true", help="redo finished runs")
    p.add_argument("--dry-run", action="store_true", help="print the grid and exit")
    p.add_argument("--no-report", action="store_true", help="skip the report at the end")
    add_debug_flag(p)
    verbosity = p.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only the final table")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="Keras's per-epoch logs too")
    return p


def parse_shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected K/N, e.g. 0/4") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard {text!r}: need 0 <= K < N")
    return k, n


def build_grid(
    dataset: str,
    classes: list[int | str] | None,
    seeds: list[int],
    models: list[str],
    *,
    protocol: str = "paper",
    preset: str = "quick",
    overrides: dict | None = None,
) -> list[RunConfig]:
    """All runs of a sweep, classes -> seeds -> models, in a stable order."""
    unknown = [m for m in models if m not in MODEL_NAMES]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
    n_classes = len(SPECS[dataset].classes)
    class_ids = list(range(n_classes)) if classes is None else [resolve_class(dataset, c) for c in classes]
    presets.preset(preset)  # an unknown preset is an error before anything else
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    grid = []
    for k in dict.fromkeys(class_ids):
        for seed in dict.fromkeys(seeds):
            for model in dict.fromkeys(models):
                settings = {**presets.model_settings(preset, model), **overrides}
                if settings.get("train_subset") == 0:
                    settings["train_subset"] = None
                grid.append(
                    RunConfig(
                        dataset=dataset,
                        abnormal_class=k,
                        seed=seed,
                        protocol=protocol,
                        model=model,
                        model_options=presets.model_options(preset, model),
                        **settings,
                    )
                )
    return grid


def shard(grid: list, k: int, n: int) -> list:
    """Shard k of n: every n-th run of the stable grid order, so shards cover it exactly once."""
    return grid[k::n]


# -- one run ------------------------------------------------------------------------------


def _epoch_logger(prefix: str, epochs: int, log_path: Path, echo: bool):
    """A callback writing one line per epoch to the run's log, and to stdout if ``echo``."""
    import keras

    class EpochLine(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            losses = "  ".join(f"{k} {v:.4g}" for k, v in logs.items() if k.endswith("loss"))
            took = time.perf_counter() - self._t
            auc = f"auc {logs['auc']:.4f}" if "auc" in logs else "not evaluated"
            line = f"epoch {epoch + 1}/{epochs}  {auc}  {losses}  ({took:.0f} s)"
            with open(log_path, "a") as f:
                f.write(line + "\n")
            if echo:
                print(f"{prefix}  {line}", flush=True)

    return EpochLine()


def execute(sweep: Path, config: RunConfig, preset: str, force: bool, verbosity: int) -> tuple[str, float]:
    """Run one configuration into its folder; returns (status, seconds). Never raises for a failed run."""
    from ganomaly_tf.experiment import run

    folder = RunFolder(sweep, config)
    start = time.perf_counter()
    with folder.lock() as mine:
        if not mine:
            return "locked", 0.0
        if folder.status() == "ok" and not force:
            return "skipped", 0.0
        label = f"{config.model} class {config.abnormal_class} seed {config.seed}"
        folder.partial.mkdir(parents=True, exist_ok=True)
        log = folder.partial / "run.log"
        callbacks = [_epoch_logger(f"    {label}", config.epochs, log, echo=verbosity >= 1)]
        try:
            result = run(config, callbacks=callbacks, verbose=2 if verbosity >= 2 else 0, backup_dir=folder.partial)
            if not math.isfinite(result.record["auc_last"]):  # never "ok" without a result
                raise FloatingPointError(f"the last epoch's AUC is {result.record['auc_last']}")
            record = {**result.record, "preset": preset, "preset_settings": presets.PRESETS[preset.split("+")[0]]}
            folder.publish(record, result.scores, result.labels, result.origins)
            status = "ok"
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a failed run is recorded and the sweep goes on
            record = {
                "status": "failed",
                "backend": _backend(),
                "model": config.model,
                "dataset": config.dataset,
                "protocol": config.protocol,
                "preset": preset,
                "abnormal_class": config.abnormal_class,
                "class_name": SPECS[config.dataset].classes[config.abnormal_class],
                "seed": config.seed,
                "error": f"{type(e).__name__}: {e}",
                "traceback": traceback.format_exc(),
                "config": config.to_dict(),
            }
            with open(log, "a") as f:
                f.write(record["traceback"])
            folder.publish(record)
            status = "failed"
            if verbosity >= 1:
                print(f"    {label}: FAILED: {record['error']}", file=sys.stderr, flush=True)
    return status, time.perf_counter() - start


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _worker_init() -> None:
    """A worker process of ``--jobs N``: Ctrl-C ends it silently (the parent reports the interruption;
    the run's checkpoints and its lock, which the OS releases, stay)."""
    import signal

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


# -- the sweep ----------------------------------------------------------------------------


def _fmt_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def run_sweep(
    grid: list[RunConfig],
    sweep: Path,
    *,
    preset: str,
    jobs: int = 1,
    force: bool = False,
    verbosity: int = 1,
) -> dict[str, int]:
    """Execute a grid into one sweep folder; returns counts per status."""
    counts = {"ok": 0, "failed": 0, "skipped": 0, "locked": 0}
    todo = [c for c in grid if force or RunFolder(sweep, c).status() != "ok"]
    counts["skipped"] = len(grid) - len(todo)
    if verbosity >= 1:
        print(f"{len(grid)} runs in {sweep}: {counts['skipped']} already finished, {len(todo)} to do", flush=True)
    durations: list[float] = []
    start = time.perf_counter()

    def progress(done: int, config: RunConfig, status: str, took: float) -> None:
        counts[status] += 1
        if status in ("ok", "failed"):
            durations.append(took)
        rebuild_summary(sweep)
        if verbosity >= 1:
            left = len(todo) - done
            eta = (sum(durations) / len(durations)) * left / max(jobs, 1) if durations else math.nan
            print(
                f"[{done}/{len(todo)}] {config.model} class {config.abnormal_class} seed {config.seed}: {status}"
                f" ({took:.0f} s)  elapsed {_fmt_eta(time.perf_counter() - start)}  ETA {_fmt_eta(eta)}",
                flush=True,
            )

    if jobs <= 1:
        for i, config in enumerate(todo, 1):
            if verbosity >= 1:
                print(
                    f"[{i}/{len(todo)}] {config.model} class {config.abnormal_class} seed {config.seed} ...", flush=True
                )
            status, took = execute(sweep, config, preset, force, verbosity)
            progress(i, config, status, took)
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
            futures = {pool.submit(execute, sweep, c, preset, force, verbosity): c for c in todo}
            for i, fut in enumerate(as_completed(futures), 1):
                config = futures[fut]
                try:
                    status, took = fut.result()
                except Exception as e:  # the worker process itself died
                    print(f"worker for {RunFolder(sweep, config).name} died: {e!r}", file=sys.stderr)
                    status, took = "failed", 0.0
                progress(i, config, status, took)
    rebuild_summary(sweep)
    return counts


def results_table(sweep: Path) -> str:
    """The report's last-epoch table of the sweep (mean ± std over seeds, one configuration a model)."""
    from .report import ReportError, aggregate, auc_markdown, load_sweep

    try:
        loaded = load_sweep(sweep)
    except ReportError:
        return "no finished runs"
    return auc_markdown(loaded, aggregate(loaded, "auc_last"), "auc_last")


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


def _overrides(args: argparse.Namespace) -> dict:
    """The run settings given on the command line (None: the preset's)."""
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_subset": args.train_subset,
        "steps_per_execution": args.steps_per_execution,
        "bn_mode": args.bn_mode,
        "val_fraction": args.val_fraction,
        "strategy": args.strategy,
        "deterministic": not args.no_determinism,
        "dtype_policy": args.dtype_policy,
        "data_dir": str(Path(args.data_dir).resolve()) if args.data_dir else None,
        # Parallel runs split the cores; the thread count is part of a run's identity.
        "threads": max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None,
    }


def _grid(args: argparse.Namespace) -> tuple[list[RunConfig], Path, tuple[int, int]]:
    """The runs of this shard of the sweep, and its folder; ValueError (ConfigError) for bad options."""
    k, n = parse_shard(args.shard)
    if args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: need at least 1 parallel run; pass --jobs 1 or more")
    overrides = _overrides(args)
    grid = build_grid(
        args.dataset,
        None if args.all_classes else args.classes,
        args.seeds,
        args.models,
        protocol=args.protocol,
        preset=args.preset,
        overrides=overrides,
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


def check_grid_fits(grid: list[RunConfig], dataset) -> None:
    """Every run's split gives at least one batch of training images, checked for the whole grid at once."""
    problems = []
    for config in grid:
        try:
            config.check_fits(dataset)
        except ConfigError as e:
            problems.append(str(e))
    if problems:
        more = f" (and {len(problems) - 1} more run(s) alike)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more)


def resume_command(argv: list[str]) -> str:
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
        check_grid_fits(grid, load_dataset(args.dataset, args.data_dir))  # before any run, for every run
        return 0

    run_cli(p, args, prepare)
    verbosity = 0 if args.quiet else 2 if args.verbose else 1
    try:
        counts = run_sweep(grid, sweep, preset=sweep.name, jobs=args.jobs, force=args.force, verbosity=verbosity)
    except KeyboardInterrupt:
        done = sum(RunFolder(sweep, c).status() == "ok" for c in grid)
        print(
            f"\ninterrupted: {done} of {len(grid)} runs finished in {sweep}; an unfinished run resumes from its last "
            f"finished epoch. Resume: {resume_command(argv)}",
            file=sys.stderr,
        )
        return 130
    print(results_table(sweep))
    if not args.no_report:
        try:
            from .report import build_report

            build_report(sweep)
        except Exception as e:  # the runs are safe on disk whatever the report does
            print(f"report failed ({e!r}); rerun: python -m benchmarks.report {sweep}", file=sys.stderr)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    from ganomaly_tf.cli import quiet_native_logs

    quiet_native_logs()
    sys.exit(main())
