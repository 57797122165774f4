"""One module per Keras backend, each exposing the same functions; :func:`active` picks one.

``backends.tensorflow`` (tf.data, tf.distribute, GradientTape) and ``backends.jax`` (NumPy
batches, ``keras.distribution``, ``jax.vjp`` in a stateless step) both provide:

- ``train_step(model, *state, x)``, ``test_step(model, *state, compute_logs)`` and
  ``predict_step(model, *state, predict)``: the steps every model of the suite shares, driven by
  the model's contract (``models.base.AnomalyModel``: ``optimizer_groups``, ``compute_losses``,
  ``after_update``); ``state`` is Keras's state tuple on JAX and absent on TensorFlow;
- ``make_dataset(images, batch_size, shuffle=, seed=, drop_remainder=)``: the input feed of ``fit``;
- ``get_strategy(name)``: an object with ``scope()`` and ``num_replicas_in_sync``;
- ``standard_normal(model, shape, step, stream)``: a training step's noise, per replica;
- ``replicated_normal(shape, seed, step, dtype)``, ``assign_where(pred, variables, values_fn)``,
  ``global_mean(x)`` and ``replicas_in_step()``: what a model's ``after_update`` hook may use to
  change its state in a way both backends can run (stateful on TensorFlow, stateless on JAX);
- ``latent_search(model, loss, z0, iterations, learning_rate, adam)``: per-image Adam on codes z
  (AnoGAN's scoring);
- ``padding_for_devices(model, n, batch_size)`` and ``TrainerHooks`` (the mixin every model
  has before ``keras.Model`` in its bases; empty on TensorFlow).

Importing this package imports neither TensorFlow nor JAX; :func:`active` imports the running
backend's module on first use (docs/design.md, Backends and distribution).
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import keras

SUPPORTED = ("tensorflow", "jax")


@functools.cache
def _module(backend: str) -> ModuleType:
    if backend not in SUPPORTED:
        raise NotImplementedError(
            f"training is implemented for the TensorFlow and JAX backends, not KERAS_BACKEND={backend!r}; "
            "set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax"
        )
    return importlib.import_module(f"{__name__}.{backend}")


def active() -> ModuleType:
    """The module of the running Keras backend (``backends.tensorflow`` or ``backends.jax``)."""
    return _module(keras.backend.backend())
