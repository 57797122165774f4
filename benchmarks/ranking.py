"""How the models of a sweep rank: mean AUC over classes, and the classes each model wins."""

from __future__ import annotations

import pandas as pd


def ranking(stats: pd.DataFrame) -> pd.DataFrame:
    """Per model with a value for every class: the mean over classes and the classes it wins.

    ``stats`` is the report's tidy frame (model, abnormal_class, mean, ...) of one metric. A class
    is won by the model with the highest mean over seeds; a tie counts for every model in it.
    Rows are ordered by mean, best first.
    """
    classes = set(stats["abnormal_class"])
    valued = stats[stats["mean"].notna()].groupby("model")["abnormal_class"].agg(set)
    complete = [model for model, have in valued.items() if have == classes]
    part = stats[stats["model"].isin(complete)]
    if part.empty:
        return pd.DataFrame(columns=["model", "mean", "wins", "classes"])
    best = part.groupby("abnormal_class")["mean"].transform("max")
    wins = part.assign(win=part["mean"] == best).groupby("model")["win"].sum()
    table = part.groupby("model").agg(mean=("mean", "mean"), classes=("abnormal_class", "nunique"))
    table["wins"] = wins.reindex(table.index).fillna(0).astype(int)
    return table.sort_values("mean", ascending=False).reset_index()[["model", "mean", "wins", "classes"]]


def ranking_statement(stats: pd.DataFrame, display_name, what: str = "last-epoch AUC") -> str:
    """One sentence, e.g. "By mean last-epoch AUC over the 10 classes: GANomaly .778 (best on 7), ..."."""
    table = ranking(stats)
    if len(table) < 2:
        return ""
    parts = [f"{display_name(r.model)} {r.mean:.3f} (best on {r.wins})" for r in table.itertuples()]
    left_out = sorted(set(stats["model"]) - set(table["model"]))
    note = f" Not ranked, some classes missing: {', '.join(display_name(m) for m in left_out)}." if left_out else ""
    return f"By mean {what} over the {int(table['classes'].max())} classes: {', '.join(parts)}.{note}"
