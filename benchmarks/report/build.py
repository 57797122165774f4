"""One sweep's report: every table and figure written into a folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmarks import paper
from benchmarks.report.auc import auc_latex, auc_markdown, measurement_caveats
from benchmarks.report.comparison import comparison, comparison_markdown
from benchmarks.report.epochs import plot_auc_by_epoch, selection_markdown
from benchmarks.report.plots import plot_auc_by_class, plot_roc, plot_scores, plot_training
from benchmarks.report.ranking import models_markdown, plot_critical_difference
from benchmarks.report.stats import METRICS, TIDY_COLUMNS, aggregate
from benchmarks.report.sweeps import Sweep, load_sweep
from ganomaly_tf import atomic

#: The published ``auc_*.csv`` layout: the tidy columns.
CSV_COLUMNS = TIDY_COLUMNS


def _write(path: Path, text: str) -> Path:
    return atomic.write_text(path, text)


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    with atomic.replacing(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
    return path


def write_tables(sweep: Sweep, out: Path) -> tuple[dict[str, Path], dict[str, pd.DataFrame]]:
    """The AUC tables (md, tex, csv for last, best and AUC-PR), best-vs-last, the model comparison and the paper
    comparison (md, csv).

    Returns the files written (name → path) and the tidy statistics by metric column.
    """
    written: dict[str, Path] = {}
    stats = {metric: aggregate(sweep, metric) for metric in (*METRICS.values(), "auc_pr_last")}
    for metric, frame in stats.items():
        written[f"{metric}.md"] = _write(out / f"{metric}.md", auc_markdown(sweep, frame, metric))
        written[f"{metric}.tex"] = _write(out / f"{metric}.tex", auc_latex(sweep, frame, metric))
        written[f"{metric}.csv"] = _write_csv(out / f"{metric}.csv", frame[list(CSV_COLUMNS)])
    selection = selection_markdown(sweep)
    if selection:
        written["best_vs_last.md"] = _write(out / "best_vs_last.md", selection)
    models = models_markdown(sweep.runs, caveats=measurement_caveats(sweep.records))
    if models:
        written["model_comparison.md"] = _write(out / "model_comparison.md", models)
    if paper.has_reference(sweep.dataset):  # the paper printed MNIST and CIFAR-10 only
        table = comparison(sweep, stats["auc_last"], stats["auc_best"])
        written["paper_comparison.md"] = _write(out / "paper_comparison.md", comparison_markdown(sweep, table))
        written["paper_comparison.csv"] = _write_csv(out / "paper_comparison.csv", table)
    return written, stats


def make_plots(sweep: Sweep, stats: pd.DataFrame, metric: str, out: Path) -> list[Path]:
    """Every figure of a sweep (``stats`` of ``metric`` for AUC by class); returns the files written."""
    paths = plot_auc_by_class(sweep, stats, metric, out) + plot_critical_difference(sweep, out)
    for model in sweep.models:
        for plot in (plot_auc_by_epoch, plot_roc, plot_scores, plot_training):
            paths += plot(sweep, model, out)
    return paths


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
