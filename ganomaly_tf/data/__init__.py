"""Data: sources (canonical MNIST/CIFAR-10, image folders, IDX files, TFDS), verification and split
protocols; NumPy only (Pillow for image files, tensorflow-datasets for ``tfds:`` names, both imported
only when used).

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
    resolve_class,
)
from .preprocess import preprocess
from .sources import FORMS, class_names, fixed_split, load_dataset, parse_source
from .splits import PROTOCOLS, Split, make_split, subsample, train_size

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_SHORT_CLASSES",
    "DATASETS",
    "FORMS",
    "MNIST_CLASSES",
    "PROTOCOLS",
    "DataError",
    "Dataset",
    "Split",
    "class_names",
    "fixed_split",
    "load_dataset",
    "make_split",
    "parse_source",
    "preprocess",
    "resolve_class",
    "subsample",
    "train_size",
]
