"""Batches of a NumPy array for ``keras.Model.fit``, without TensorFlow: the JAX backend's input feed."""

from __future__ import annotations

import keras
import numpy as np


class NumpyBatches(keras.utils.PyDataset):
    """Batches (b, s, s, c) of a NumPy array for ``fit`` on JAX, in a new seeded order each epoch.

    The feed of the JAX backend (``backends.jax.make_dataset``), with ``backends.tensorflow.make_dataset``'s
    arguments: with ``drop_remainder`` an epoch is
    ``len(images) // batch_size`` full batches. With ``shuffle``, epoch ``e`` (counted from 0 by
    ``on_epoch_begin`` calls; a resumed run starts at 0) is ``np.random.default_rng([seed, e]).permutation(n)``:
    deterministic, though not the tf.data shuffle's order.
    """

    def __init__(
        self, images: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_remainder: bool = False
    ):
        super().__init__(workers=1, use_multiprocessing=False)  # batches made in the training loop's thread
        if drop_remainder and len(images) < batch_size:
            raise ValueError(f"{len(images)} images is fewer than one batch of {batch_size}")
        self.images = images
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_remainder = bool(drop_remainder)
        self.epoch = -1
        self.order = np.arange(len(images))

    def __len__(self) -> int:
        n, b = len(self.images), self.batch_size
        return n // b if self.drop_remainder else -(-n // b)

    def on_epoch_begin(self):
        self.epoch += 1
        if self.shuffle:
            self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.images))

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        if self.shuffle and self.epoch < 0:
            self.on_epoch_begin()
        b = self.batch_size
        return (self.images[self.order[index * b : (index + 1) * b]],)
