"""Executing a sweep: one run into its folder, and a grid of runs one after another or in processes.

A run that fails is recorded as failed and the sweep goes on; a finished run is skipped when the
sweep is run again; a run another runner holds (its lock) is left to it; under a time limit, a run
that would not finish in time is deferred (not started), for the next invocation. ``summary.csv`` is
rebuilt after every run, so partial results are on disk as soon as they exist.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from ganomaly_tf.config import RunConfig
from ganomaly_tf.record import RunRecord, read_record

from . import presets
from .store import RunFolder, any_recorded, rebuild_summary


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


# -- time limits ---------------------------------------------------------------------------

#: Under a time limit a run starts only if its expected duration times this still fits: the
#: estimate comes from other runs, and these machines' speed drifts within an hour.
TIME_MARGIN = 1.25


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90m``, ``2h30m``, ``2.5h``, ``45s`` or ``1h5m30s``; ValueError if none."""
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text.strip())
    if not text.strip() or parts is None:
        raise ValueError(f"--time-limit {text!r}: not a duration; write hours, minutes, seconds as 2h30m, 90m or 45s")
    h, m, s = (float(x or 0) for x in parts.groups())
    seconds = 3600 * h + 60 * m + s
    if seconds <= 0:
        raise ValueError(f"--time-limit {text!r}: must be longer than zero, e.g. 90m")
    return seconds


def run_seconds(record: RunRecord) -> float:
    """Wall seconds a finished run spent training and evaluating, over every process that worked on it."""
    scoring = (h.get("score_seconds") for h in record.history)  # NaN or absent for epochs not evaluated
    return (record.train_seconds or 0.0) + sum(s for s in scoring if s is not None and math.isfinite(s))


def expected_seconds(folder: RunFolder) -> float | None:
    """How long ``folder``'s run should take from now: the median of the finished runs of the same
    model in its sweep (until it has one, in the sweeps of the same protocol and preset of other
    datasets beside it), less the share of epochs an interrupted attempt has checkpointed.
    None when there is no finished run to go by."""
    sweep, model = folder.sweep, folder.config.model
    out = sweep.parents[2] if len(sweep.parents) > 2 else sweep  # <out>/<dataset>/<protocol>/<preset>
    beside = out.glob(f"*/{sweep.parent.name}/{sweep.name}/runs/{model}-*")
    for run_dirs in (sweep.glob(f"runs/{model}-*"), beside):
        durations = [
            run_seconds(record)
            for run_dir in run_dirs
            if (record := read_record(run_dir, with_history=True)) is not None and record.status == "ok"
        ]
        if durations:
            break
    else:
        return None
    history = folder.partial / "history.json"
    done = len(json.loads(history.read_text())["history"]) if history.exists() else 0
    return statistics.median(durations) * max(0.0, 1 - done / folder.config.epochs)


def deferral(folder: RunFolder, deadline: float | None) -> str | None:
    """Why ``folder``'s run should not start before ``deadline`` (a ``time.time()``), or None to start it.

    A run with nothing to estimate it by starts while any time is left."""
    if deadline is None:
        return None
    left = deadline - time.time()
    if left <= 0:
        return "the time limit has passed"
    need = expected_seconds(folder)
    if need is not None and need * TIME_MARGIN > left:
        return f"needs about {_fmt_eta(need)} (by finished runs of {folder.config.model}), {_fmt_eta(left)} left"
    return None


# -- one run -------------------------------------------------------------------------------


