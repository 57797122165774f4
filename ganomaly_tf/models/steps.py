"""Pick the training-step implementations of the active Keras backend, imported lazily.

Also :class:`MultiOptimizerModel`, the plumbing a model trained by several optimisers of its
own (``model.optimizer`` is None) needs on Keras's JAX trainer. Nothing here imports
TensorFlow or JAX at load time.
"""

from __future__ import annotations

from types import ModuleType

import keras


def backend_steps() -> ModuleType:
    """The module holding ``<model>_train_step`` functions for the running backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from . import tf_steps

        return tf_steps
    if backend == "jax":
        from . import jax_steps

        return jax_steps
    raise NotImplementedError(
        f"training is implemented for the TensorFlow and JAX backends, not KERAS_BACKEND={backend!r}; "
        "set KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax"
    )


class MultiOptimizerModel:
    """Mixin (before ``keras.Model`` in the bases) for a model with its own optimisers.

    Keras's JAX trainer threads ``state = (trainable, non_trainable, optimizer, metrics)``
    through a stateless, jitted train step, and fills the ``optimizer`` slot from
    ``model.optimizer``, which is None here. This mixin fills that slot with the variables of
    :meth:`training_optimizers`, concatenated in order, and writes them back at sync points, so
    the model's JAX ``train_step(state, data)`` receives and returns every optimiser's state.
    It also makes ``fit`` run ``steps_per_execution`` batches in one dispatch (a ``lax.scan``,
    see :func:`jax_steps.make_train_function`), and gives ``predict_step`` its JAX signature.
    On TensorFlow none of this runs: those trainer hooks exist only in the JAX trainer.
    """

    def training_optimizers(self) -> list:
        """The optimisers whose variables ride in the JAX trainer's ``optimizer`` state slot."""
        raise NotImplementedError

    def optimizer_group_variables(self) -> list:
        """The variables of :meth:`training_optimizers`, concatenated in order."""
        return [v for opt in self.training_optimizers() for v in opt.variables]

    def _own_optimizers(self) -> bool:
        return getattr(self, "optimizer", None) is None

    # -- Keras JAX trainer hooks (keras/src/backend/jax/trainer.py) ---------------------------

    def _get_jax_state(
        self,
        trainable_variables=False,
        non_trainable_variables=False,
        optimizer_variables=False,
        metrics_variables=False,
        purge_model_variables=False,
    ):
        own = optimizer_variables and self._own_optimizers()
        state = list(
            super()._get_jax_state(
                trainable_variables,
                non_trainable_variables,
                optimizer_variables and not own,
                metrics_variables,
                purge_model_variables,
            )
        )
        if not own:
            return tuple(state)
        group = self.optimizer_group_variables()
        values = [v.value for v in group]
        state.insert(int(bool(trainable_variables)) + int(bool(non_trainable_variables)), values)
        if purge_model_variables:
            for v in group:
                v._value = None
        return tuple(state)

    def jax_state_sync(self):
        state = getattr(self, "_jax_state", None)
        if state and not self._jax_state_synced and self._own_optimizers():
            values = state.get("optimizer_variables")
            if values:
                for ref, value in zip(self.optimizer_group_variables(), values):
                    ref.assign(value)
            self._jax_state = {k: v for k, v in state.items() if k != "optimizer_variables"}
        super().jax_state_sync()

    def _get_state_sharding_spec(self):
        trainable, non_trainable, optimizer, metrics = super()._get_state_sharding_spec()
        if self._own_optimizers():
            optimizer = [v.value.sharding for v in self.optimizer_group_variables()]
        return trainable, non_trainable, optimizer, metrics

    def make_train_function(self, force=False):
        if keras.backend.backend() == "jax" and self._own_optimizers():
            from . import jax_steps

            return jax_steps.make_train_function(self, force)
        return super().make_train_function(force)

    def score(self, images, *, batch_size: int = 512, bn_mode: str = "inference"):
        # Under keras.distribution every batch must split evenly across the devices: pad a last
        # short batch with copies of the last image (as the tf.distribute path does), drop after.
        devices = _data_parallel_devices()
        if devices > 1:
            if batch_size % devices:
                raise ValueError(f"batch_size {batch_size} does not divide across {devices} devices")
            n, rest = len(images), len(images) % batch_size
            if rest % devices:
                import numpy as np

                images = np.concatenate([images, np.repeat(images[-1:], devices - rest % devices, axis=0)])
            return super().score(images, batch_size=batch_size, bn_mode=bn_mode)[:n]
        return super().score(images, batch_size=batch_size, bn_mode=bn_mode)

    def predict_step(self, *args):
        """TensorFlow: ``predict_step(data)``; JAX: ``predict_step(state, data)``, stateless."""
        if len(args) == 2:
            from . import jax_steps

            state, data = args
            return jax_steps.stateless_predict_step(
                self, state, lambda: super(MultiOptimizerModel, self).predict_step(data)
            )
        return super().predict_step(*args)


def _data_parallel_devices() -> int:
    """Devices a batch is split across under a ``keras.distribution`` on JAX; 0 without one."""
    if keras.backend.backend() != "jax":
        return 0
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 0
    mesh = distribution.device_mesh
    return int(mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)])
