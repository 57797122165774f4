"""The figures of a sweep, each as PNG and PDF: AUC by class, ROC curves, score histograms, training curves.

The AUC-by-epoch figure is drawn by :mod:`benchmarks.report.epochs` and the critical-difference diagram by
:mod:`benchmarks.report.ranking`; both save through :func:`save_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import roc_auc_score, roc_curve

from benchmarks import paper
from benchmarks.report.stats import METRIC_SHORT
from benchmarks.report.sweeps import MODEL_ORDER, Sweep, class_axis_label, display_name
from ganomaly_tf import atomic

FIGURE_FORMATS = ("png", "pdf")
ROC_GRID = np.linspace(0.0, 1.0, 201)
HISTORY_METRICS = ("auc", "auc_pr")


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
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, dpi=150, metadata=metadata)
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


def plot_roc(sweep: Sweep, model: str, out: Path) -> list[Path]:
    """ROC curves a class, averaged over seeds on a common FPR grid; nothing when no run has scores."""
    fig = Figure(figsize=(6, 5.5), layout="constrained")
    ax = fig.add_subplot()
    names = sweep.class_names()
    drawn = False
    for k, part in sweep.class_runs(model).items():
        pairs = [p for p in (sweep.scores.get(d) for d in part["run_dir"]) if p is not None]
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


def plot_scores(sweep: Sweep, model: str, out: Path) -> list[Path]:
    """Histograms of normal and abnormal scores, one panel a class (min-max scaled a run, pooled over seeds).

    Every class of the sweep gets a panel, so the grid is the same for every model; a class without scores says so.
    """
    names = sweep.class_names()
    pooled = {}
    for k, part in sweep.class_runs(model).items():
        pairs = [p for p in (sweep.scores.get(d) for d in part["run_dir"]) if p is not None]
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
    by_class = sweep.class_histories(model)
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
