"""Any dataset stored as MNIST's four IDX files (Fashion-MNIST, KMNIST, EMNIST splits, your own).

The files keep MNIST's names (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each ``.gz`` or raw); the labels are the
classes, numbered 0..K-1 and named by their numbers. There are no canonical hashes: the manifest
of the four files is the data's identity, and the headers are checked against each other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import readers
from .datasets import Dataset, idx_paths
from .manifest import Entry, Manifest


def load_idx(folder: str | Path, *, name: str | None = None) -> Dataset:
    """Read the four IDX files in ``folder`` as a labelled :class:`Dataset` (uint8 images, classes 0..K-1)."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise DataError(f"idx folder {folder}: no such folder; pass the folder holding the four IDX files")
    paths = idx_paths(folder, "IDX")
    if paths is None:
        raise DataError(
            f"{folder}: no IDX files; expected MNIST's file names, train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (.gz or raw)"
        )
    arrays = {key: readers.read_idx(p) for key, p in paths.items()}
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
            raise DataError(
                f"{paths[f'x_{part}']}: header gives shape {x.shape}; images need (n, height, width) or "
                "(n, height, width, 1 or 3)"
            )
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(
                f"{paths[f'y_{part}']}: header gives {y.shape} labels for the {len(x):,} images of "
                f"{paths[f'x_{part}'].name}; the labels file must hold one label per image"
            )
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise DataError(
            f"{paths['x_test']}: images of shape {arrays['x_test'].shape[1:]}, but the training images are "
            f"{arrays['x_train'].shape[1:]}; both files must hold images of one shape"
        )
    if arrays["x_train"].shape[1] != arrays["x_train"].shape[2]:
        raise DataError(f"{paths['x_train']}: images of {arrays['x_train'].shape[1:3]} are not square")
    k = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    empty = np.flatnonzero(np.bincount(arrays["y_train"], minlength=k) == 0)
    if len(empty):
        raise DataError(
            f"{paths['y_train']}: no training image of class {int(empty[0])} (labels run 0-{k - 1}); number the "
            "classes 0..K-1 without gaps"
        )
    entries = []
    for key in ("x_train", "y_train", "x_test", "y_test"):
        data = paths[key].read_bytes()
        entries.append(Entry(paths[key].name, len(data), hashlib.sha256(data).hexdigest()))
    manifest = Manifest(str(folder), tuple(entries))
    hashes = {key: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() for key, a in arrays.items()}
    return Dataset(
        name=name or f"idx:{folder}",
        class_names=tuple(str(i) for i in range(k)),
        source=f"{folder}: four IDX files, {k} classes, {len(arrays['x_train']):,} + {len(arrays['x_test']):,} images",
        sha256={**hashes, "manifest": manifest.digest},
        layout="idx",
        manifest=manifest,
        **arrays,
    )
