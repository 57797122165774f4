"""Pick the training-step implementations of the active Keras backend, imported lazily.

Also :class:`JaxTrainerHooks`, the plumbing the models need on Keras's JAX trainer (their own
optimisers' state, several batches per dispatch), and the padding of scored batches across
devices. Nothing here imports TensorFlow or JAX at load time.
"""

from __future__ import annotations

from types import ModuleType

import keras


def backend_steps() -> ModuleType:
    """The module holding ``train_step`` and the other backend-specific steps for the running backend."""
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


class JaxTrainerHooks:
    """Mixin (before ``keras.Model`` in the bases) adapting Keras's JAX trainer to the suite's models.

    Keras's JAX trainer threads ``state = (trainable, non_trainable, optimizer, metrics)``
    through a stateless, jitted train step, and fills the ``optimizer`` slot from
    ``model.optimizer``. A model with optimisers of its own (``model.optimizer`` is None, e.g.
    GANomaly's ``g_optimizer`` and ``d_optimizer``) gets that slot filled with the variables of
    its ``training_optimizers()``, concatenated in order, written back at sync points, so its
    JAX ``train_step(state, data)`` receives and returns every optimiser's state. Every model
    also runs ``steps_per_execution`` batches in one dispatch on JAX (a ``lax.scan``, see
    :func:`jax_steps.make_train_function`). On TensorFlow none of this runs: those trainer
    hooks exist only in the JAX trainer.
    """

    def optimizer_group_variables(self) -> list:
        """The variables of ``training_optimizers()``, concatenated in order."""
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
        if keras.backend.backend() == "jax":
            from . import jax_steps

            return jax_steps.make_train_function(self, force)
        return super().make_train_function(force)


def padding_for_devices(model, n: int, batch_size: int) -> int:
    """How many copies of the last image to append to ``n`` images scored in batches of
    ``batch_size`` so that every replica gets a share of every batch.

    Under ``tf.distribute`` a last batch smaller than the replica count would leave a replica
    an empty batch, which the conv layers reject. Under a ``keras.distribution`` on JAX every
    batch must split evenly across the devices.
    """
    short = n % batch_size
    devices = _data_parallel_devices()
    if devices > 1:
        if batch_size % devices:
            raise ValueError(f"batch_size {batch_size} does not divide across {devices} devices")
        return -short % devices
    strategy = getattr(model, "distribute_strategy", None)
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    return replicas - short if 0 < short < replicas else 0


def _data_parallel_devices() -> int:
    """Devices a batch is split across under a ``keras.distribution`` on JAX; 0 without one."""
    if keras.backend.backend() != "jax":
        return 0
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 0
    mesh = distribution.device_mesh
    return int(mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)])
