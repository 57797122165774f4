"""How the models of a sweep compare: mean AUC and classes won; average ranks; paired Wilcoxon
signed-rank tests with Holm's correction; a critical-difference diagram; bootstrap intervals.

scipy, statsmodels and scikit-posthocs are imported where they are used: they are slow to import
and only the model comparison needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmarks.report.plots import save_figure
from benchmarks.report.sweeps import Sweep, display_name
from benchmarks.report.tables import DASH, fmt, markdown_table, plural


def shared_class_means(matrix: pd.DataFrame) -> pd.DataFrame:
    """Per class (rows), each model's mean (columns) over the seeds where every model of ``matrix`` has a
    value, so no model's mean over three seeds meets another's single seed; classes without one are left out."""
    return matrix.dropna().groupby(level="abnormal_class").mean()


def ranking(runs: pd.DataFrame, classes: list[int], metric: str = "auc_last") -> pd.DataFrame:
    """Per model with a value in every one of ``classes``: its mean over classes and the classes it wins,
    on the (class, seed) pairs where every such model has a value, so no model's mean over three seeds
    meets another's single seed. A class is won by the highest mean over those seeds; a tie counts for
    every model in it. Columns model, mean, wins, classes (compared), pairs (shared), of (all pairs);
    best mean first.
    """
    matrix = auc_matrix(runs, metric)
    have = matrix.notna().groupby(level="abnormal_class").any().reindex(classes, fill_value=False)
    complete = [model for model in matrix.columns if have[model].all()]
    shared = matrix[complete].dropna()
    if shared.empty:
        return pd.DataFrame(columns=["model", "mean", "wins", "classes", "pairs", "of"])
    per_class = shared_class_means(matrix[complete])
    wins = per_class.eq(per_class.max(axis=1), axis=0).sum()
    table = pd.DataFrame({"mean": per_class.mean(), "wins": wins.astype(int)})
    table = table.assign(classes=len(per_class), pairs=len(shared), of=len(matrix))
    return table.sort_values("mean", ascending=False).rename_axis("model").reset_index()


def ranking_statement(runs: pd.DataFrame, classes: list[int], what: str = "last-epoch AUC") -> str:
    """One sentence, e.g. "By mean last-epoch AUC over the 10 classes, on the 30 (class, seed) pairs every
    ranked model ran: GANomaly 0.778 (best on 7), ..."; "" with fewer than two models to rank."""
    table = ranking(runs, classes)
    if len(table) < 2:
        return ""
    parts = [f"{display_name(r.model)} {r.mean:.3f} (best on {r.wins})" for r in table.itertuples()]
    pairs, of = int(table["pairs"].iloc[0]), int(table["of"].iloc[0])
    shared = (
        f"on all {pairs} (class, seed) pairs"
        if pairs == of
        else f"on the {pairs} of {of} (class, seed) pairs every ranked model ran (so a mean can differ from the cells)"
    )
    left_out = sorted(set(runs["model"]) - set(table["model"]))
    note = f" Not ranked, some classes missing: {', '.join(display_name(m) for m in left_out)}." if left_out else ""
    return f"By mean {what} over {plural(int(table['classes'].iloc[0]), 'class')}, {shared}: {', '.join(parts)}.{note}"


# -- statistics across models (ADBench style) --------------------------------------------------


def auc_matrix(runs: pd.DataFrame, metric: str = "auc_last") -> pd.DataFrame:
    """AUC of every successful run: index (abnormal_class, seed), one column a model."""
    ok = runs[(runs["status"] == "ok") & runs[metric].notna()]
    return ok.pivot_table(index=["abnormal_class", "seed"], columns="model", values=metric, aggfunc="mean")


def average_ranks(matrix: pd.DataFrame) -> pd.Series:
    """Mean rank of each model over the rows where every model has a value (1 = highest AUC; ties share)."""
    complete = matrix.dropna()
    if complete.empty:
        return pd.Series(dtype=float)
    return complete.rank(axis=1, ascending=False).mean().sort_values()


