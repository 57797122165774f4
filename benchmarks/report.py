"""Tables and plots of a sweep, and the README of the committed results.

A sweep folder is ``<out>/<dataset>/<protocol>/<preset>/``; it holds ``summary.csv`` (one row
a run) and ``runs/<run_dir>/`` with each run's ``result.json``, ``history.csv`` and
``scores.npz``. From it this module writes, into the folder (or ``--out``):

- ``auc_last.{md,tex,csv}`` and ``auc_best.{md,tex,csv}``: AUC per class for each model,
  mean ± sample std over seeds; failed runs are flagged, never averaged in;
- ``paper_comparison.{md,csv}``: ours beside the paper's values (:mod:`benchmarks.paper`);
- ``auc_by_class``, ``roc_<model>``, ``scores_<model>``, ``training_<model>``, each as PNG and PDF.

Usage::

    python -m benchmarks.report results/mnist/paper/quick            # one sweep
    python -m benchmarks.report --readme results/                     # results/README.md

Nothing here needs TensorFlow or Keras.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import roc_auc_score, roc_curve

from benchmarks import paper, presets, store
from ganomaly_tf.cli import ArgumentParser, add_debug_flag, debugging, fail

METRICS = {"last": "auc_last", "best": "auc_best"}
"""``--metric`` choices and the summary column each selects."""

METRIC_TITLES = {
    "auc_last": "AUC, last epoch",
    "auc_pr_last": "AUC-PR (average precision, abnormal positive), last epoch",
    "auc_best": "AUC, best-on-test (paper-style, optimistic: selects the epoch on test labels)",
}
METRIC_SHORT = {"auc_last": "last-epoch", "auc_best": "best-on-test"}

MODEL_ORDER = ("ganomaly", "anogan", "egbad", "vae", "ae")
MODEL_NAMES = {"ganomaly": "GANomaly", "anogan": "AnoGAN", "egbad": "EGBAD", "vae": "VAE", "ae": "AE"}

SUMMARY_COLUMNS = tuple(store.SUMMARY_COLUMNS)
#: The summary columns read as numbers (the rest stay text).
NUMERIC_COLUMNS = tuple(c for c in SUMMARY_COLUMNS if c.startswith("auc") or c.endswith(("epoch", "epochs", "seconds")))
TIDY_COLUMNS = ("model", "abnormal_class", "class_name", "mean", "std", "n", "n_failed", "n_running")
HISTORY_METRICS = ("auc", "auc_pr")
CONFIG_HIDDEN = ("data_dir",)  # where the data lives: not part of a run's identity

DATASET_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
DASH = "–"
FIGURE_FORMATS = ("png", "pdf")
ROC_GRID = np.linspace(0.0, 1.0, 201)
DEFAULT_SEEDS = (0, 1, 2)  # benchmarks.run's default --seeds
README_COMMAND = "python -m benchmarks.report --readme results/"


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
        """Every tabulated run's ``result.json``, read once."""
        return _run_records(self)

    @property
    def title(self) -> str:
        """In words, e.g. "MNIST, paper split, 2 epochs on 12,000 training images"."""
        dataset = DATASET_TITLES.get(self.dataset, self.dataset)
        protocol = {"paper": "paper split", "one-class": "one-class split"}.get(self.protocol, self.protocol)
        return f"{dataset}, {protocol}, {presets.describe(self.preset)}"

    @property
    def models(self) -> list[str]:
        return order_models(self.runs["model"].unique())

    @property
    def classes(self) -> list[int]:
        return expected_classes(self.dataset, self.runs["abnormal_class"])

    def class_names(self) -> dict[int, str]:
        return class_names(self.runs, self.dataset, self.classes)


# --------------------------------------------------------------------------------------------------------------------
# Reading


def order_models(models: Iterable[str]) -> list[str]:
    """Models in the suite's usual order (GANomaly first), unknown ones after, alphabetically."""
    unique = set(models)
    known = [m for m in MODEL_ORDER if m in unique]
    return known + sorted(unique - set(MODEL_ORDER))


def display_name(model: str) -> str:
    """How a model is named in tables and plots."""
    return MODEL_NAMES.get(model, model)


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


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        print(f"report: skipping unreadable {path}: {err}", file=sys.stderr)
        return None


