"""Readers of the canonical MNIST and CIFAR-10 file formats. NumPy only.

Each reader returns uint8 arrays in the canonical order; anything that does not decode to
the expected layout raises :class:`DataError` naming the file.
"""

from __future__ import annotations

import gzip
import pickle
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

_REFETCH = "Delete it and fetch the canonical file again (or pass data_dir= pointing at a good copy)."

_IDX_DTYPES = {0x08: np.uint8}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot be read ({e}); the file is truncated or corrupted. {_REFETCH}") from e


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped (``.gz``) or raw.

    Returns a uint8 array whose shape is the one stored in the header, e.g. (60000, 28, 28).
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number). {_REFETCH}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated. {_REFETCH}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(
            f"{path}: holds {len(raw)} bytes but its header {shape} implies {expected}; "
            f"the file is truncated or corrupted. {_REFETCH}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


CIFAR_BATCH_SIZE = 10000


def check_cifar_batch(path: Path, images: np.ndarray) -> None:
    if len(images) != CIFAR_BATCH_SIZE:
        raise DataError(
            f"{path}: holds {len(images)} images, a CIFAR-10 batch holds {CIFAR_BATCH_SIZE}; "
            f"the file is truncated or corrupted. {_REFETCH}"
        )


def read_cifar_binary(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch (``data_batch_N.bin``/``test_batch.bin``).

    Returns ``(images, labels)``: uint8 (n, 32, 32, 3) HWC RGB and uint8 (n,).
    """
    path = Path(path)
    raw = _read_bytes(path)
    record = 1 + 3 * 32 * 32
    if len(raw) == 0 or len(raw) % record:
        raise DataError(
            f"{path}: {len(raw)} bytes is not a whole number of {record}-byte CIFAR-10 records; "
            f"the file is truncated or corrupted. {_REFETCH}"
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    images = rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), rows[:, 0].copy()


def read_cifar_pickle(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch (``cifar-10-batches-py/data_batch_N``).

    Returns ``(images, labels)``: uint8 (n, 32, 32, 3) HWC RGB and uint8 (n,).
    Only open files you trust: the format is a Python pickle.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path}: not a readable CIFAR-10 python batch ({e!r}). {_REFETCH}") from e
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: data of shape {data.shape} is not (n, 3072). {_REFETCH}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_mnist_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read the Keras cache file ``mnist.npz``: ``(x_train, y_train, x_test, y_test)``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = tuple(np.asarray(f[k], dtype=np.uint8) for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable Keras mnist.npz ({e!r}). {_REFETCH}") from e
    return arrays  # type: ignore[return-value]
