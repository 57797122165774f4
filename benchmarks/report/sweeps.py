"""Finding sweep folders and reading their runs into frames: the :class:`Sweep` the rest of the report draws on.

A sweep folder is ``<out>/<dataset>/<protocol>/<preset>/``: ``summary.csv`` (one row a run) and
``runs/<run_dir>/`` with each run's ``result.json``, ``history.csv`` and ``scores.npz``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import paper, presets
from benchmarks.store import summary_row
from ganomaly_tf.constants import DATASET_TITLES, MODEL_TITLES
from ganomaly_tf.data.sources import parse_source
from ganomaly_tf.record import SUMMARY_COLUMNS, read_record

MODEL_ORDER = tuple(MODEL_TITLES)

#: The summary columns read as numbers (the rest stay text).
NUMERIC_COLUMNS = tuple(c for c in SUMMARY_COLUMNS if c.startswith("auc") or c.endswith(("epoch", "epochs", "seconds")))


class ReportError(RuntimeError):
    """The folder holds nothing a report can be made of."""


@dataclass(frozen=True)
class Sweep:
    """The runs of one sweep folder and what they have in common."""

    folder: Path
    runs: pd.DataFrame
    dataset: str
    protocol: str
    preset: str
    #: Sentences about runs left out of the tables (another configuration in the same folder).
    notes: tuple[str, ...] = ()

    @cached_property
    def records(self) -> list[dict]:
        """Every tabulated run's record (``result.json`` content), read once."""
        records = []
        for run_dir in self.runs.get("run_dir", ()):
            path = run_path(self.folder, run_dir)
            record = read_record(path) if path else None
            if record is not None:
                records.append(record.to_json())
        return records

    @cached_property
    def histories(self) -> dict[str, pd.DataFrame | None]:
        """Every successful run's ``history.csv`` by run_dir, read once (the tables and several plots use them)."""
        return {d: load_history(self.folder, d) for d in self._ok_run_dirs()}

    @cached_property
    def scores(self) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
        """Every successful run's (scores, labels) by run_dir, read once."""
        return {d: load_scores(self.folder, d) for d in self._ok_run_dirs()}

    def _ok_run_dirs(self) -> list[str]:
        return [d for d in self.runs.loc[self.runs["status"] == "ok", "run_dir"] if d]

    @property
    def title(self) -> str:
        """In words, e.g. "MNIST, paper split, 2 epochs on 12,000 training images"."""
        dataset = dataset_title(self.dataset)
        protocol = {"paper": "paper split", "one-class": "one-class split", "fixed": "its own split"}.get(
            self.protocol, self.protocol
        )
        # The most images any run had: a preset's subset larger than the data left it whole.
        data = [d for r in self.records if r.get("status") == "ok" and "n_train" in (d := r.get("data") or {})]
        sizes = {
            "n_train": max((d["n_train"] + d.get("n_val", 0) for d in data), default=None),
            "n_test": max((d.get("n_test_normal", 0) + d.get("n_test_abnormal", 0) for d in data), default=None),
        }
        return f"{dataset}, {protocol}, {presets.describe(self.preset, **sizes)}"

    @property
    def models(self) -> list[str]:
        return order_models(self.runs["model"].unique())

    @property
    def classes(self) -> list[int]:
        return expected_classes(self.dataset, self.runs["abnormal_class"])

    def class_names(self) -> dict[int, str]:
        return class_names(self.runs, self.dataset, self.classes)

    def class_runs(self, model: str) -> dict[int, pd.DataFrame]:
        """Successful runs of a model, by class, in seed order."""
        runs = self.runs[(self.runs["model"] == model) & (self.runs["status"] == "ok")]
        return {int(k): part.sort_values("seed") for k, part in runs.groupby("abnormal_class", sort=True)}

    def class_histories(self, model: str) -> dict[int, list[pd.DataFrame]]:
        """Successful runs' histories of a model, by class (seed order); classes without any are left out."""
        by_class = {}
        for k, part in self.class_runs(model).items():
            histories = [h for h in (self.histories.get(d) for d in part["run_dir"]) if h is not None]
            if histories:
                by_class[k] = histories
        return by_class


# --------------------------------------------------------------------------------------------------------------------
# Names


def order_models(models: Iterable[str]) -> list[str]:
    """Models in the suite's usual order (GANomaly first), unknown ones after, alphabetically."""
    unique = set(models)
    known = [m for m in MODEL_ORDER if m in unique]
    return known + sorted(unique - set(MODEL_ORDER))


