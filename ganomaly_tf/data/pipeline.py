"""tf.data input pipelines from a split. The only data module that imports TensorFlow."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def make_dataset(
    images: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of preprocessed float32 images (from :func:`preprocess`).

    ``batch_size`` is the global batch: under a ``tf.distribute`` strategy, Keras splits it
    across replicas. Shuffling is seeded and reshuffles each epoch, deterministically.
    The arrays are already decoded and resized, so an epoch does no Python work.
    """
    ds = tf.data.Dataset.from_tensor_slices(images)
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
