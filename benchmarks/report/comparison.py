"""Our AUCs beside the paper's (:mod:`benchmarks.paper`): per class, last epoch and best-on-test, and the gaps."""

from __future__ import annotations

import math

import pandas as pd

from benchmarks import paper
from benchmarks.report.sweeps import Sweep, display_name
from benchmarks.report.tables import fmt, markdown_table


def comparison(sweep: Sweep, last: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """Tidy comparison with the paper for models it reports: ours (last, best), paper, and the differences."""
    columns = (
        "model abnormal_class class_name paper ours_last n_last diff_last ours_best n_best diff_best source".split()
    )
    if sweep.protocol != paper.PROTOCOL or not paper.has_reference(sweep.dataset):
        return pd.DataFrame(columns=columns)
    merged = last.merge(best, on=["model", "abnormal_class", "class_name"], suffixes=("_last", "_best"))
    merged = merged[merged["model"].isin(paper.MODELS)]
    rows = []
    for _, row in merged.iterrows():
        model, k = row["model"], int(row["abnormal_class"])
        ref_value = paper.value(sweep.dataset, model, k)
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
            rows.append([name, label, *[fmt(v, signed) for v in values], fmt(_complete_mean(values), signed)])
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