def wilcoxon_holm(matrix: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """A paired two-sided Wilcoxon signed-rank test for every pair of models, over the rows both have,
    with Holm's correction for the number of pairs. ``mean_diff`` is A − B."""
    from itertools import combinations

    from scipy.stats import wilcoxon
    from statsmodels.stats.multitest import multipletests

    rows = []
    for a, b in combinations(matrix.columns, 2):
        pair = matrix[[a, b]].dropna()
        diff = pair[a] - pair[b]
        p = 1.0 if len(pair) == 0 or (diff == 0).all() else float(wilcoxon(pair[a], pair[b]).pvalue)
        rows.append({"model_a": a, "model_b": b, "n": len(pair), "mean_diff": float(diff.mean()), "p": p})
    table = pd.DataFrame(rows, columns=["model_a", "model_b", "n", "mean_diff", "p"])
    if len(table):
        reject, corrected, _, _ = multipletests(table["p"], alpha=alpha, method="holm")
        table["p_holm"], table["significant"] = corrected, reject
    return table


def pvalue_matrix(tests: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """The Holm-corrected p-values as a symmetric model × model matrix (1 on the diagonal)."""
    matrix = pd.DataFrame(1.0, index=models, columns=models)
    for r in tests.itertuples():
        matrix.loc[r.model_a, r.model_b] = matrix.loc[r.model_b, r.model_a] = r.p_holm
    return matrix


#: Fewer seeds than this get no bootstrap interval: resampling two or three seed means only returns their range.
MIN_BOOTSTRAP_SEEDS = 5


def bootstrap_means(
    runs: pd.DataFrame, metric: str = "auc_last", resamples: int = 10_000, min_seeds: int = MIN_BOOTSTRAP_SEEDS
) -> pd.DataFrame:
    """Per model: the mean over classes of each seed's AUC; their mean, lowest and highest, and a 95 %
    percentile bootstrap interval over seeds (NaN with fewer than ``min_seeds`` seeds with every class)."""
    from scipy.stats import bootstrap

    matrix = auc_matrix(runs, metric)
    classes = matrix.index.get_level_values("abnormal_class").unique()
    rows = []
    for model in matrix.columns:
        by_seed = matrix[model].unstack("abnormal_class").reindex(columns=classes)
        seed_means = by_seed.dropna().mean(axis=1).to_numpy()
        low = high = float("nan")
        if len(seed_means) >= max(min_seeds, 2) and seed_means.std() > 0:
            ci = bootstrap(
                (seed_means,), np.mean, n_resamples=resamples, confidence_level=0.95, method="percentile", rng=0
            ).confidence_interval
            low, high = float(ci.low), float(ci.high)
        some = len(seed_means) > 0
        rows.append(
            {
                "model": model,
                "seeds": len(seed_means),
                "mean": float(seed_means.mean()) if some else float("nan"),
                "lowest": float(seed_means.min()) if some else float("nan"),
                "highest": float(seed_means.max()) if some else float("nan"),
                "ci_low": low,
                "ci_high": high,
            }
        )
    return pd.DataFrame(rows, columns=["model", "seeds", "mean", "lowest", "highest", "ci_low", "ci_high"])


def _sort_crossbars(ax) -> None:
    """Order each horizontal line's points by x. scikit-posthocs draws a crossbar through a set of models,
    whose iteration order follows PYTHONHASHSEED; sorted, a rebuilt report writes the same PDF bytes."""
    for line in ax.get_lines():
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        if len(x) > 1 and np.all(y == y[0]):
            line.set_data(np.sort(x), y)


def plot_critical_difference(sweep: Sweep, out: Path) -> list[Path]:
    """A critical-difference diagram (scikit-posthocs) of the last-epoch AUC: average ranks, and bars joining
    models that the Wilcoxon–Holm tests do not tell apart at the 5 % level; nothing with fewer than two models."""
    matrix = auc_matrix(sweep.runs)
    ranks = average_ranks(matrix)
    if len(ranks) < 2:
        return []
    import scikit_posthocs as sp

    pvalues = pvalue_matrix(wilcoxon_holm(matrix), list(ranks.index))
    names = {m: display_name(m) for m in ranks.index}
    fig = Figure(figsize=(7, 0.6 + 0.35 * len(ranks)), layout="constrained")
    ax = fig.add_subplot()
    sp.critical_difference_diagram(
        ranks.rename(index=names), pvalues.rename(index=names, columns=names), ax=ax, alpha=0.05
    )
    _sort_crossbars(ax)
    title = f"{sweep.title}\naverage rank over (class, seed) pairs, last-epoch AUC; bars: no significant difference"
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, out, "critical_difference")


def models_markdown(
    runs: pd.DataFrame, heading: str = "##", what: str = "last-epoch AUC", caveats: Sequence[str] = ()
) -> str:
    """Average ranks, the Wilcoxon–Holm table and the bootstrap intervals of a sweep with 2+ models ("" otherwise);
    ``caveats``: how some models' AUCs were measured differently (test subsets, schedules), said under the ranks."""
    matrix = auc_matrix(runs)
    if matrix.shape[1] < 2:
        return ""
    per_class = shared_class_means(matrix)
    ranks = pd.DataFrame({"over classes": average_ranks(per_class), "over classes × seeds": average_ranks(matrix)})
    ranks = ranks.sort_values("over classes")
    rank_rows = [
        [display_name(m), *(f"{v:.2f}" if np.isfinite(v) else DASH for v in row)] for m, row in ranks.iterrows()
    ]
    tests = wilcoxon_holm(matrix)
    test_rows = [
        [f"{display_name(r.model_a)} − {display_name(r.model_b)}", str(r.n), fmt(r.mean_diff, signed=True),
         f"{r.p:.4f}", f"{r.p_holm:.4f}", "yes" if r.significant else "no"]
        for r in tests.itertuples()
    ]  # fmt: skip
    boot = bootstrap_means(runs)
    boot_rows = [
        [display_name(r.model), str(r.seeds), f"{r.mean:.3f}" if np.isfinite(r.mean) else DASH,
         f"{r.lowest:.3f} – {r.highest:.3f}" if r.seeds > 1 else DASH,
         f"[{r.ci_low:.3f}, {r.ci_high:.3f}]" if np.isfinite(r.ci_low) else DASH]
        for r in boot.itertuples()
    ]  # fmt: skip
    n_classes = len(per_class)
    return "\n".join(
        [
            f"{heading} Models compared: ranks and paired tests ({what})",
            "",
            markdown_table(["model", "average rank over classes", "over classes × seeds"], rank_rows),
            "",
            f"- Rank 1 is the highest AUC; a model's rank is averaged over the {plural(n_classes, 'class')} with a "
            "seed every model ran (per-class means over those seeds), and over every (class, seed) pair where all "
            "have a value." + (" Not every AUC is measured alike: " + " ".join(caveats) if caveats else ""),
            "",
            markdown_table(["pair (A − B)", "pairs", "mean A − B", "p", "p, Holm", "significant at 5 %"], test_rows),
            "",
            "- Paired two-sided Wilcoxon signed-rank tests over the (class, seed) pairs both models ran, with "
            "Holm's correction for the number of pairs (scipy, statsmodels). The critical-difference diagram "
            "(`critical_difference.png`) joins models these tests do not tell apart.",
            "",
            markdown_table(
                [
                    "model",
                    "seeds with every class",
                    "mean over classes",
                    "seeds: lowest – highest",
                    f"95 % bootstrap interval ({MIN_BOOTSTRAP_SEEDS}+ seeds)",
                ],
                boot_rows,
            ),  # fmt: skip
            "",
            "- Each seed's mean over classes, over the seeds a model ran on every class: their mean, their range, "
            f"and a percentile bootstrap interval (10,000 resamples) of their mean from {MIN_BOOTSTRAP_SEEDS} seeds "
            "on (with fewer, resampling the seed means only returns their range).",
            "",
        ]
    )
