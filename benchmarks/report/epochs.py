"""AUC over epochs: the figure, and how much choosing the epoch on the test set inflates a result.

The result of a run is its last epoch's AUC. The official code reported the best epoch's AUC on
the test set instead, which selects the epoch on test labels. For every model evaluated after
more than one epoch this module draws the AUC against the epoch (one line a class: the mean over
seeds, a band from the lowest to the highest seed) with the last and the best epoch marked, and
tabulates per class the last-epoch AUC, the best-on-test AUC, the epochs that were best, the
inflation (best − last) and the paper's value.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from benchmarks import paper
from benchmarks.report.plots import save_figure
from benchmarks.report.sweeps import Sweep, class_axis_label, display_name
from benchmarks.report.tables import fmt, markdown_table, plural


def epoch_aucs(sweep: Sweep, model: str) -> dict[int, pd.DataFrame]:
    """Per class: AUC by evaluated epoch (index), one column a seed."""
    out = {}
    for k, part in sweep.class_runs(model).items():
        columns = {}
        for seed, run_dir in zip(part["seed"], part["run_dir"], strict=True):
            history = sweep.histories.get(run_dir)
            if history is not None and "auc" in history:
                columns[int(seed)] = history.set_index("epoch")["auc"].dropna()
        if columns:
            out[k] = pd.DataFrame(columns).sort_index()
    return out


def evaluated_per_epoch(aucs: dict[int, pd.DataFrame]) -> bool:
    """Whether any class was evaluated after more than one epoch (otherwise there is no curve)."""
    return any(len(frame) > 1 for frame in aucs.values())


def plot_auc_by_epoch(sweep: Sweep, model: str, out: Path) -> list[Path]:
    """AUC against epoch, a line a class; nothing when the model was not evaluated per epoch."""
    aucs = epoch_aucs(sweep, model)
    if not evaluated_per_epoch(aucs):
        return []
    names = sweep.class_names()
    role = class_axis_label(sweep.protocol).split()[0]
    fig = Figure(figsize=(9, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for k, frame in aucs.items():
        colour = f"C{k % 10}"
        mean = frame.mean(axis=1)
        ax.plot(mean.index, mean.to_numpy(), color=colour, lw=1.4, label=f"{role}: {names[k]}")
        if frame.shape[1] > 1:
            ax.fill_between(mean.index, frame.min(axis=1), frame.max(axis=1), color=colour, alpha=0.12, lw=0)
        ax.plot(mean.index[-1], mean.iloc[-1], "o", color=colour, ms=5)
        ax.plot(mean.idxmax(), mean.max(), "*", color=colour, ms=10, mec="black", mew=0.4)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("AUC on the test set")
    ax.grid(alpha=0.3)
    markers = [
        Line2D([], [], color="grey", marker="o", ls="", label="last epoch (the result)"),
        Line2D([], [], color="grey", marker="*", ms=10, mec="black", mew=0.4, ls="", label="best epoch on test"),
    ]
    handles, _ = ax.get_legend_handles_labels()
    fig.legend(handles=handles + markers, fontsize=7, loc="outside right upper")
    counts = [frame.shape[1] for frame in aucs.values()]
    band = ", band: lowest to highest seed" if max(counts) > 1 else ""
    ax.set_title(
        f"{display_name(model)}, {sweep.title}\nAUC after each epoch, mean over {seed_count(counts)}{band}",
        fontsize=10,
    )
    return save_figure(fig, out, f"auc_by_epoch_{model}")


def seed_count(counts: Iterable[int]) -> str:
    """How many seeds the classes have: "3 seeds", or "1–3 seeds" when they differ."""
    low, high = min(counts), max(counts)
    return plural(high, "seed") if low == high else f"{low}–{high} seeds"


def inflation(sweep: Sweep, model: str) -> pd.DataFrame:
    """Per class: last, best-on-test, the best epochs of the seeds, best − last, the paper's value."""
    comparable = sweep.protocol == paper.PROTOCOL
    names = sweep.class_names()
    rows = []
    for k, part in sweep.class_runs(model).items():
        ok = part.dropna(subset=["auc_last", "auc_best"])
        val = ok.dropna(subset=["auc_val"]) if "auc_val" in ok else ok.iloc[:0]
        rows.append(
            {
                "abnormal_class": k,
                "class_name": names[k],
                "last": ok["auc_last"].mean(),
                "best": ok["auc_best"].mean(),
                "best_epochs": ", ".join(str(int(e)) for e in ok["best_epoch"]),
                "inflation": (ok["auc_best"] - ok["auc_last"]).mean(),
                "val": val["auc_val"].mean() if len(val) else np.nan,
                "val_epochs": ", ".join(str(int(e)) for e in val["val_epoch"]) if len(val) else "",
                "paper": paper.value(sweep.dataset, model, k) if comparable else np.nan,
                "n": len(ok),
            }
        )
    return pd.DataFrame(rows)