def execute(
    sweep: Path,
    config: RunConfig,
    preset: str,
    force: bool,
    verbosity: int,
    save_model: bool = False,
    deadline: float | None = None,
) -> tuple[str, float]:
    """Run one configuration into its folder; returns (status, seconds). Never raises for a failed run.

    ``save_model``: keep the trained model in the folder (``model.keras``) and a label-free
    threshold in its record (:func:`ganomaly_tf.experiment.label_free_threshold`), for
    ``python -m ganomaly_tf.score``. Neither changes the run's identity, folder or results.
    ``deadline`` (a ``time.time()``): a run expected to end after it is ``"deferred"``, not started.
    """
    from ganomaly_tf.experiment import THRESHOLD_PERCENTILE, run

    folder = RunFolder(sweep, config)
    start = time.perf_counter()
    with folder.lock() as mine:
        if not mine:
            return "locked", 0.0
        if folder.status() == "ok" and not force:
            return "skipped", 0.0
        label = f"{config.model} class {config.abnormal_class} seed {config.seed}"
        why = deferral(folder, deadline)
        if why is not None:
            if verbosity >= 1:
                print(f"    {label}: deferred: {why}", flush=True)
            return "deferred", 0.0
        folder.partial.mkdir(parents=True, exist_ok=True)
        log = folder.partial / "run.log"
        callbacks = [_epoch_logger(f"    {label}", config.epochs, log, echo=verbosity >= 1)]
        try:
            result = run(
                config,
                callbacks=callbacks,
                verbose=2 if verbosity >= 2 else 0,
                backup_dir=folder.partial,
                threshold_percentile=THRESHOLD_PERCENTILE if save_model else None,
            )
            record = result.record
            if not math.isfinite(record.auc_last):  # never "ok" without a result
                raise FloatingPointError(f"the last epoch's AUC is {record.auc_last}")
            record.preset, record.preset_settings = preset, presets.PRESETS[preset.split("+")[0]]
            folder.publish(
                record, result.scores, result.labels, result.origins, model=result.model if save_model else None
            )
            status = "ok"
        except KeyboardInterrupt:
            raise
        except Exception as e:  # a failed run is recorded and the sweep goes on
            record = RunRecord.failure(config, e, traceback.format_exc(), backend=_backend())
            record.preset = preset
            with open(log, "a") as f:
                f.write(record.traceback)
            folder.publish(record)
            status = "failed"
            if verbosity >= 1:
                print(f"    {label}: FAILED: {record.error}", file=sys.stderr, flush=True)
    return status, time.perf_counter() - start


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _worker_init() -> None:
    """A worker process of ``--jobs N``: Ctrl-C ends it silently (the parent reports the interruption;
    the run's checkpoints and its lock, which the OS releases, stay)."""
    import signal

    from ganomaly_tf.cli import quiet_native_logs

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    quiet_native_logs()  # its stderr filter is the parent's; its logging filter is per process


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
    save_models: bool = False,
    deadline: float | None = None,
) -> dict[str, int]:
    """Execute a grid into one sweep folder; returns counts per status.

    ``save_models``: each run keeps its model and a label-free threshold (see :func:`execute`).
    ``deadline`` (a ``time.time()``): runs that would end after it are deferred (see :func:`deferral`).
    A finished run is skipped all the same: one line says how many have no model, and that
    ``--force`` retrains them (a deterministic run retrains to the same bits on the same machine).
    """
    counts = {"ok": 0, "failed": 0, "skipped": 0, "locked": 0, "deferred": 0}
    todo = [c for c in grid if force or RunFolder(sweep, c).status() != "ok"]
    counts["skipped"] = len(grid) - len(todo)
    if save_models and not force:
        finished = [RunFolder(sweep, c) for c in grid if RunFolder(sweep, c).status() == "ok"]
        without = sum(not folder.model_path.exists() for folder in finished)
        if without:
            print(
                f"{without} finished run(s) in {sweep} have no model.keras (they ran without --save-models) and are "
                "skipped; add --force to retrain them and keep their models",
                file=sys.stderr,
                flush=True,
            )
    if verbosity >= 1:
        print(f"{len(grid)} runs in {sweep}: {counts['skipped']} already finished, {len(todo)} to do", flush=True)
    durations: list[float] = []
    start = time.perf_counter()

    def progress(done: int, config: RunConfig, status: str, took: float) -> None:
        counts[status] += 1
        if status in ("ok", "failed"):
            durations.append(took)
        if status == "deferred":  # nothing changed on disk; execute has said why
            return
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
            status, took = execute(sweep, config, preset, force, verbosity, save_models, deadline)
            progress(i, config, status, took)
    else:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init) as pool:
            futures = {pool.submit(execute, sweep, c, preset, force, verbosity, save_models, deadline): c for c in todo}
            for i, fut in enumerate(as_completed(futures), 1):
                config = futures[fut]
                try:
                    status, took = fut.result()
                except Exception as e:  # the worker process itself died
                    print(f"worker for {RunFolder(sweep, config).name} died: {e!r}", file=sys.stderr)
                    status, took = "failed", 0.0
                progress(i, config, status, took)
    if any_recorded(sweep, grid):  # no summary for a sweep that has no run yet
        rebuild_summary(sweep)
    return counts
