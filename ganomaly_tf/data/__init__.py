"""Data: canonical readers, verification and split protocols, NumPy only.

The input feeds of ``fit`` are the backends' ``make_dataset`` (``ganomaly_tf.backends``): tf.data on
TensorFlow, :class:`batches.NumpyBatches` (NumPy and Keras, no TensorFlow) on JAX.
"""

from ..errors import DataError
from .datasets import (
    CIFAR10_CLASSES,
    CIFAR10_SHORT_CLASSES,
    DATASETS,
    MNIST_CLASSES,
    Dataset,
    load_dataset,
    resolve_class,
)
from .preprocess import preprocess
from .splits import PROTOCOLS, Split, make_split, subsample, train_size

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_SHORT_CLASSES",
    "DATASETS",
    "MNIST_CLASSES",
    "PROTOCOLS",
    "DataError",
    "Dataset",
    "Split",
    "load_dataset",
    "make_split",
    "preprocess",
    "resolve_class",
    "subsample",
    "train_size",
]
