"""Data: canonical readers, verification, split protocols (NumPy only) and tf.data pipelines.

``ganomaly_tf.data.pipeline`` is the one module here that imports TensorFlow; import it
explicitly.
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
