"""Split protocols: which images train, which test, and which are abnormal. NumPy only.

``paper`` reproduces the official GANomaly code's selection image for image (docs/design.md, Data and splits);
``one-class`` is the Deep SVDD / OCGAN protocol; ``fixed`` is the split a dataset brings with it
(an image folder in the official or MVTec layout), the only one such a dataset has. In all three,
no abnormal image is ever in the training set.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np

from .datasets import Dataset

PROTOCOLS = ("paper", "one-class", "fixed")


@dataclass(frozen=True)
class Split:
    """Training and test images of one anomaly-detection task.

    ``x_train`` holds normal images only; ``y_test`` is 0 for normal and 1 for abnormal.
    ``train_origin``/``test_origin`` give each image's source: its index in the original
    train split, or ``len(original train) +`` its index in the original test split.
    Images are uint8 in the dataset's layout (not yet resized or scaled).
    """

    dataset: str
    protocol: str
    abnormal_class: int
    class_name: str
    seed: int
    x_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_origin: np.ndarray
    test_origin: np.ndarray
    #: Held-out training normals for label-free model selection (:func:`hold_out`), or None.
    x_val: np.ndarray | None = None
    val_origin: np.ndarray | None = None

    @property
    def fingerprint(self) -> str:
        """A short hash of which images are where: the split's identity."""
        h = hashlib.sha256()
        parts = (self.train_origin, self.test_origin, self.y_test)
        for a in parts + ((self.val_origin,) if self.val_origin is not None else ()):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def _paper_origins(y_train: np.ndarray, y_test: np.ndarray, k: int, seed: int):
    n_train = len(y_train)
    normal = np.concatenate([np.flatnonzero(y_train != k), n_train + np.flatnonzero(y_test != k)])
    abnormal = np.concatenate([np.flatnonzero(y_train == k), n_train + np.flatnonzero(y_test == k)])
    # np.random.seed(s); np.random.shuffle(arange(N)) in the official code draws this permutation.
    order = np.arange(len(normal))
    np.random.RandomState(seed).shuffle(order)
    cut = int(0.8 * len(normal))
    train = normal[order[:cut]]
    test = np.concatenate([normal[order[cut:]], abnormal])
    labels = np.concatenate([np.zeros(len(normal) - cut, np.int64), np.ones(len(abnormal), np.int64)])
    return train, test, labels


def _one_class_origins(y_train: np.ndarray, y_test: np.ndarray, k: int):
    train = np.flatnonzero(y_train == k)
    test = len(y_train) + np.arange(len(y_test))
    return train, test, (y_test != k).astype(np.int64)


def train_size(dataset: Dataset, abnormal_class: int | str, protocol: str = "paper") -> int:
    """How many training images :func:`make_split` gives (the same for every seed), from the labels alone."""
    _check_protocol(dataset, protocol)
    k = dataset.class_index(abnormal_class)
    if protocol == "paper":
        return int(0.8 * int(np.sum(dataset.y_train != k) + np.sum(dataset.y_test != k)))
    return int(np.sum(dataset.y_train == k))  # one-class and fixed: the class's own training images


def _fixed_origins(dataset: Dataset, k: int):
    train = np.flatnonzero(dataset.y_train == k)
    test_idx = np.flatnonzero(dataset.y_test == k)
    return train, len(dataset.y_train) + test_idx, np.asarray(dataset.test_abnormal, np.int64)[test_idx]


