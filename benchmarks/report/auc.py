"""The AUC tables of a sweep: one row a model, one cell a class (mean ± std over seeds), and their notes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmarks.report.ranking import ranking_statement
from benchmarks.report.stats import METRIC_TITLES, aggregate, class_mean, full_n
from benchmarks.report.sweeps import ReportError, Sweep, display_name, load_sweep, order_models
from benchmarks.report.tables import DASH, escape_latex, latex_tabular, markdown_table


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

    Failed runs are added in parentheses, and so is n when it differs from ``full_n`` (the table's usual number of
    seeds; None shows n always).
    """
    n, failed = int(row["n"]), int(row["n_failed"])
    if n == 0:
        return f"failed ({failed})" if failed else style.dash
    text = f"{row['mean']:.3f}" + (f"{style.pm}{row['std']:.3f}" if n > 1 else "")
    extras = ([f"n={n}"] if n != full_n else []) + ([f"{failed} failed"] if failed else [])
    return style.value(text) + (f" ({', '.join(extras)})" if extras else "")


def format_mean(stats: pd.DataFrame) -> str:
    """The "mean over classes" cell: flagged with (k/K) when some classes have no value."""
    mean, have, expected = class_mean(stats)
    if have == 0:
        return ""
    return f"{mean:.3f}" if have == expected else f"{mean:.3f} ({have}/{expected})"


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


def _protocol_columns_note(protocol: str) -> str:
    if protocol == "paper":
        return "Columns: the abnormal class (the other classes are normal)."
    if protocol == "one-class":
        return "Columns: the normal class (the other classes are abnormal), as in the one-class literature."
    return "Columns: each run's `abnormal_class`."


def table_notes(sweep: Sweep, stats: pd.DataFrame, metric: str) -> list[str]:
    """The sentences that go under an AUC table."""
    n = full_n(stats)
    seeds = f"n = {n} seed{'s' if n != 1 else ''} a cell unless given in parentheses" if n else "no values"
    notes = [
        f"{_protocol_columns_note(sweep.protocol)} Cells: mean ± sample std (ddof = 1) over seeds; {seeds}; "
        "no std where n = 1.",
        "mean: the mean of the per-class means; (k/K) marks a mean over only the k classes with a value.",
        f"Failed runs are shown as such and never averaged in; {DASH} means no run.",
    ]
    if metric == "auc_last":
        statement = ranking_statement(sweep.runs, sweep.classes)
        if statement:
            notes.append(statement)
    if metric == "auc_best":
        notes.append(
            "Best-on-test is the highest AUC over epochs, which selects the epoch on the test labels: optimistic, "
            "shown only for comparison with the paper. The honest figure is the last-epoch table."
        )
    return notes + evaluation_notes(sweep.records) + list(sweep.notes)


#: The paper's latent-search length for AnoGAN (the model's default).
PAPER_SEARCH_ITERATIONS = 500


def evaluation_departures(records: Sequence[dict]) -> dict[str, list[tuple[str, bool]]]:
    """Per model, how its evaluation departs from "every epoch, whole test set, the paper's search": each a
    sentence part and whether it changes how the last-epoch AUC itself is measured (a test subset, a shorter
    latent search) rather than only which epochs were evaluated."""
    departures = {}
    for model in order_models({r.get("model") for r in records if r.get("status") == "ok"}):
        own = [r for r in records if r.get("model") == model and r.get("status") == "ok"]
        config = [r.get("config") or {} for r in own]
        parts = []
        scored = [
            (r.get("data") or {}).get("n_test_normal", 0) + (r.get("data") or {}).get("n_test_abnormal", 0) for r in own
        ]
        subsets = {c.get("test_subset") for c in config} - {None}
        # A subset larger than the test set leaves it whole (give or take the stratified rounding).
        if subsets and not all(0 < n < min(subsets) - 2 for n in scored):
            fixed = {c.get("test_subset_seed") for c in config} - {None}
            sizes = " or ".join(f"{n:,}" for n in sorted(subsets))
            text = f"scored on a stratified subset of {sizes} test images (the share of abnormal images kept)"
            parts.append(
                (text + (", the same abnormal images for every seed (a fixed subset seed)" if fixed else ""), True)
            )
        iterations = {(c.get("model_options") or {}).get("score_iterations") for c in config} - {None}
        if iterations:
            text = f"{', '.join(map(str, sorted(iterations)))} latent-search iterations per test image"
            parts.append((text, min(iterations) < PAPER_SEARCH_ITERATIONS))
        if any(
            len(r.get("evaluated_epochs", [])) == 1 < int(r.get("epochs") or 0) or c.get("eval_every") == 0
            for r, c in zip(own, config, strict=True)
        ):
            parts.append(
                ("evaluated after the last epoch only, so its best-on-test is its last epoch (no selection)", False)
            )
        if parts:
            departures[model] = parts
    return departures


def evaluation_notes(records: Sequence[dict]) -> list[str]:
    """Per model, a sentence on how its evaluation departs from "every epoch, whole test set": subset, iterations,
    schedule."""
    return [
        f"{display_name(model)}: " + "; ".join(text for text, _ in parts) + "."
        for model, parts in evaluation_departures(records).items()
    ]


def measurement_caveats(records: Sequence[dict]) -> list[str]:
    """Per model, the departures that change how its last-epoch AUC is measured, when the models of ``records``
    are not all measured alike (empty when they are: a preset that gives every model one test subset)."""
    models = order_models({r.get("model") for r in records if r.get("status") == "ok"})
    departures = evaluation_departures(records)
    measured = {m: [text for text, changes in departures.get(m, []) if changes] for m in models}
    if len({tuple(texts) for texts in measured.values()}) < 2:
        return []
    return [f"{display_name(m)}: {'; '.join(texts)}." for m, texts in measured.items() if texts]


def auc_markdown(sweep: Sweep, stats: pd.DataFrame, metric: str, heading: str = "##") -> str:
    """A titled Markdown AUC table with its notes."""
    header, rows = table_cells(stats, MARKDOWN)
    title = f"{heading} {sweep.title}: {METRIC_TITLES[metric]}" if heading else ""
    body = [markdown_table(header, rows), "", *[f"- {note}" for note in table_notes(sweep, stats, metric)]]
    return "\n".join(([title, ""] if title else []) + body) + "\n"


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
        # Wide tables (ten classes) shrink to the text width; Styler has no option for this wrapper.
        r"\resizebox{\textwidth}{!}{%",
        latex_tabular(header, rows) + "}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def sweep_table(sweep_folder: str | Path) -> str:
    """The last-epoch Markdown AUC table of a sweep folder with its notes, or "no finished runs" when it has none.

    What the runner prints at the end of a sweep.
    """
    try:
        sweep = load_sweep(sweep_folder)
    except ReportError:
        return "no finished runs"
    return auc_markdown(sweep, aggregate(sweep, "auc_last"), "auc_last")
