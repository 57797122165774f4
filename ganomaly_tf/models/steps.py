"""Pick the training-step implementations of the active Keras backend, imported lazily."""

from __future__ import annotations

from types import ModuleType

import keras


def backend_steps() -> ModuleType:
    """The module holding ``<model>_train_step`` functions for the running backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from . import tf_steps

        return tf_steps
    raise NotImplementedError(
        f"training is implemented for the TensorFlow backend, not KERAS_BACKEND={backend!r}; "
        "set KERAS_BACKEND=tensorflow"
    )