def scan_results(folder: Path) -> pd.DataFrame:
    """Summary rows rebuilt from ``runs/**/result.json`` (for sweeps without ``summary.csv``)."""
    rows = []
    for path in sorted((folder / "runs").rglob("result.json")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # an unfinished run being built (runs/.partial-*)
        record = _read_json(path)
        if record is None:
            continue
        row = {key: record.get(key) for key in SUMMARY_COLUMNS}
        row["config_id"] = store.config_id(record["config"]) if record.get("config") else None
        row["run_dir"] = path.parent.relative_to(folder).as_posix()
        rows.append(row)
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _dedupe(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, configuration, class, seed): the last successful one if any, else the last one."""
    keys = ["model", "config_id", "abnormal_class", "seed"]
    ranked = runs.assign(_ok=runs["status"].eq("ok")).sort_values("_ok", kind="stable")
    return ranked.drop_duplicates(keys, keep="last").sort_index().drop(columns="_ok")


def _infer_status(runs: pd.DataFrame) -> pd.Series:
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
    for column in NUMERIC_COLUMNS:
        runs[column] = pd.to_numeric(runs[column], errors="coerce")
    for column in ("abnormal_class", "seed"):
        runs[column] = pd.to_numeric(runs[column], errors="coerce")
    runs = runs[runs["abnormal_class"].notna() & runs["model"].notna()].copy()
    runs["abnormal_class"] = runs["abnormal_class"].astype(int)
    runs["seed"] = runs["seed"].fillna(-1).astype(int)
    runs["model"] = runs["model"].astype(object).map(str)
    runs["status"] = _infer_status(runs)
    parts = folder.resolve().parts
    for column, default in zip(("dataset", "protocol", "preset"), parts[-3:], strict=False):
        runs[column] = runs[column].astype(object).where(runs[column].notna(), default)
    runs["class_name"] = runs["class_name"].astype(object).where(runs["class_name"].notna(), None)
    runs["run_dir"] = runs["run_dir"].astype(object).where(runs["run_dir"].notna(), None)
    runs["config_id"] = runs["config_id"].astype(object).where(runs["config_id"].notna(), "")
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
        runs = pd.read_csv(summary)
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
# Aggregation


def aggregate(sweep: Sweep, metric: str = "auc_last") -> pd.DataFrame:
    """Tidy per-(model, class) statistics of ``metric`` over seeds.

    Columns: model, abnormal_class, class_name, mean, std (sample, ddof=1; NaN when n < 2), n (successful runs
    with a value), n_failed (failed runs, or successful ones without a value), n_running (runs left "running").
    Every model × expected class appears, with n = 0 where nothing ran.
    """
    names = sweep.class_names()
    rows = []
    for model in sweep.models:
        of_model = sweep.runs[sweep.runs["model"] == model]
        for k in sweep.classes:
            group = of_model[of_model["abnormal_class"] == k]
            ok = group["status"] == "ok"
            values = group.loc[ok, metric].dropna().to_numpy(float)
            n = len(values)
            rows.append(
                {
                    "model": model,
                    "abnormal_class": k,
                    "class_name": names[k],
                    "mean": float(np.mean(values)) if n else math.nan,
                    "std": float(np.std(values, ddof=1)) if n > 1 else math.nan,
                    "n": n,
                    "n_failed": int((~ok & (group["status"] != "running")).sum() + ok.sum() - n),
                    "n_running": int((group["status"] == "running").sum()),
                }
            )
    return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))


def class_mean(stats: pd.DataFrame) -> tuple[float, int, int]:
    """(mean of the per-class means, classes with a value, classes expected) of one model's tidy rows."""
    means = stats["mean"].dropna()
    return (float(means.mean()) if len(means) else math.nan), len(means), len(stats)


# --------------------------------------------------------------------------------------------------------------------
# Tables


@dataclass(frozen=True)
class Style:
    """How a cell is spelled in one output format."""

    pm: str
    dash: str
    value: Callable[[str], str]


MARKDOWN = Style(pm=" ± ", dash=DASH, value=lambda s: s)
LATEX = Style(pm=r" \pm ", dash="--", value=lambda s: f"${s}$")


def format_cell(row: pd.Series | dict, style: Style, full_n: int | None = None) -> str:
    """One table cell: ``0.850 ± 0.012``; ``failed (1)`` or a dash when there is no value.

    Failed or unfinished runs are added in brackets, and so is n when it differs from ``full_n`` (the table's
    usual number of seeds; None shows n always).
    """
    n, failed, running = int(row["n"]), int(row["n_failed"]), int(row["n_running"])
    flags = ([f"{failed} failed"] if failed else []) + ([f"{running} running"] if running else [])
    if n == 0:
        parts = ([f"failed ({failed})"] if failed else []) + ([f"running ({running})"] if running else [])
        return ", ".join(parts) if parts else style.dash
    text = f"{row['mean']:.3f}" + (f"{style.pm}{row['std']:.3f}" if n > 1 else "")
    extras = ([f"n={n}"] if n != full_n else []) + flags
    return style.value(text) + (f" ({', '.join(extras)})" if extras else "")


def format_mean(stats: pd.DataFrame) -> str:
    """The "mean over classes" cell: flagged with (k/K) when some classes have no value."""
    mean, have, expected = class_mean(stats)
    if have == 0:
        return ""
    return f"{mean:.3f}" if have == expected else f"{mean:.3f} ({have}/{expected})"


def full_n(stats: pd.DataFrame) -> int | None:
    """The table's usual number of seeds a cell: the largest n (None when no cell has a value)."""
    return int(stats["n"].max()) if (stats["n"] > 0).any() else None


def table_cells(stats: pd.DataFrame, style: Style) -> tuple[list[str], list[list[str]]]:
    """Header and rows (model, one cell a class, mean) of a tidy frame, as text."""
    usual = full_n(stats)
    first = stats.drop_duplicates("abnormal_class")
    header = ["model", *[str(name) for name in first["class_name"]], "mean"]
    rows = []
    for model, of_model in stats.groupby("model", sort=False):
        cells = [format_cell(row, style, usual) for _, row in of_model.iterrows()]
        rows.append([display_name(str(model)), *cells, format_mean(of_model) or style.dash])
    return header, rows


def _escape_md(text: str) -> str:
    return text.replace("|", r"\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], numbers: bool = True) -> str:
    """A GitHub-flavoured Markdown table: first column left-aligned, the rest right-aligned if ``numbers``."""
    lines = ["| " + " | ".join(_escape_md(h) for h in header) + " |"]
    lines.append("|" + "|".join([":---", *[("---:" if numbers else ":---")] * (len(header) - 1)]) + "|")
    lines += ["| " + " | ".join(_escape_md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def class_axis_label(protocol: str) -> str:
    """What the class index means under a protocol."""
    return {"paper": "abnormal class", "one-class": "normal class"}.get(protocol, "abnormal_class")


def _protocol_columns_note(protocol: str) -> str:
    if protocol == "paper":
        return "Columns: the abnormal class (the other classes are normal)."
    if protocol == "one-class":
        return "Columns: the normal class (the other classes are abnormal), as in the one-class literature."
    return "Columns: each run's `abnormal_class`."


def table_notes(sweep: Sweep, stats: pd.DataFrame, metric: str) -> list[str]:
    """The sentences that go under an AUC table."""
    n = full_n(stats)
    seeds = f"n = {n} seed{'s' if n != 1 else ''} a cell unless given in brackets" if n else "no values"
    notes = [
        f"{_protocol_columns_note(sweep.protocol)} Cells: mean ± sample std (ddof = 1) over seeds; {seeds}; "
        "no std where n = 1.",
        "mean: the mean of the per-class means; (k/K) marks a mean over only the k classes with a value.",
        f"Failed runs are shown as such and never averaged in; {DASH} means no run.",
    ]
    if metric == "auc_last":
        from benchmarks.ranking import ranking_statement

        statement = ranking_statement(stats, display_name)
        if statement:
            notes.append(statement)
    if metric == "auc_best":
        notes.append(
            "Best-on-test is the highest AUC over epochs, which selects the epoch on the test labels: optimistic, "
            "shown only for comparison with the paper. The honest figure is the last-epoch table."
        )
    return notes + evaluation_notes(sweep.records) + list(sweep.notes)


def evaluation_notes(records: Sequence[dict]) -> list[str]:
    """Per model, how its evaluation departs from "every epoch, whole test set": subset, iterations, schedule."""
    notes = []
    for model in order_models({r.get("model") for r in records if r.get("status") == "ok"}):
        own = [r for r in records if r.get("model") == model and r.get("status") == "ok"]
        config = [r.get("config") or {} for r in own]
        parts = []
        subsets = {c.get("test_subset") for c in config} - {None}
        if subsets:
            fixed = {c.get("test_subset_seed") for c in config} - {None}
            sizes = " or ".join(f"{n:,}" for n in sorted(subsets))
            parts.append(
                f"scored on a stratified subset of {sizes} test images (the share of abnormal images kept)"
                + (", the same abnormal images for every seed (a fixed subset seed)" if fixed else "")
            )
        iterations = {(c.get("model_options") or {}).get("score_iterations") for c in config} - {None}
        if iterations:
            parts.append(f"{', '.join(map(str, sorted(iterations)))} latent-search iterations per test image")
        if any(
            len(r.get("evaluated_epochs", [])) == 1 < int(r.get("epochs") or 0) or c.get("eval_every") == 0
            for r, c in zip(own, config, strict=True)
        ):
            parts.append("evaluated after the last epoch only, so its best-on-test is its last epoch (no selection)")
        if parts:
            notes.append(f"{display_name(model)}: " + "; ".join(parts) + ".")
    return notes


def auc_markdown(sweep: Sweep, stats: pd.DataFrame, metric: str, heading: str = "##") -> str:
    """A titled Markdown AUC table with its notes."""
    header, rows = table_cells(stats, MARKDOWN)
    title = f"{heading} {sweep.title}: {METRIC_TITLES[metric]}" if heading else ""
    body = [markdown_table(header, rows), "", *[f"- {note}" for note in table_notes(sweep, stats, metric)]]
    return "\n".join(([title, ""] if title else []) + body) + "\n"


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    DASH: "--",
    "±": r"$\pm$",
}


def escape_latex(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)


def _latex_cell(cell: str) -> str:
    """Escape a cell that may contain one ``$...$`` math span, leaving the span alone."""
    if cell.count("$") == 2:
        before, math_span, after = cell.split("$")
        return f"{escape_latex(before)}${math_span}${escape_latex(after)}"
    return escape_latex(cell)


def auc_latex(sweep: Sweep, stats: pd.DataFrame, metric: str) -> str:
    """A booktabs LaTeX table (needs ``booktabs`` and ``graphicx``)."""
    header, rows = table_cells(stats, LATEX)
    label = f"tab:{sweep.dataset}-{sweep.protocol}-{sweep.preset}-{metric}".replace("_", "-")
    caption = f"{sweep.title}: {METRIC_TITLES[metric]}. " + " ".join(table_notes(sweep, stats, metric))
    lines = [
        f"% Generated by python -m benchmarks.report from {sweep.title}; do not edit.",
        r"% Needs \usepackage{booktabs} and \usepackage{graphicx}.",
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{escape_latex(caption)}}}",
        rf"\label{{{label}}}",
        r"\resizebox{\textwidth}{!}{%",
        rf"\begin{{tabular}}{{l{'c' * (len(header) - 1)}}}",
        r"\toprule",
        " & ".join(escape_latex(h) for h in header) + r" \\",
        r"\midrule",
        *[" & ".join(_latex_cell(c) for c in row) + r" \\" for row in rows],
        r"\bottomrule",
        r"\end{tabular}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------------------
# The paper's values beside ours


def comparison(sweep: Sweep, last: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Tidy comparison with the paper for models it reports: ours (last, best), paper, and the differences."""
    columns = (
        "model abnormal_class class_name paper ours_last n_last diff_last ours_best n_best diff_best source".split()
    )
    if sweep.protocol != paper.PROTOCOL or not paper.has_reference(sweep.dataset):
        return pd.DataFrame(columns=columns)
    ref = paper.reference(sweep.dataset)
    merged = last.merge(best, on=["model", "abnormal_class", "class_name"], suffixes=("_last", "_best"))
    merged = merged[merged["model"].isin(paper.MODELS)]
    rows = []
    for _, row in merged.iterrows():
        model, k = row["model"], int(row["abnormal_class"])
        ref_value = float(ref.loc[model, k]) if k in ref.columns else math.nan
        rows.append(
            {
                "model": model,
                "abnormal_class": k,
                "class_name": row["class_name"],
                "paper": ref_value,
                "ours_last": row["mean_last"],
                "n_last": int(row["n_last"]),
                "diff_last": row["mean_last"] - ref_value,
                "ours_best": row["mean_best"],
                "n_best": int(row["n_best"]),
                "diff_best": row["mean_best"] - ref_value,
                "source": paper.value_source(sweep.dataset, model, k),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def _fmt(value: float, signed: bool = False) -> str:
    if value is None or not np.isfinite(value):
        return DASH
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _complete_mean(values: pd.Series) -> float:
    """The mean over classes, only when every class has a value."""
    return float(values.mean()) if len(values) and values.notna().all() else math.nan


def comparison_markdown(sweep: Sweep, table: pd.DataFrame, heading: str = "##") -> str:
    """The comparison as Markdown: five rows a model, classes as columns, sources and caveats below."""
    title = [f"{heading} {sweep.title}: compared with the paper", ""] if heading else []
    if table.empty:
        why = (
            f"The paper's values were measured under the `{paper.PROTOCOL}` protocol; this sweep uses "
            f"`{sweep.protocol}`, so they are not comparable."
            if sweep.protocol != paper.PROTOCOL
            else "None of this sweep's models or datasets has values in the paper."
        )
        return "\n".join([*title, why]) + "\n"
    header = ["model", "AUC", *[str(n) for n in table.drop_duplicates("abnormal_class")["class_name"]], "mean"]
    rows = []
    for model, part in table.groupby("model", sort=False):
        quantities = [
            ("ours, last-epoch", part["ours_last"], False),
            ("ours, best-on-test", part["ours_best"], False),
            ("paper", part["paper"], False),
            ("Δ last − paper", part["diff_last"], True),
            ("Δ best − paper", part["diff_best"], True),
        ]
        for i, (label, values, signed) in enumerate(quantities):
            name = display_name(str(model)) if i == 0 else ""
            rows.append([name, label, *[_fmt(v, signed) for v in values], _fmt(_complete_mean(values), signed)])
    notes = comparison_notes(sweep, table)
    return "\n".join([*title, markdown_table(header, rows), "", *[f"- {n}" for n in notes]]) + "\n"


def comparison_notes(sweep: Sweep, table: pd.DataFrame) -> list[str]:
    """Sources and caveats of the paper values shown (per-value notes are among the caveats)."""
    models = list(dict.fromkeys(table["model"]))
    notes = ["Ours: mean over seeds (see the AUC tables for std and n); mean over classes only when all are present."]
    by_source: dict[str, list[str]] = {}
    for model in models:
        by_source.setdefault(paper.source(sweep.dataset, model), []).append(display_name(model))
    notes += [f"Paper, {', '.join(names)}: {text}." for text, names in by_source.items()]
    notes += [f"Caveat: {c}" for c in paper.caveats(sweep.dataset)]
    return notes


# --------------------------------------------------------------------------------------------------------------------
# Plots


def model_colour(model: str, models: Sequence[str]) -> str:
    """A stable colour a model: its place in the suite's order."""
    order = [*MODEL_ORDER, *[m for m in models if m not in MODEL_ORDER]]
    return f"C{order.index(model) % 10}"


def save_figure(fig: Figure, out: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` (without creation dates, so reruns give the same PDF)."""
    paths = []
    for ext in FIGURE_FORMATS:
        path = out / f"{stem}.{ext}"
        metadata = {"CreationDate": None} if ext == "pdf" else None
        fig.savefig(path, dpi=150, metadata=metadata)
        paths.append(path)
    return paths


def plot_auc_by_class(sweep: Sweep, stats: pd.DataFrame, metric: str, out: Path) -> list[Path]:
    """AUC by class, one line a model with seed error bars, the paper's values dashed (after its Figure 4)."""
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.add_subplot()
    classes = sweep.classes
    x = np.arange(len(classes))
    models = sweep.models
    ref = paper.reference(sweep.dataset) if sweep.protocol == paper.PROTOCOL else None
    handles = []
    for i, model in enumerate(models):
        part = stats[stats["model"] == model].set_index("abnormal_class").reindex(classes)
        colour = model_colour(model, models)
        offset = (i - (len(models) - 1) / 2) * 0.06
        yerr = part["std"].fillna(0.0).to_numpy()
        ours = ax.errorbar(
            x + offset,
            part["mean"],
            yerr=yerr,
            color=colour,
            marker="o",
            capsize=3,
            lw=1.5,
            label=f"{display_name(model)} (ours)",
        )
        handles.append(ours)
        if ref is not None and model in ref.index and ref.loc[model].notna().any():
            values = ref.loc[model].reindex(classes).to_numpy(float)
            handles += ax.plot(
                x, values, color=colour, ls="--", marker="s", mfc="none", lw=1, label=f"{display_name(model)} (paper)"
            )
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    names = sweep.class_names()
    ax.set_xticks(x, [names[k] for k in classes], rotation=30 if sweep.dataset == "cifar10" else 0)
    ax.set_xlabel(class_axis_label(sweep.protocol))
    ax.set_ylabel("AUC")
    ax.set_ylim(0.0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=8, ncol=2, loc="lower right")
    ax.set_title(f"{sweep.title}: {METRIC_SHORT[metric]} AUC, mean ± std over seeds", fontsize=10)
    return save_figure(fig, out, "auc_by_class")


def _class_runs(sweep: Sweep, model: str) -> dict[int, pd.DataFrame]:
    """Successful runs of a model, by class."""
    runs = sweep.runs[(sweep.runs["model"] == model) & (sweep.runs["status"] == "ok")]
    return {int(k): part.sort_values("seed") for k, part in runs.groupby("abnormal_class", sort=True)}


def _subplots(n: int, ncols: int, size: tuple[float, float]) -> tuple[Figure, list]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def mean_roc(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Mean and std of TPR on :data:`ROC_GRID` over runs, and each run's AUC."""
    curves, aucs = [], []
    for scores, labels in pairs:
        fpr, tpr, _ = roc_curve(labels, scores)
        curve = np.interp(ROC_GRID, fpr, tpr)
        curve[0] = 0.0
        curves.append(curve)
        aucs.append(float(roc_auc_score(labels, scores)))
    stacked = np.vstack(curves)
    return stacked.mean(axis=0), stacked.std(axis=0), aucs


def plot_roc(sweep: Sweep, model: str, scores: dict[str, tuple], out: Path) -> list[Path]:
    """ROC curves a class, averaged over seeds on a common FPR grid; nothing when no run has scores."""
    fig = Figure(figsize=(6, 5.5), layout="constrained")
    ax = fig.add_subplot()
    names = sweep.class_names()
    drawn = False
    for k, part in _class_runs(sweep, model).items():
        pairs = [scores[d] for d in part["run_dir"] if scores.get(d) is not None]
        if not pairs:
            continue
        mean, std, aucs = mean_roc(pairs)
        colour = f"C{k % 10}"
        ax.plot(ROC_GRID, mean, color=colour, lw=1.5, label=f"{names[k]}: {np.mean(aucs):.3f} (n={len(pairs)})")
        ax.fill_between(ROC_GRID, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=colour, alpha=0.1)
        drawn = True
    if not drawn:
        return []
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(title="class: AUC of final scores", fontsize=7, title_fontsize=8, loc="lower right")
    ax.set_title(f"{display_name(model)}, {sweep.title}: ROC, mean ± std over seeds", fontsize=10)
    return save_figure(fig, out, f"roc_{model}")


def _minmax(scores: np.ndarray) -> np.ndarray:
    span = scores.max() - scores.min()
    return (scores - scores.min()) / span if span > 0 else np.zeros_like(scores)


def plot_scores(sweep: Sweep, model: str, scores: dict[str, tuple], out: Path) -> list[Path]:
    """Histograms of normal and abnormal scores, one panel a class (min-max scaled a run, pooled over seeds).

    Every class of the sweep gets a panel, so the grid is the same for every model; a class without scores says so.
    """
    names = sweep.class_names()
    pooled = {}
    for k, part in _class_runs(sweep, model).items():
        pairs = [scores[d] for d in part["run_dir"] if scores.get(d) is not None]
        if pairs:
            pooled[k] = (np.concatenate([_minmax(s) for s, _ in pairs]), np.concatenate([y for _, y in pairs]))
    if not pooled:
        return []
    fig, axes = _subplots(len(sweep.classes), 5, (2.6, 2.1))
    bins = np.linspace(0, 1, 41)
    role = class_axis_label(sweep.protocol).split()[0]  # "abnormal" or "normal"
    for ax, k in zip(axes, sweep.classes, strict=True):
        ax.set_title(f"{role}: {names[k]}", fontsize=9)
        ax.tick_params(labelsize=7)
        if k not in pooled:
            ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes, color="grey")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        values, labels = pooled[k]
        for label, colour, name in ((0, "C0", "normal"), (1, "C3", "abnormal")):
            density, _ = np.histogram(values[labels == label], bins=bins, density=True)
            ax.stairs(density, bins, fill=True, alpha=0.5, color=colour, label=name)
    fig.legend(*_first_handles(axes), loc="outside right upper", fontsize=7)
    fig.supxlabel("anomaly score (min–max scaled per run)", fontsize=9)
    fig.supylabel("density", fontsize=9)
    fig.suptitle(f"{display_name(model)}, {sweep.title}: test scores, pooled over seeds", fontsize=10)
    return save_figure(fig, out, f"scores_{model}")


def _first_handles(axes: Sequence) -> tuple[list, list[str]]:
    """Legend entries of the first panel that has any."""
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            return handles, labels
    return [], []


def history_columns(histories: Iterable[pd.DataFrame]) -> list[str]:
    """Panels of the training plot: auc, auc_pr, then every numeric loss column in first-seen order."""
    seen: dict[str, None] = {}
    for history in histories:
        for column in history.select_dtypes("number").columns:
            seen.setdefault(column, None)
    return [c for c in HISTORY_METRICS if c in seen] + [c for c in seen if is_loss_column(c)]


def is_loss_column(column: str) -> bool:
    """A history column that is a loss: not the epoch, a metric, a timing or a learning rate."""
    name = column.lower()
    timing = "second" in name or "time" in name or name.endswith(("_s", "per_s"))
    return not (name in ("epoch", "step", "lr", "learning_rate") or name.startswith("auc") or timing)


def _history_panel(ax, by_class: dict[int, list[pd.DataFrame]], column: str, names: dict[int, str]) -> None:
    """One panel of the training plot: ``column`` by epoch, the mean over seeds a class.

    Loss axes turn logarithmic when the curves are positive and span more than a factor of 30.
    """
    lows, highs = [], []
    for k, histories in by_class.items():
        frames = [h[["epoch", column]] for h in histories if column in h]
        if not frames:
            continue
        mean = pd.concat(frames).groupby("epoch")[column].mean().dropna()
        if mean.empty:
            continue
        lows.append(mean.min())
        highs.append(mean.max())
        ax.plot(mean.index, mean.to_numpy(), color=f"C{k % 10}", lw=1.2, marker=".", label=names[k])
    if column not in HISTORY_METRICS and lows and min(lows) > 0 and max(highs) / min(lows) > 30:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(column, fontsize=9)
    ax.set_ylabel(column, fontsize=8)
    ax.tick_params(which="both", labelsize=7)
    ax.grid(alpha=0.3)


def plot_training(sweep: Sweep, model: str, out: Path) -> list[Path]:
    """Per-epoch AUC and losses, mean over seeds a class; nothing when no run has a history."""
    names = sweep.class_names()
    by_class = {}
    for k, part in _class_runs(sweep, model).items():
        histories = [h for h in (load_history(sweep.folder, d) for d in part["run_dir"]) if h is not None]
        if histories:
            by_class[k] = histories
    histories = [h for hs in by_class.values() for h in hs]
    # A panel that would be flat at zero (e.g. no re-initialisation of D ever) is left out.
    columns = [c for c in history_columns(histories) if any(h[c].fillna(0).ne(0).any() for h in histories if c in h)]
    if not columns:
        return []
    fig, axes = _subplots(len(columns), 4, (3.2, 2.5))
    for ax, column in zip(axes, columns, strict=True):
        _history_panel(ax, by_class, column, names)
    fig.supxlabel("epoch", fontsize=9)
    fig.legend(*_first_handles(axes), loc="outside right upper", fontsize=7, title="class")
    fig.suptitle(f"{display_name(model)}, {sweep.title}: training curves, mean over seeds a class", fontsize=10)
    return save_figure(fig, out, f"training_{model}")


def load_all_scores(sweep: Sweep) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """Scores of every successful run, keyed by run_dir (each file read once)."""
    ok = sweep.runs[sweep.runs["status"] == "ok"]
    return {d: load_scores(sweep.folder, d) for d in ok["run_dir"] if d}


def make_plots(sweep: Sweep, stats: pd.DataFrame, metric: str, out: Path) -> list[Path]:
    """Every plot of a sweep; returns the files written."""
    paths = plot_auc_by_class(sweep, stats, metric, out)
    scores = load_all_scores(sweep)
    from benchmarks.epochs import plot_auc_by_epoch
    from benchmarks.ranking import auc_matrix, average_ranks, plot_critical_difference, pvalue_matrix, wilcoxon_holm

    matrix = auc_matrix(sweep.runs)
    ranks = average_ranks(matrix)
    if len(ranks) > 1:
        title = f"{sweep.title}\naverage rank over (class, seed) pairs, last-epoch AUC; bars: no significant difference"
        fig = plot_critical_difference(
            ranks, pvalue_matrix(wilcoxon_holm(matrix), list(ranks.index)), title, display_name
        )
        paths += save_figure(fig, out, "critical_difference")
    for model in sweep.models:
        paths += plot_auc_by_epoch(sweep, model, out)
        paths += plot_roc(sweep, model, scores, out)
        paths += plot_scores(sweep, model, scores, out)
        paths += plot_training(sweep, model, out)
    return paths


# --------------------------------------------------------------------------------------------------------------------
# One sweep's report


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False, float_format="%.6g", lineterminator="\n")
    return path


def selection_markdown(sweep: Sweep, heading: str = "##") -> str:
    """Last epoch against best-on-test, a table per model evaluated after more than one epoch."""
    from benchmarks.epochs import inflation_markdown

    return "\n".join(t for t in (inflation_markdown(sweep, m, heading) for m in sweep.models) if t)


def write_tables(sweep: Sweep, out: Path) -> tuple[dict[str, Path], dict[str, pd.DataFrame]]:
    """The AUC tables (md, tex, csv for last and best) and the paper comparison (md, csv).

    Returns the files written (name → path) and the tidy statistics by metric column.
    """
    written: dict[str, Path] = {}
    stats = {metric: aggregate(sweep, metric) for metric in (*METRICS.values(), "auc_pr_last")}
    for metric, frame in stats.items():
        written[f"{metric}.md"] = _write(out / f"{metric}.md", auc_markdown(sweep, frame, metric))
        written[f"{metric}.tex"] = _write(out / f"{metric}.tex", auc_latex(sweep, frame, metric))
        written[f"{metric}.csv"] = _write_csv(out / f"{metric}.csv", frame)
    selection = selection_markdown(sweep)
    if selection:
        written["best_vs_last.md"] = _write(out / "best_vs_last.md", selection)
    from benchmarks.ranking import comparison_markdown as models_markdown

    models = models_markdown(sweep.runs, display_name)
    if models:
        written["model_comparison.md"] = _write(out / "model_comparison.md", f"{models}")
    table = comparison(sweep, stats["auc_last"], stats["auc_best"])
    written["paper_comparison.md"] = _write(out / "paper_comparison.md", comparison_markdown(sweep, table))
    written["paper_comparison.csv"] = _write_csv(out / "paper_comparison.csv", table)
    return written, stats


def build_report(
    folder: str | Path, out: str | Path | None = None, metric: str = "last", plots: bool = True
) -> dict[str, Path]:
    """Write every table and plot of the sweep in ``folder`` into ``out`` (default: the folder itself).

    ``metric`` ("last" or "best") selects the AUC that the ``auc_by_class`` plot shows; both tables are always
    written. Returns file name → path, e.g. ``{"auc_last.md": ..., "roc_ganomaly.png": ...}``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    sweep = load_sweep(folder)
    out = Path(out) if out is not None else sweep.folder
    out.mkdir(parents=True, exist_ok=True)
    written, stats = write_tables(sweep, out)
    if plots:
        written.update({p.name: p for p in make_plots(sweep, stats[METRICS[metric]], METRICS[metric], out)})
    return written


# --------------------------------------------------------------------------------------------------------------------
# results/README.md


def find_sweeps(results_root: str | Path) -> list[Path]:
    """Sweep folders under ``results_root``: those holding a ``summary.csv``, in path order."""
    root = Path(results_root)
    return sorted({p.parent for p in root.rglob("summary.csv") if "runs" not in p.relative_to(root).parts[:-1]})


def reconstruct_command(sweep: Sweep) -> str:
    """The ``benchmarks.run`` command line that produces this sweep."""
    classes = sorted(set(sweep.runs["abnormal_class"]))
    expected = sweep.classes
    which = "--all-classes" if classes == expected else "--classes " + " ".join(map(str, classes))
    seeds = sorted(set(sweep.runs["seed"]))
    command = (
        f"python -m benchmarks.run --dataset {sweep.dataset} {which} --preset {sweep.preset} "
        f"--protocol {sweep.protocol} --models {' '.join(sweep.models)}"
    )
    return command if seeds == list(DEFAULT_SEEDS) else f"{command} --seeds {' '.join(map(str, seeds))}"


def _flatten(record: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return flat


def _run_records(sweep: Sweep) -> list[dict]:
    records = []
    for run_dir in sweep.runs["run_dir"]:
        path = run_path(sweep.folder, run_dir)
        record = _read_json(path / "result.json") if path and (path / "result.json").is_file() else None
        if record is not None:
            records.append(record)
    return records


def _tally(values: Iterable[str]) -> str:
    counts = pd.Series(list(values), dtype=object).value_counts()
    if len(counts) == 1:
        return f"`{counts.index[0]}`"
    return ", ".join(f"`{v}` ({counts[v]} runs)" for v in sorted(counts.index))


def environment_rows(records: Sequence[dict]) -> list[list[str]]:
    """(field, value(s)) of the runs' ``environment`` records; differing values are listed with counts."""
    flat = [_flatten(r.get("environment") or {}) for r in records]
    keys = sorted({k for f in flat for k in f})
    return [[k, _tally(f[k] for f in flat if k in f)] for k in keys]


def shared_config(records: Sequence[dict]) -> dict[str, str]:
    """Config fields (flattened) with the same value in every record; seed, class and the like drop out."""
    flat = [_flatten({k: v for k, v in (r.get("config") or {}).items() if k not in CONFIG_HIDDEN}) for r in records]
    if not flat:
        return {}
    keys = sorted(set.intersection(*(set(f) for f in flat)))
    return {k: flat[0][k] for k in keys if all(f[k] == flat[0][k] for f in flat)}


def config_sections(records: Sequence[dict], models: Sequence[str]) -> list[str]:
    """Collapsible Markdown tables: the config all runs share, then what each model's runs add to it."""
    common = shared_config(records)
    sections = [("all runs", common)]
    for model in models:
        own = shared_config([r for r in records if r.get("model") == model])
        sections.append((f"{display_name(model)} runs", {k: v for k, v in own.items() if common.get(k) != v}))
    lines = []
    for who, fields in sections:
        if fields:
            rows = [[k, f"`{v}`"] for k, v in fields.items()]
            lines += [f"<details><summary>Configuration shared by {who}</summary>", ""]
            lines += [markdown_table(["field", "value"], rows, numbers=False), "", "</details>", ""]
    return lines


def _mentions_batchnorm(key: str) -> bool:
    words = re.split(r"[^a-z0-9]+", key.lower())
    return "bn" in words or any(w.startswith(("batchnorm", "batch_norm")) for w in words) or "batch_norm" in key.lower()


def _batchnorm_fields(records: Sequence[dict]) -> list[list[str]]:
    flat = [_flatten(r.get("config") or {}) for r in records]
    keys = sorted({k for f in flat for k in f if _mentions_batchnorm(k)})
    return [[k, _tally(f[k] for f in flat if k in f)] for k in keys]


def _run_counts(sweep: Sweep) -> str:
    status = sweep.runs["status"].value_counts()
    seeds = ", ".join(str(s) for s in sorted(set(sweep.runs["seed"])))
    epochs = sorted({int(e) for e in sweep.runs["epochs"].dropna()})
    seconds = sweep.runs["train_seconds"].sum(min_count=1)
    counts = ", ".join(f"{status[s]} {s}" for s in sorted(status.index, key=lambda s: (s != "ok", s)))
    text = f"{len(sweep.runs)} runs ({counts}); seeds {seeds}"
    text += f"; epochs {', '.join(map(str, epochs))}" if epochs else ""
    return text + (f"; training time {_duration(seconds)} in all" if np.isfinite(seconds) else "") + "."


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _plot_links(sweep: Sweep, results_root: Path) -> list[str]:
    link_base = Path(os.path.relpath(sweep.folder, results_root)).as_posix()
    labels = {
        "auc_by_class": "AUC by class",
        "auc_by_epoch": "AUC by epoch",
        "critical_difference": "critical-difference diagram",
        "roc": "ROC",
        "scores": "score distributions",
        "training": "training",
    }
    lines = []
    for png in sorted(sweep.folder.glob("*.png")):
        kind = next((k for k in sorted(labels, key=len, reverse=True) if png.stem.startswith(f"{k}_")), None)
        model = png.stem[len(kind) + 1 :] if kind else ""
        label = labels.get(png.stem) or (f"{labels[kind]}, {display_name(model)}" if kind else png.stem)
        pdf = png.with_suffix(".pdf")
        extra = f" ([PDF]({link_base}/{pdf.name}))" if pdf.is_file() else ""
        lines.append(f"- [{label}]({link_base}/{png.name}){extra}")
    if (sweep.folder / "auc_by_class.png").is_file():
        lines += ["", f"![AUC by class, {sweep.title}]({link_base}/auc_by_class.png)"]
    if (sweep.folder / "auc_by_epoch_ganomaly.png").is_file():
        lines += ["", f"![GANomaly's AUC by epoch, {sweep.title}]({link_base}/auc_by_epoch_ganomaly.png)"]
    return lines


def sweep_section(sweep: Sweep, results_root: Path) -> str:
    """The README section of one sweep: how it was made, its tables and its plots."""
    records = sweep.records
    last, best = aggregate(sweep, "auc_last"), aggregate(sweep, "auc_best")
    lines = [f"## {sweep.title}", "", "Produced by:", "", "```bash", reconstruct_command(sweep), "```", ""]
    lines += [f"Preset `{sweep.preset}`, protocol `{sweep.protocol}`; {_run_counts(sweep)}", ""]
    from benchmarks.epochs import reproduction_statement

    statement = reproduction_statement(sweep)
    lines += [f"**In short.** {statement}", ""] if statement else []
    lines += [auc_markdown(sweep, last, "auc_last", "###"), auc_markdown(sweep, best, "auc_best", "###")]
    lines += [auc_markdown(sweep, aggregate(sweep, "auc_pr_last"), "auc_pr_last", "###")]
    lines += [selection_markdown(sweep, "###")]
    from benchmarks.ranking import comparison_markdown as models_markdown

    lines += [models_markdown(sweep.runs, display_name, "###")]
    lines += [comparison_markdown(sweep, comparison(sweep, last, best), "###")]
    env = environment_rows(records)
    if env:
        lines += [
            "Environment (from each run's `result.json`):",
            "",
            markdown_table(["field", "value"], env, numbers=False),
            "",
        ]
    bn = _batchnorm_fields(records)
    if bn:
        lines += ["BatchNorm at test time:", "", markdown_table(["config field", "value"], bn, numbers=False), ""]
    lines += config_sections(records, sweep.models)
    links = _plot_links(sweep, results_root)
    if links:
        lines += ["### Plots", "", *links, ""]
    return "\n".join(lines)


EXPLANATION = f"""## How to read these numbers

**Last-epoch versus best-on-test.** Every run is evaluated on the whole test set after each epoch. The result of
a run is its *last-epoch* AUC: nothing about it depends on the test labels. The *best-on-test* AUC is the highest
AUC over epochs; it picks the epoch by looking at the test labels, so it is optimistic. It is shown because the
official GANomaly code reports that maximum, which makes it the like-for-like figure for the paper's values. On
MNIST the AUC often peaks in the first epoch or two and then decays, so the two can differ by several points: that
gap is a finding, not a bug.

**BatchNorm at test time.** By default the networks score test images with BatchNorm in inference mode (the moving
statistics learnt in training), so a score does not depend on which other images share its batch. The official
code never switched its networks to inference mode, so its scores used the statistics of each test batch (training
mode) and depended on the order of the test set. The suite offers that mode as an explicit option for comparison;
each run's configuration records which mode it used.

**Paper values.** Reference numbers come from {paper.ARXIV} (Table 1 MNIST, Table 2 CIFAR-10, "AUC"), the early
arXiv version that printed them as tables (the ACCV paper shows them only as a figure); each comparison lists its
sources and caveats. They belong to the `paper` split protocol only.

**Statistics.** Cells are means over seeds ± the sample standard deviation (ddof = 1); failed runs are listed,
never averaged in.
"""


def _try_load(folder: Path) -> Sweep | None:
    """A sweep, or None (with a warning) when the folder holds no runs yet."""
    try:
        return load_sweep(folder)
    except ReportError as err:
        print(f"report: leaving out of the README: {err}", file=sys.stderr)
        return None


def results_readme(results_root: Path, sweeps: Sequence[Path]) -> str:
    """The text of ``results/README.md`` (deterministic: no dates, everything sorted)."""
    loaded = [s for s in (_try_load(folder) for folder in sorted(Path(s) for s in sweeps)) if s is not None]
    loaded.sort(key=readme_order)
    lines = [
        "# Results",
        "",
        f"<!-- Generated by `{README_COMMAND}` from the sweep folders below; edit benchmarks/report.py, "
        "not this file. -->",
        "",
        "Generated tables and plots of the committed sweeps. Each sweep folder (`<dataset>/<protocol>/<preset>/`) "
        "holds `summary.csv`, one folder a run under `runs/` (result, per-epoch history, test scores), and the "
        "tables and plots below. Regenerate a sweep's report with `python -m benchmarks.report <sweep folder>` "
        f"and this page with `{README_COMMAND}`.",
        "",
    ]
    if loaded:
        index = [
            [f"[{s.title}](#{_anchor(s.title)})", ", ".join(display_name(m) for m in s.models), str(len(s.runs))]
            for s in loaded
        ]
        lines += [markdown_table(["sweep", "models", "runs"], index, numbers=False), ""]
    else:
        lines += ["No sweep folders with a `summary.csv` yet.", ""]
    lines += [EXPLANATION]
    lines += [sweep_section(s, results_root) for s in loaded]
    return "\n".join(lines).rstrip("\n") + "\n"


def readme_order(sweep: Sweep) -> tuple:
    """The paper schedule first, then the other presets; MNIST before CIFAR-10; the paper split first."""
    presets_first = ("paper", "quick", "ci", "smoke")
    base = sweep.preset.split("+")[0]
    rank = presets_first.index(base) if base in presets_first else len(presets_first)
    datasets_first = ("mnist", "cifar10")
    data = datasets_first.index(sweep.dataset) if sweep.dataset in datasets_first else len(datasets_first)
    return (rank, sweep.preset != base, data, sweep.protocol != "paper", str(sweep.folder))


def _anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def write_results_readme(results_root: str | Path, sweeps: Sequence[str | Path] | None = None) -> Path:
    """Write ``results_root/README.md`` for ``sweeps`` (default: every sweep folder under ``results_root``)."""
    root = Path(results_root)
    folders = find_sweeps(root) if sweeps is None else [Path(s) for s in sweeps]
    return _write(root / "README.md", results_readme(root, folders))


# --------------------------------------------------------------------------------------------------------------------
# Command line


def parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m benchmarks.report",
        description=(
            "Tables (Markdown, LaTeX, CSV), a comparison with the paper's values and plots (PNG, PDF) of one sweep "
            "folder <out>/<dataset>/<protocol>/<preset>/, or of every sweep folder under a folder (e.g. results/); "
            "or, with --readme, the README of a results folder."
        ),
        epilog=(
            "Examples:\n"
            "  python -m benchmarks.report results/mnist/paper/quick\n"
            "  python -m benchmarks.report results/            # every sweep under results/\n"
            "  python -m benchmarks.report results/mnist/paper/quick --out /tmp/report --metric best\n"
            "  python -m benchmarks.report --readme results/"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "folder",
        nargs="?",
        type=Path,
        help="a sweep folder (holding summary.csv or runs/), or a folder above sweep folders",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="write the report here instead of into the sweep folder"
    )
    parser.add_argument(
        "--metric",
        choices=tuple(METRICS),
        default="last",
        help="AUC printed and plotted by class: 'last' (last epoch, the default and the honest "
        "figure) or 'best' (best-on-test, paper-style, optimistic). Both tables are written.",
    )
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="write the tables only")
    parser.add_argument(
        "--readme",
        type=Path,
        metavar="RESULTS_DIR",
        help="write RESULTS_DIR/README.md from every sweep folder under it that has a summary.csv",
    )
    add_debug_flag(parser)
    return parser


def is_sweep_folder(folder: Path) -> bool:
    return (folder / "summary.csv").is_file() or (folder / "runs").is_dir()


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


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    p = parser()
    args = p.parse_args(argv)
    if args.folder is None and args.readme is None:
        fail(p, "nothing to do: give a sweep folder (or a folder above sweeps), --readme RESULTS_DIR, or both")

    def body() -> int:
        if args.folder is not None:
            sweeps = sweeps_to_report(args.folder)
            for folder in sweeps:
                out = None if args.out is None else args.out / folder.relative_to(args.folder)
                written = build_report(folder, out, args.metric, args.plots)
                if len(sweeps) == 1:
                    print(Path(written[f"{METRICS[args.metric]}.md"]).read_text(encoding="utf-8"))
                    print("Wrote:", *(f"  {path}" for path in written.values()), sep="\n")
                else:
                    print(f"Wrote {len(written)} files for {folder}" + (f" into {out}" if out else ""))
        if args.readme is not None:
            print(f"Wrote {write_results_readme(args.readme)}")
        return 0

    try:
        return body()
    except ReportError as err:
        if debugging(args):
            raise
        fail(p, str(err))
    return 2


if __name__ == "__main__":
    sys.exit(main())
