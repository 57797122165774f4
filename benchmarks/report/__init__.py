"""Tables and plots of a sweep, and the README of the committed results.

A sweep folder is ``<out>/<dataset>/<protocol>/<preset>/``; it holds ``summary.csv`` (one row
a run) and ``runs/<run_dir>/`` with each run's ``result.json``, ``history.csv`` and
``scores.npz``. From it the report writes, into the folder (or ``--out``):

- ``auc_last.{md,tex,csv}``, ``auc_best.{md,tex,csv}`` and ``auc_pr_last.{md,tex,csv}``: AUC per
  class for each model, mean ± sample std over seeds; failed runs are flagged, never averaged in;
- ``best_vs_last.md`` and ``auc_by_epoch_<model>``: what choosing the epoch on the test set adds;
- ``model_comparison.md`` and ``critical_difference``: ranks and paired tests between models;
- ``paper_comparison.{md,csv}``: ours beside the paper's values (:mod:`benchmarks.paper`);
- ``auc_by_class``, ``roc_<model>``, ``scores_<model>``, ``training_<model>``, each as PNG and PDF.

Usage::

    python -m benchmarks.report results/mnist/paper/quick            # one sweep
    python -m benchmarks.report results/                              # every sweep under results/
    python -m benchmarks.report --readme results/                     # results/README.md

Modules: :mod:`~benchmarks.report.sweeps` (reading), :mod:`~benchmarks.report.stats` (over seeds),
:mod:`~benchmarks.report.tables` (Markdown/LaTeX layout), :mod:`~benchmarks.report.auc` (the AUC
tables), :mod:`~benchmarks.report.epochs` (best against last), :mod:`~benchmarks.report.ranking`
(models compared), :mod:`~benchmarks.report.comparison` (the paper), :mod:`~benchmarks.report.plots`,
:mod:`~benchmarks.report.build` (one sweep's files), :mod:`~benchmarks.report.readme` and
:mod:`~benchmarks.report.cli`. Nothing here needs TensorFlow or Keras.
"""

from benchmarks.report.auc import auc_latex, auc_markdown, sweep_table
from benchmarks.report.build import build_report
from benchmarks.report.cli import main
from benchmarks.report.readme import results_readme, write_results_readme
from benchmarks.report.stats import aggregate
from benchmarks.report.sweeps import ReportError, Sweep, find_sweeps, load_sweep

__all__ = [
    "ReportError",
    "Sweep",
    "aggregate",
    "auc_latex",
    "auc_markdown",
    "build_report",
    "find_sweeps",
    "load_sweep",
    "main",
    "results_readme",
    "sweep_table",
    "write_results_readme",
]
