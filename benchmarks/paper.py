"""Reference AUCs from the GANomaly paper, each with the place it was printed (the sources listed below).

The ACCV 2018 paper shows MNIST and CIFAR-10 only as a figure; its early arXiv version
(1805.06725 v1/v2, May 2018) printed the numbers as tables. They belong to the ``paper``
split protocol, and the official code reports the best AUC over epochs (selected on the
test labels), so they compare most directly with our best-on-test numbers.

>>> float(reference("mnist").loc["ganomaly", 0])
0.85
>>> source("cifar10", "egbad")
'arXiv 1805.06725 v1/v2, Table 2 (CIFAR-10), "AUC"'

A value this module does not know is NaN and is never filled in by guesswork.
"""

from __future__ import annotations

import math

import pandas as pd

from ganomaly_tf.data.datasets import CIFAR10_CLASSES, CIFAR10_SHORT_CLASSES, MNIST_CLASSES

MODELS = ("anogan", "egbad", "ganomaly")
"""Models with paper values, named as the suite names them."""

CLASSES = tuple(range(10))

CLASS_NAMES: dict[str, tuple[str, ...]] = {"mnist": MNIST_CLASSES, "cifar10": CIFAR10_CLASSES}
"""Canonical class names by dataset (label order 0-9)."""

PAPER_CLASS_NAMES: dict[str, tuple[str, ...]] = {"mnist": MNIST_CLASSES, "cifar10": CIFAR10_SHORT_CLASSES}
"""The class names as the paper and the official code print them."""

PROTOCOL = "paper"
"""The split protocol the reference values were measured under."""

ARXIV = "arXiv 1805.06725 v1/v2"

_TABLES = {"mnist": f'{ARXIV}, Table 1 (MNIST), "AUC"', "cifar10": f'{ARXIV}, Table 2 (CIFAR-10), "AUC"'}

_AUC: dict[str, dict[str, tuple[float, ...]]] = {
    "mnist": {
        "anogan": (0.610, 0.300, 0.535, 0.440, 0.430, 0.420, 0.475, 0.355, 0.400, 0.335),
        "egbad": (0.775, 0.290, 0.670, 0.520, 0.450, 0.430, 0.570, 0.400, 0.545, 0.345),
        "ganomaly": (0.850, 0.330, 0.920, 0.771, 0.770, 0.800, 0.880, 0.780, 0.890, 0.580),
    },
    "cifar10": {
        "anogan": (0.516, 0.492, 0.411, 0.399, 0.335, 0.393, 0.321, 0.399, 0.567, 0.511),
        "egbad": (0.577, 0.514, 0.383, 0.448, 0.374, 0.481, 0.353, 0.526, 0.413, 0.555),
        "ganomaly": (0.625, 0.629, 0.505, 0.577, 0.593, 0.633, 0.653, 0.601, 0.622, 0.614),
    },
}

_CAVEATS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "MNIST AnoGAN and EGBAD: every value is a multiple of .005 and EGBAD's own paper reports AUPRC, "
        "not AUC, on MNIST, so these two rows may have been read off a figure of another metric.",
    ),
    "cifar10": (
        "CIFAR-10 GANomaly, bird: later sources quote .510 instead of .505 "
        "(Skip-GANomaly, Akçay et al., IJCNN 2019, Table I); the table keeps the arXiv value.",
    ),
}

_NOTES: dict[tuple[str, str, int], str] = {
    ("cifar10", "ganomaly", 2): "Skip-GANomaly (IJCNN 2019, Table I) quotes .510",
}

_GENERAL_CAVEAT = (
    "The official code reports the best AUC over epochs (the epoch is selected on the test labels), so the paper's "
    "values compare most directly with our best-on-test numbers; last-epoch numbers can be expected to be lower."
)


def canonical_dataset(dataset: str) -> str:
    """Normalise a dataset name: ``"CIFAR-10"``, ``"cifar_10"`` and ``"cifar10"`` all give ``"cifar10"``.

    Anything else (a source such as ``folder:PATH``) is returned as given: a path is case- and
    hyphen-sensitive.
    """
    name = dataset.strip().lower().replace("-", "").replace("_", "")
    return name if name in CLASS_NAMES else dataset.strip()


def has_reference(dataset: str) -> bool:
    """Whether the paper printed values for this dataset."""
    return canonical_dataset(dataset) in _AUC


def reference(dataset: str) -> pd.DataFrame:
    """Paper AUCs of ``dataset``: rows anogan/egbad/ganomaly, columns class indices 0-9.

    Unknown values are NaN; a dataset the paper did not report gives the same frame with
    NaN everywhere.
    """
    table = _AUC.get(canonical_dataset(dataset), {})
    rows = {model: list(table.get(model, [math.nan] * len(CLASSES))) for model in MODELS}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(CLASSES), dtype=float)
    frame.index.name = "model"
    frame.columns.name = "abnormal_class"
    return frame


def value(dataset: str, model: str, abnormal_class: int) -> float:
    """One paper AUC, NaN when the paper gave none."""
    frame = reference(dataset)
    if model not in frame.index or abnormal_class not in frame.columns:
        return math.nan
    return float(frame.loc[model, abnormal_class])


def source(dataset: str, model: str) -> str:
    """Where the paper values of ``model`` on ``dataset`` were printed; ``""`` when there are none.

    MNIST AnoGAN/EGBAD sources carry a pointer to the caveat about them.
    """
    key = canonical_dataset(dataset)
    if model not in _AUC.get(key, {}):
        return ""
    text = _TABLES[key]
    if key == "mnist" and model in ("anogan", "egbad"):
        text += " (caveat: possibly read off a figure of another metric)"
    return text


def value_source(dataset: str, model: str, abnormal_class: int) -> str:
    """The source of one value, with any note that concerns that value alone."""
    text = source(dataset, model)
    note = _NOTES.get((canonical_dataset(dataset), model, int(abnormal_class)))
    return f"{text}; note: {note}" if text and note else text


def caveats(dataset: str) -> list[str]:
    """Caveats to print wherever this dataset's paper values are shown (empty if it has none)."""
    key = canonical_dataset(dataset)
    if key not in _AUC:
        return []
    return [_GENERAL_CAVEAT, *_CAVEATS.get(key, ())]