def dataset_title(dataset: str) -> str:
    """How a dataset is named in tables and plots: "MNIST", "bottle (image folder)", ..."""
    if dataset in DATASET_TITLES:
        return DATASET_TITLES[dataset]
    try:
        return parse_source(dataset).title
    except ValueError:  # a name written by other code: as it is
        return str(dataset)


def display_name(model: str) -> str:
    """How a model is named in tables and plots."""
    return MODEL_TITLES.get(model, model)


def expected_classes(dataset: str, present: Iterable[int]) -> list[int]:
    """Classes 0-9 of a known dataset (so missing ones show), plus any others that are present."""
    classes = {int(k) for k in present}
    if paper.canonical_dataset(dataset) in paper.CLASS_NAMES:
        classes |= set(paper.CLASSES)
    return sorted(classes)


def class_names(runs: pd.DataFrame, dataset: str, classes: Sequence[int]) -> dict[int, str]:
    """Class index → name: from the runs, else the dataset's canonical names, else the index."""
    canonical = paper.CLASS_NAMES.get(paper.canonical_dataset(dataset), ())
    names = {k: canonical[k] if 0 <= k < len(canonical) else str(k) for k in classes}
    for k, name in zip(runs["abnormal_class"], runs["class_name"], strict=True):
        if isinstance(name, str) and name and int(k) in names:
            names[int(k)] = name
    return names


def class_axis_label(protocol: str) -> str:
    """What the class index means under a protocol."""
    return {"paper": "abnormal class", "one-class": "normal class"}.get(protocol, "abnormal_class")


# --------------------------------------------------------------------------------------------------------------------
# Reading one sweep