def inflation_markdown(sweep: Sweep, model: str, heading: str = "###") -> str:
    """The per-class table of :func:`inflation` with the means, or "" when there is nothing to select from."""
    if not evaluated_per_epoch(epoch_aucs(sweep, model)):
        return ""
    table = inflation(sweep, model)
    header = ["", *table["class_name"].astype(str), "mean"]

    def row(label: str, column: str, signed: bool = False) -> list[str]:
        values = table[column].astype(float)
        return [label, *[fmt(v, signed) for v in values], fmt(values.mean(), signed)]

    expected = len(sweep.classes)
    if len(table) < expected:  # the means cover only the classes with runs
        header[-1] = f"mean ({len(table)}/{expected})"
    rows = [
        row("last epoch (the result)", "last"),
        row("best-on-test (paper-style)", "best"),
        ["best epoch, each seed", *table["best_epochs"], ""],
        row("inflation, best − last", "inflation", signed=True),
    ]
    notes = []
    if table["val"].notna().any():
        gain = table["best"] - table["last"]
        recovered = (table["val"] - table["last"]).sum() / gain.sum() if gain.sum() > 0 else np.nan
        rows += [
            row("validation-selected (label-free)", "val"),
            ["its epoch, each seed", *table["val_epochs"], ""],
        ]
        share = f"{recovered:.0%}" if np.isfinite(recovered) else "nothing (best-on-test gained nothing)"
        notes.append(
            "- Validation-selected: the epoch with the lowest loss of the model's own objective (AnoGAN, EGBAD: the "
            "lowest mean anomaly score) on training normals held out of training (`--val-fraction`), so no test "
            "label is used. Of the best-on-test gain over the "
            f"last epoch, summed over classes, it recovers {share}."
        )
    if table["paper"].notna().any():
        rows.append(row("paper", "paper"))
    seeds = seed_count(table["n"]) if len(table) else "0 seeds"
    if table["n"].nunique() > 1:
        rows.insert(0, ["seeds", *table["n"].astype(str), ""])
        seeds += " (row seeds)"
    return "\n".join(
        [
            f"{heading} {display_name(model)}: last epoch against best-on-test",
            "",
            markdown_table(header, rows),
            "",
            f"- Means over {seeds} a class; the inflation is the mean over seeds of each run's "
            "best-on-test minus its last-epoch AUC: what choosing the epoch on the test labels adds."
            + (f" The means cover the {len(table)} of {expected} classes with runs." if len(table) < expected else ""),
            *notes,
            "",
        ]
    )


def selection_markdown(sweep: Sweep, heading: str = "##") -> str:
    """Last epoch against best-on-test, a table per model evaluated after more than one epoch."""
    return "\n".join(t for t in (inflation_markdown(sweep, m, heading) for m in sweep.models) if t)


#: |ours − paper| within this counts as reproducing the paper's value (AUC).
REPRODUCED_WITHIN = 0.05


def reproduction_statement(sweep: Sweep, model: str = "ganomaly") -> str:
    """Where ``model`` reproduces the paper's per-class AUC and where not, and how much best-on-test inflates.

    Generated from the sweep's numbers: the last-epoch mean a class against the paper's value,
    within ±:data:`REPRODUCED_WITHIN` counting as reproduced; and the mean inflation (best − last).
    """
    table = inflation(sweep, model) if model in sweep.models else pd.DataFrame()
    if table.empty or table["paper"].isna().all():
        return ""
    table = table.dropna(subset=["last", "paper"])
    diff = (table["last"] - table["paper"]).round(6)  # 0.75 - 0.80 is within 0.05, not just outside
    names = table["class_name"].astype(str)
    groups = {
        "reproduced (within ±0.05)": names[diff.abs() <= REPRODUCED_WITHIN],
        "more than 0.05 below": names[diff < -REPRODUCED_WITHIN],
        "more than 0.05 above": names[diff > REPRODUCED_WITHIN],
    }
    parts = [
        f"{what} on {plural(len(which), 'class')} ({', '.join(which)})" for what, which in groups.items() if len(which)
    ]
    text = (
        f"{display_name(model)}'s last-epoch AUC against the paper's value, class by class: "
        + "; ".join(parts)
        + f". Mean over these classes: ours {table['last'].mean():.3f}, paper {table['paper'].mean():.3f}."
    )
    if evaluated_per_epoch(epoch_aucs(sweep, model)):
        worst = table.loc[table["inflation"].idxmax()]
        added, most = fmt(table["inflation"].mean(), True), fmt(worst["inflation"], True)
        text += (
            f" Choosing the epoch on the test labels (best-on-test) would add {added} to the "
            f"mean (most on class {worst['class_name']}: {most})."
        )
    return text