def _check_protocol(dataset: Dataset, protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if dataset.fixed_split != (protocol == "fixed"):
        if dataset.fixed_split:
            raise ValueError(
                f"protocol {protocol!r}: {dataset.name} ({dataset.layout} layout) brings its own split of normal "
                "training images and labelled test images; use protocol 'fixed'"
            )
        raise ValueError(
            f"protocol 'fixed': {dataset.name} has labelled classes and no split of its own; use 'paper' or 'one-class'"
        )


def make_split(dataset: Dataset, abnormal_class: int | str, seed: int = 0, protocol: str = "paper") -> Split:
    """Build the split for one task.

    Parameters
    ----------
    dataset : a :class:`Dataset` from :func:`load_dataset`.
    abnormal_class : index or name. Under ``paper`` it is the abnormal class (the other
        nine are normal); under ``one-class`` it is the *normal* class and the other nine are
        abnormal, as in that literature; under ``fixed`` it is the category (the official
        layout has one, an MVTec AD root one per category). Either way the field is stored as given.
    seed : the split seed (only ``paper`` uses it: it permutes the pooled normals).
    protocol : ``"paper"``, ``"one-class"`` or ``"fixed"`` (the only one of a fixed-split dataset).
    """
    _check_protocol(dataset, protocol)
    k = dataset.class_index(abnormal_class)
    if protocol == "paper":
        train, test, labels = _paper_origins(dataset.y_train, dataset.y_test, k, int(seed))
    elif protocol == "fixed":
        train, test, labels = _fixed_origins(dataset, k)
    else:
        train, test, labels = _one_class_origins(dataset.y_train, dataset.y_test, k)
    pool = np.concatenate([dataset.x_train, dataset.x_test])
    return Split(
        dataset=dataset.name,
        protocol=protocol,
        abnormal_class=k,
        class_name=dataset.class_names[k],
        seed=int(seed),
        x_train=pool[train],
        x_test=pool[test],
        y_test=labels,
        train_origin=train,
        test_origin=test,
    )


def subsample(
    split: Split,
    *,
    train: int | None = None,
    test: int | None = None,
    seed: int = 0,
    test_seed: int | None = None,
) -> Split:
    """A seeded subset of a split: ``train`` training images and/or ``test`` test images.

    Order is kept; the test subset is stratified so both labels keep their proportions. With
    ``test_seed`` the test subset has its own generator: under the paper protocol the abnormal
    test images come in a fixed order, so a fixed ``test_seed`` picks the same abnormal images
    for every ``seed`` (the normal test images differ between seeds by the protocol itself).
    """
    rng = np.random.default_rng(seed)
    tr = np.arange(len(split.x_train))
    te = np.arange(len(split.x_test))
    if train is not None and train < len(tr):
        tr = np.sort(rng.choice(tr, size=train, replace=False))
    if test is not None and test < len(te):
        if test_seed is not None:
            rng = np.random.default_rng(test_seed)
        parts = []
        for label in (0, 1):
            idx = np.flatnonzero(split.y_test == label)
            n = max(1, round(test * len(idx) / len(te)))
            parts.append(rng.choice(idx, size=min(n, len(idx)), replace=False))
        te = np.sort(np.concatenate(parts))
    return Split(
        dataset=split.dataset,
        protocol=split.protocol,
        abnormal_class=split.abnormal_class,
        class_name=split.class_name,
        seed=split.seed,
        x_train=split.x_train[tr],
        x_test=split.x_test[te],
        y_test=split.y_test[te],
        train_origin=split.train_origin[tr],
        test_origin=split.test_origin[te],
    )


def hold_out(split: Split, fraction: float, seed: int) -> Split:
    """Move a seeded ``fraction`` of the training normals into ``x_val`` (at least one image).

    The held-out images are normals the model never trains on; their losses and scores select an
    epoch without looking at test labels. Training and validation keep the training order.
    """
    n = len(split.x_train)
    n_val = min(n - 1, max(1, round(fraction * n)))
    chosen = np.zeros(n, bool)
    chosen[np.random.default_rng([seed, 7]).choice(n, size=n_val, replace=False)] = True
    return dataclasses.replace(
        split,
        x_train=split.x_train[~chosen],
        train_origin=split.train_origin[~chosen],
        x_val=split.x_train[chosen],
        val_origin=split.train_origin[chosen],
    )
