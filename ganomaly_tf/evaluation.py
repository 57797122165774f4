"""Metrics on the whole test set at once (docs/design.md, Evaluation). NumPy and scikit-learn only."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


def check_scores(scores: np.ndarray, labels: np.ndarray) -> None:
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.shape[0]} scores for {labels.shape[0]} test images; expected one per image")
    if not np.all(np.isfinite(scores)):
        bad = int(np.sum(~np.isfinite(scores)))
        raise FloatingPointError(f"{bad} of {scores.size} anomaly scores are not finite; training diverged")


def auc_roc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, abnormal (label 1) as the positive class."""
    check_scores(np.asarray(scores), np.asarray(labels))
    return float(roc_auc_score(labels, scores))


def auc_pr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve), abnormal positive."""
    check_scores(np.asarray(scores), np.asarray(labels))
    return float(average_precision_score(labels, scores))


def summarize(history: list[dict]) -> dict:
    """Headline numbers from per-epoch records, the evaluated ones holding ``auc`` and ``auc_pr``.

    ``auc_last`` is the result; ``auc_best``/``best_epoch`` select the epoch on test
    labels (the official code's reported number: paper-style, optimistic) among the
    evaluated epochs. Epochs without ``auc`` were not evaluated and are ignored.
    """
    history = [h for h in history if "auc" in h]
    if not history:
        return {"auc_last": math.nan, "auc_best": math.nan, "best_epoch": 0, "auc_pr_last": math.nan}
    aucs = [h["auc"] for h in history]
    best = int(np.argmax(aucs))
    return {
        "auc_last": aucs[-1],
        "auc_best": aucs[best],
        "best_epoch": history[best]["epoch"],
        "auc_pr_last": history[-1]["auc_pr"],
    }


def select_on_validation(history: list[dict], key: str) -> dict:
    """The epoch a label-free rule picks: the lowest ``key`` (a validation loss or the mean score
    of the held-out training normals) among the evaluated epochs, and the test AUC there."""
    evaluated = [h for h in history if "auc" in h and key in h]
    if not evaluated:
        return {}
    chosen = min(evaluated, key=lambda h: h[key])
    return {
        "auc_val": chosen["auc"],
        "val_epoch": chosen["epoch"],
        "val_rule": f"lowest {key[len('val_') :]} on the held-out training normals (no test labels)",
    }