def scan_results(folder: Path) -> pd.DataFrame:
    """Summary rows rebuilt from ``runs/**/result.json`` (for sweeps without ``summary.csv``)."""
    rows = []
    for path in sorted((folder / "runs").rglob("result.json")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # an unfinished run being built (runs/.partial-*)
        row = summary_row(folder, path.parent)
        if row is None:
            print(f"report: skipping unreadable {path}", file=sys.stderr)
            continue
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _dedupe(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, configuration, class, seed): the last successful one if any, else the last one."""
    keys = ["model", "config_id", "abnormal_class", "seed"]
    ranked = runs.assign(_ok=runs["status"].eq("ok")).sort_values("_ok", kind="stable")
    return ranked.drop_duplicates(keys, keep="last").sort_index().drop(columns="_ok")


def _infer_status(runs: pd.DataFrame) -> pd.Series:
    """The status column lower-cased; where it is empty, "ok" if the run has an AUC, else "failed"."""
    status = runs["status"].astype(object).where(runs["status"].notna(), "")
    status = status.map(lambda s: str(s).strip().lower())
    guessed = np.where(runs["auc_last"].notna(), "ok", "failed")
    return pd.Series(np.where(status == "", guessed, status), index=runs.index, dtype=object)


def normalise_runs(runs: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """Complete and type the summary columns; dataset/protocol/preset default to the folder's path."""
    runs = runs.copy()
    for column in SUMMARY_COLUMNS:
        if column not in runs:
            runs[column] = np.nan
    for column in (*NUMERIC_COLUMNS, "abnormal_class", "seed"):
        runs[column] = pd.to_numeric(runs[column], errors="coerce")
    runs = runs[runs["abnormal_class"].notna() & runs["model"].notna()].copy()
    runs["abnormal_class"] = runs["abnormal_class"].astype(int)
    runs["seed"] = runs["seed"].fillna(-1).astype(int)
    runs["model"] = runs["model"].astype(object).map(str)
    runs["status"] = _infer_status(runs)
    parts = folder.resolve().parts
    for column, default in zip(("dataset", "protocol", "preset"), parts[-3:], strict=False):
        runs[column] = runs[column].astype(object).where(runs[column].notna(), default)
    for column, missing in (("class_name", None), ("run_dir", None), ("config_id", "")):
        runs[column] = runs[column].astype(object).where(runs[column].notna(), missing)
    return _dedupe(runs.reset_index(drop=True)).reset_index(drop=True)


def one_configuration(runs: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Per model, the runs of its most common configuration, and a note for each model that had more.

    Seeds are averaged only within one configuration: runs of another (other epochs, batch size,
    BatchNorm mode, threads, ...) are left out of the tables, and the note says how many.
    """
    kept, notes = [], []
    for model, part in runs.groupby("model", sort=False):
        counts = part["config_id"].value_counts()
        main = counts.index[0]
        kept.append(part[part["config_id"] == main])
        if len(counts) > 1:
            others = int(counts.iloc[1:].sum())
            notes.append(
                f"This folder holds {len(counts)} configurations of {display_name(str(model))}: the tables use the "
                f"{int(counts.iloc[0])} runs of configuration {main or 'unknown'} and leave out {others} run(s) of "
                f"other settings ({', '.join(str(c) or 'unknown' for c in counts.index[1:])}; see summary.csv), "
                "which are never averaged with them."
            )
    frame = pd.concat(kept).sort_index() if kept else runs
    return frame.reset_index(drop=True), tuple(notes)


def _common(runs: pd.DataFrame, column: str) -> str:
    values = sorted({str(v) for v in runs[column].dropna()})
    return "+".join(values) if values else "unknown"


def load_sweep(folder: str | Path) -> Sweep:
    """Read a sweep folder: ``summary.csv``, or failing that every ``runs/**/result.json``."""
    folder = Path(folder)
    summary = folder / "summary.csv"
    if summary.is_file():
        runs = pd.read_csv(summary, dtype={"config_id": str})  # hex ids such as 79057e93 are not numbers
    elif (folder / "runs").is_dir():
        runs = scan_results(folder)
    else:
        raise ReportError(f"{folder}: no summary.csv and no runs/ folder; is this a sweep folder?")
    runs = normalise_runs(runs, folder)
    if runs.empty:
        raise ReportError(f"{folder}: no runs found in summary.csv or runs/*/result.json")
    runs, notes = one_configuration(runs)
    dataset = paper.canonical_dataset(_common(runs, "dataset"))
    return Sweep(folder, runs, dataset, _common(runs, "protocol"), _common(runs, "preset"), notes)


def run_path(folder: Path, run_dir: str | None) -> Path | None:
    """A run's folder: ``run_dir`` relative to the sweep folder, or to its ``runs/``."""
    if not run_dir:
        return None
    for candidate in (folder / run_dir, folder / "runs" / run_dir):
        if candidate.is_dir():
            return candidate
    return None


def load_scores(folder: Path, run_dir: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(scores, labels) of one run, or None when its ``scores.npz`` is missing or unusable."""
    path = run_path(folder, run_dir)
    if path is None or not (path / "scores.npz").is_file():
        return None
    try:
        with np.load(path / "scores.npz", allow_pickle=False) as data:
            scores, labels = np.asarray(data["scores"], float).ravel(), np.asarray(data["labels"]).ravel()
    except (OSError, ValueError, KeyError) as err:
        print(f"report: skipping unreadable {path / 'scores.npz'}: {err}", file=sys.stderr)
        return None
    ok = np.isfinite(scores)
    if len(scores) != len(labels) or not ok.any() or len(np.unique(labels[ok])) < 2:
        return None
    return scores[ok], labels[ok].astype(int)


def load_history(folder: Path, run_dir: str | None) -> pd.DataFrame | None:
    """One run's ``history.csv`` with a 1-based ``epoch`` column, or None."""
    path = run_path(folder, run_dir)
    if path is None or not (path / "history.csv").is_file():
        return None
    try:
        history = pd.read_csv(path / "history.csv")
    except (OSError, ValueError) as err:
        print(f"report: skipping unreadable {path / 'history.csv'}: {err}", file=sys.stderr)
        return None
    if history.empty:
        return None
    if "epoch" not in history:
        history.insert(0, "epoch", np.arange(1, len(history) + 1))
    return history


# --------------------------------------------------------------------------------------------------------------------
# Finding sweeps


def is_sweep_folder(folder: Path) -> bool:
    return (folder / "summary.csv").is_file() or (folder / "runs").is_dir()


def find_sweeps(results_root: str | Path) -> list[Path]:
    """Sweep folders under ``results_root``: those holding a ``summary.csv``, in path order."""
    root = Path(results_root)
    return sorted({p.parent for p in root.rglob("summary.csv") if "runs" not in p.relative_to(root).parts[:-1]})


def sweeps_to_report(folder: Path) -> list[Path]:
    """``folder`` itself if it is a sweep folder, else every sweep folder under it; ReportError if none."""
    if not folder.is_dir():
        raise ReportError(f"folder {folder}: no such folder; give a sweep folder or a folder above sweep folders")
    if is_sweep_folder(folder):
        return [folder]
    found = find_sweeps(folder)
    if not found:
        raise ReportError(
            f"folder {folder}: no sweep folders in or under it (a sweep folder holds summary.csv or runs/); "
            "run a sweep first (python -m benchmarks.run) or give its folder"
        )
    return found
