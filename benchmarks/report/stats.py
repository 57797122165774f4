"""Statistics of a sweep over seeds: the tidy per-(model, class) frame every AUC table and plot is drawn from."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmarks.report.sweeps import Sweep

METRICS = {"last": "auc_last", "best": "auc_best"}
"""``--metric`` choices and the summary column each selects."""

METRIC_TITLES = {
    "auc_last": "AUC, last epoch",
    "auc_pr_last": "AUC-PR (average precision, abnormal positive), last epoch",
    "auc_best": "AUC, best-on-test (paper-style, optimistic: selects the epoch on test labels)",
}
METRIC_SHORT = {"auc_last": "last-epoch", "auc_best": "best-on-test"}

TIDY_COLUMNS = ("model", "abnormal_class", "class_name", "mean", "std", "n", "n_failed")


def aggregate(sweep: Sweep, metric: str = "auc_last") -> pd.DataFrame:
    """Tidy per-(model, class) statistics of ``metric`` over seeds.

    Columns: model, abnormal_class, class_name, mean, std (sample, ddof=1; NaN when n < 2), n (successful runs
    with a value), n_failed (failed runs, or successful ones without a value). Every model × expected class
    appears, with n = 0 where nothing ran.
    """
    names = sweep.class_names()
    rows = []
    for model in sweep.models:
        of_model = sweep.runs[sweep.runs["model"] == model]
        for k in sweep.classes:
            group = of_model[of_model["abnormal_class"] == k]
            values = group.loc[group["status"] == "ok", metric].dropna().to_numpy(float)
            n = len(values)
            rows.append(
                {
                    "model": model,
                    "abnormal_class": k,
                    "class_name": names[k],
                    "mean": float(np.mean(values)) if n else math.nan,
                    "std": float(np.std(values, ddof=1)) if n > 1 else math.nan,
                    "n": n,
                    "n_failed": len(group) - n,
                }
            )
    return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))


def class_mean(stats: pd.DataFrame) -> tuple[float, int, int]:
    """(mean of the per-class means, classes with a value, classes expected) of one model's tidy rows."""
    means = stats["mean"].dropna()
    return (float(means.mean()) if len(means) else math.nan), len(means), len(stats)


def full_n(stats: pd.DataFrame) -> int | None:
    """The table's usual number of seeds a cell: the largest n (None when no cell has a value)."""
    return int(stats["n"].max()) if (stats["n"] > 0).any() else None
