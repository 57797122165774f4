"""Run folders on disk: identity, atomic publication, locks and the sweep summary.

Layout: ``<out>/<dataset>/<protocol>/<preset>/`` holds ``summary.csv`` and ``runs/``; each
finished run is ``runs/<model>-c<class>-s<seed>-<hash>/`` with ``config.json``,
``result.json``, ``history.csv``, ``scores.npz`` and ``run.log`` (and ``model.keras``, the
trained model, when the sweep keeps models: ``--save-models``; never committed). A run is built in
``runs/.partial-<name>/`` (which also keeps its per-epoch checkpoints) and renamed into
place when complete, so a folder under its final name is always whole. A lock file per run
(``flock``, released by the OS even on SIGKILL) keeps two runners off the same run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ganomaly_tf import atomic
from ganomaly_tf.config import RunConfig
from ganomaly_tf.data.sources import data_identity, parse_source
from ganomaly_tf.record import SUMMARY_COLUMNS, RunRecord, read_record

__all__ = ["MODEL_FILE", "SUMMARY_COLUMNS", "RunFolder", "rebuild_summary", "run_hash", "run_name", "sweep_dir"]

#: A kept model's file name in its run folder (``--save-models``; ``.gitignore`` keeps it out of git).
MODEL_FILE = "model.keras"


def run_hash(config: RunConfig) -> str:
    """Stable hash of everything that determines a run's result, the data's identity included.

    The Keras backend counts too; TensorFlow, the default, is left out so hashes of
    TensorFlow runs stay what they were before the JAX path existed.
    """
    import keras

    identity = {"config": config.identity(), "data": data_identity(config.dataset)}
    if keras.backend.backend() != "tensorflow":
        identity["backend"] = keras.backend.backend()
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]


def run_name(config: RunConfig) -> str:
    return f"{config.model}-c{config.abnormal_class}-s{config.seed}-{run_hash(config)}"


def sweep_dir(out: Path, dataset: str, protocol: str, preset: str) -> Path:
    """A sweep's folder; a dataset read from files is named without its location (``folder-<name>``)."""
    return Path(out) / parse_source(dataset).label / protocol / preset


class RunFolder:
    """The on-disk state of one run within a sweep folder."""

    def __init__(self, sweep: Path, config: RunConfig):
        self.sweep = Path(sweep)
        self.config = config
        self.name = run_name(config)
        self.final = self.sweep / "runs" / self.name
        self.partial = self.sweep / "runs" / f".partial-{self.name}"
        self.lock_path = self.sweep / "runs" / f".{self.name}.lock"

    @property
    def model_path(self) -> Path:
        """Where a finished run keeps its trained model (``--save-models``): ``<run folder>/model.keras``."""
        return self.final / MODEL_FILE

    def status(self) -> str | None:
        """``ok``, ``failed`` or None (not run, or unfinished)."""
        record = read_record(self.final)
        return None if record is None else record.status

    @contextlib.contextmanager
    def lock(self) -> Iterator[bool]:
        """Yield True if this process holds the run's lock, False if another runner does."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def publish(self, record: RunRecord, scores=None, labels=None, origins=None, *, model=None) -> None:
        """Write the run's files into the partial folder and rename it into place; with ``model``,
        the trained model too, as ``model.keras``, so the folder is whole when it appears."""
        self.partial.mkdir(parents=True, exist_ok=True)
        if model is not None:
            model.save(self.partial / MODEL_FILE)
        elif (self.partial / MODEL_FILE).exists():  # an earlier, interrupted attempt's: not this run's model
            (self.partial / MODEL_FILE).unlink()
        atomic.write_json(self.partial / "config.json", self.config.to_dict())
        if scores is not None:
            np.savez_compressed(
                self.partial / "scores.npz",
                scores=np.asarray(scores, np.float32),
                labels=np.asarray(labels, np.int8),
                origins=np.asarray(origins, np.int64),
            )
        if record.history:
            pd.DataFrame(record.history).to_csv(self.partial / "history.csv", index=False)
        atomic.write_json(self.partial / "result.json", record.to_json())
        for leftover in ("checkpoint", "history.json", "history.scores.npy"):  # resume state
            path = self.partial / leftover
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
        if not self.final.exists():
            os.replace(self.partial, self.final)
            return
        # A failed run being replaced, or --force: the old folder is renamed aside, not deleted, until
        # the new one is in place, so a swap that fails puts it back instead of losing both.
        aside = self.final.with_name(f".old-{self.final.name}")
        if aside.exists():  # an earlier swap's, stopped before its clean-up
            shutil.rmtree(aside)
        os.replace(self.final, aside)
        try:
            os.replace(self.partial, self.final)
        except BaseException:
            os.replace(aside, self.final)
            raise
        shutil.rmtree(aside)


def any_recorded(sweep: Path, grid: Iterable[RunConfig]) -> bool:
    """Whether any run of ``grid`` has a record in ``sweep`` (ok or failed): the sweep then has a table."""
    return any(RunFolder(sweep, config).status() for config in grid)


def summary_row(sweep: Path, run_dir: Path) -> dict | None:
    """The ``summary.csv`` row of a run folder of ``sweep``; None if it holds no readable record."""
    record = read_record(run_dir)
    if record is None:
        return None
    row = record.summary_row(str(run_dir.relative_to(sweep)))
    row["preset"] = row["preset"] or sweep.name
    return row


def rebuild_summary(sweep: Path) -> pd.DataFrame:
    """Rebuild ``summary.csv`` from the run folders (atomically) and return it."""
    sweep = Path(sweep)
    runs = sorted(p for p in (sweep / "runs").glob("*") if p.is_dir() and not p.name.startswith("."))
    rows = [r for r in (summary_row(sweep, p) for p in runs) if r is not None]
    df = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    if len(df):
        df = df.sort_values(["model", "abnormal_class", "seed"], kind="stable").reset_index(drop=True)
    sweep.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(sweep / "summary.csv") as tmp:
        df.to_csv(tmp, index=False)
    return df
