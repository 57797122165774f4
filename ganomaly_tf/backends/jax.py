"""The JAX backend: NumPy batches, ``keras.distribution`` data parallelism and a stateless step.

Imported through :func:`ganomaly_tf.backends.active` on ``KERAS_BACKEND=jax``; the same
functions as ``backends.tensorflow`` (listed in ``ganomaly_tf.backends``); needs no TensorFlow.

Keras's JAX trainer calls ``model.train_step(state, data)`` inside ``jax.jit`` with
``state = (trainable, non_trainable, optimizer, metrics)``, value lists in the order of
``model.trainable_variables``, ``model.non_trainable_variables``, the optimiser variables and
``model.metrics_variables``; the step returns ``(logs, new_state)``. The optimiser slot holds
``training_optimizers()``' variables, concatenated (:class:`TrainerHooks`). The model's
``after_update`` hook and the trackers run in a ``keras.StatelessScope`` over the updated
state: what they assign comes back in the new state.

Data parallelism: under ``keras.distribution.DataParallel`` the jitted step is one SPMD program
over the global batch. The losses are means over the global batch and their gradients are the
gradients of those means, so nothing is divided by the replica count (the TensorFlow step must
divide, because ``tf.distribute`` sums per-replica gradients). BatchNorm statistics are
global-batch statistics too, i.e. synchronised, unlike per-replica BatchNorm under
``tf.distribute`` without ``sync_bn``.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import keras
import numpy as np

from ..data.batches import NumpyBatches

# -- stateless execution ------------------------------------------------------------------


def _run_stateless(mapping, fn, variables):
    """``fn()`` with the (variable, value) ``mapping`` in place, and the values of ``variables`` after it."""
    with keras.StatelessScope(state_mapping=mapping) as scope:
        out = fn()
    values = []
    for v in variables:
        new = scope.get_current_value(v)
        values.append(v.value if new is None else new)
    return out, values


def _optimizer_variables(model) -> list:
    """The variables of the state's optimiser slot: ``training_optimizers()``', in order."""
    return [v for opt in model.training_optimizers() for v in opt.variables]


def predict_step(model, state, predict):
    """``predict_step(state, data)``: ``predict()`` reads the variables from ``state``; moving
    statistics it updates (``bn_mode="batch"``) come back in the new state, as in Keras's own."""
    trainable, non_trainable = state
    nt_vars = model.non_trainable_variables
    mapping = [*zip(model.trainable_variables, trainable), *zip(nt_vars, non_trainable)]
    return _run_stateless(mapping, predict, nt_vars)


def test_step(model, state, compute_logs):
    """``test_step(state, data)``: ``compute_logs()`` updates the metrics and returns logs."""
    trainable, non_trainable, metrics = state
    nt_vars, m_vars = model.non_trainable_variables, model.metrics_variables
    mapping = [*zip(model.trainable_variables, trainable), *zip(nt_vars, non_trainable), *zip(m_vars, metrics)]
    logs, values = _run_stateless(mapping, compute_logs, [*nt_vars, *m_vars])
    return logs, (trainable, values[: len(nt_vars)], values[len(nt_vars) :])


# -- random draws -----------------------------------------------------------------------------


def _normal(seed: int, step, shape, dtype):
    key = jax.random.fold_in(jax.random.key(seed), jnp.asarray(keras.ops.convert_to_tensor(step), jnp.uint32))
    return jax.random.normal(key, shape, dtype)


def standard_normal(model, shape, step, stream: int = 0):
    """N(0, 1) draws for one training step, stateless: ``fold_in(key(seed * 1000 + 900 + stream), step)``,
    for the global batch at once. (TensorFlow's ``tf.random.stateless_normal``: same rule, other numbers.)"""
    return _normal(model.seed * 1000 + 900 + stream, step, shape, jnp.float32)


def replicated_normal(shape, seed: int, step, dtype="float32"):
    """N(0, 1) draws from ``fold_in(key(seed), step)``; inside a jitted data-parallel step one
    replicated value, the same on every device."""
    return _normal(seed, step, shape, dtype)


# -- what a model's after_update hook may use -------------------------------------------------


def global_mean(x):
    """The global batch's value of a loss: the step's losses already are global-batch means."""
    return x


def replicas_in_step() -> int:
    """1: the step is one program over the global batch, however many devices it spans."""
    return 1


def assign_where(pred, variables: list, values_fn) -> None:
    """``variables[i].assign(values_fn()[i])`` where the scalar bool ``pred`` holds; ``values_fn``
    runs only then (a ``lax.cond``). The assignments go to the enclosing stateless scope."""
    current = [v.value for v in variables]

    def assign(current):
        return [jnp.asarray(value).astype(c.dtype) for value, c in zip(values_fn(), current)]

    for var, value in zip(variables, jax.lax.cond(pred, assign, lambda current: list(current), current)):
        var.assign(value)


# -- training ---------------------------------------------------------------------------------


def _split_optimizer_state(model, values) -> list[list]:
    ends = np.cumsum([0, *(len(opt.variables) for opt in model.training_optimizers())])
    return [list(values[a:b]) for a, b in zip(ends[:-1], ends[1:])]


def _iterations(optimizer, values):
    """The value of ``optimizer.iterations`` in a list of its variables' values."""
    return values[next(i for i, v in enumerate(optimizer.variables) if v is optimizer.iterations)]


def train_step(model, state, x):
    """One training step of any of the suite's models (see ``models.base.AnomalyModel``), stateless.

    One forward pass for every optimiser group (as the TensorFlow step's tapes): ``jax.vjp`` of
    the groups' objectives (each the sum of its losses) is pulled back once per group, with a
    one-hot cotangent, for that group's gradients; each group's optimiser then applies them with
    ``Optimizer.stateless_apply``. Then the model's ``after_update(losses)`` hook and the
    trackers, over the updated state. ``x``: the global batch (n, s, s, c). Returns ``(logs, new_state)``.
    """
    trainable, non_trainable, optimizer_values, metric_values = state
    t_vars, nt_vars = model.trainable_variables, model.non_trainable_variables
    position = {id(v): i for i, v in enumerate(t_vars)}
    groups = model.optimizer_groups()
    group_values = [[trainable[position[id(v)]] for v in variables] for _, variables, _ in groups]
    opt_states = _split_optimizer_state(model, optimizer_values)
    inputs = [x]
    if model.train_noise:
        step = _iterations(groups[0][0], opt_states[0])
        inputs.append(standard_normal(model, (x.shape[0], model.latent_dim), step))

    def forward(*values):
        mapping = [pair for (_, variables, _), vals in zip(groups, values) for pair in zip(variables, vals)]
        mapping += list(zip(nt_vars, non_trainable))
        losses, new_non_trainable = _run_stateless(
            mapping, lambda: model.compute_losses(*inputs, training=True), nt_vars
        )
        objectives = tuple(sum(losses[name] for name in names) for _, _, names in groups)
        return objectives, (losses, new_non_trainable)

    objectives, pullback, (losses, non_trainable) = jax.vjp(forward, *group_values, has_aux=True)
    trainable, new_opt_states = list(trainable), []
    for i, ((optimizer, variables, _), values, opt_state) in enumerate(zip(groups, group_values, opt_states)):
        cotangent = tuple(jnp.ones_like(o) if j == i else jnp.zeros_like(o) for j, o in enumerate(objectives))
        values, opt_state = optimizer.stateless_apply(opt_state, pullback(cotangent)[i], values)
        for v, value in zip(variables, values):
            trainable[position[id(v)]] = value
        new_opt_states.append(opt_state)
    optimizer_values = [value for opt_state in new_opt_states for value in opt_state]

    def after_update():
        model.after_update(losses)
        return model.update_trackers(losses)

    o_vars, m_vars = _optimizer_variables(model), model.metrics_variables
    every = [*t_vars, *nt_vars, *o_vars, *m_vars]
    mapping = list(zip(every, [*trainable, *non_trainable, *optimizer_values, *metric_values]))
    logs, values = _run_stateless(mapping, after_update, every)
    ends = np.cumsum([len(t_vars), len(nt_vars), len(o_vars)])
    return logs, (values[: ends[0]], values[ends[0] : ends[1]], values[ends[1] : ends[2]], values[ends[2] :])


# -- scoring --------------------------------------------------------------------------------


def latent_search(model, loss, z0, iterations: int, learning_rate, adam: tuple[float, float, float]):
    """``iterations`` Adam steps on codes z (n, d) from ``z0``, each minimising its own entry of
    ``loss(z)`` (n,); the counterpart of ``backends.tensorflow.latent_search`` (same updates), a
    ``lax.fori_loop`` inside the caller's stateless predict step. Returns ``loss`` at the final z,
    float32 (n,), without gradient.
    """
    beta_1, beta_2, epsilon = adam
    # The weights as the enclosing stateless scope holds them. Each evaluation of the loss runs in
    # a scope of its own, which absorbs BatchNorm's moving-statistics updates (bn_mode="batch"):
    # they must not leak out of the gradient's trace (the caller restores them anyway).
    weights = [(v, v.value) for v in (*model.trainable_variables, *model.non_trainable_variables)]

    def scoped_loss(z):
        with keras.StatelessScope(state_mapping=weights):
            return loss(z)

    def body(i, carry):
        z, m, v = carry
        g = jax.grad(lambda z: jnp.sum(scoped_loss(z)))(z)
        t = (i + 1).astype(jnp.float32)
        m = beta_1 * m + (1.0 - beta_1) * g
        v = beta_2 * v + (1.0 - beta_2) * jnp.square(g)
        step = learning_rate(i) * (m / (1.0 - beta_1**t)) / (jnp.sqrt(v / (1.0 - beta_2**t)) + epsilon)
        return z - step, m, v

    zeros = jnp.zeros_like(z0)
    z, _, _ = jax.lax.fori_loop(0, iterations, body, (z0, zeros, zeros))
    return jax.lax.stop_gradient(scoped_loss(z))


# -- several batches per dispatch -----------------------------------------------------------


def _without_none(data):
    """``(x, None, None)`` (train_on_batch) and ``(x,)`` (fit) as one structure: one compile."""
    return tuple(d for d in data if d is not None) if isinstance(data, (tuple, list)) else data


def _same_types(new, old):
    """``new`` cast to ``old``'s dtypes (no weak types), as ``lax.scan`` wants of its carry."""
    return jax.tree.map(lambda n, o: jax.lax.convert_element_type(n, o.dtype), new, old)


def make_train_function(model, force: bool = False):
    """``model.train_function`` running up to ``steps_per_execution`` batches per dispatch.

    Keras's own JAX ``fit`` dispatches one jitted step per batch whatever ``steps_per_execution``;
    here one jitted ``lax.scan`` runs the step over an execution's batches, so small batches don't
    leave a GPU waiting on Python. Numerically one step after another; the logs are the last
    step's (the trackers accumulate anyway). An epoch's shorter last execution compiles once more.
    """
    if model.train_function is not None and not force:
        return model.train_function
    k = int(model.steps_per_execution)
    out_shardings = None
    if keras.distribution.distribution() is not None:
        out_shardings = (None, model._get_state_sharding_spec())  # private: see TrainerHooks

    def one(state, data):
        logs, new = model.train_step(state, data)
        return logs, _same_types(new, state)

    def many(state, batches):
        def body(state, data):
            logs, new = one(state, data)
            return new, logs

        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
        state, logs = jax.lax.scan(body, state, stacked)
        return jax.tree.map(lambda t: t[-1], logs), state

    eager = model.run_eagerly or not model.jit_compile
    one_fn = one if eager else jax.jit(one, donate_argnums=0, out_shardings=out_shardings)
    many_fn = None if eager or k == 1 else jax.jit(many, donate_argnums=0, out_shardings=out_shardings)

    def take(iterator, n: int) -> list:
        """Up to ``n`` batches: an epoch's last execution may have fewer."""
        out = [_without_none(next(iterator))]
        for _ in range(n - 1):
            try:
                out.append(_without_none(next(iterator)))
            except StopIteration:
                break
        return out

    def train_function(state, iterator):
        group = take(iterator, k)
        if many_fn is None or len(group) == 1:
            for data in group:
                logs, state = one_fn(state, data)
            return logs, state
        return many_fn(state, tuple(group))

    model.train_function = train_function
    return train_function


# -- Keras's JAX trainer: the private hooks this module relies on ---------------------------------
#
# Every private name of Keras used by the suite is here (tests/test_keras_private_api.py checks
# that each still exists with the signature used, for the tested Keras range):
#   JAXTrainer._get_jax_state(trainable_variables, non_trainable_variables, optimizer_variables,
#       metrics_variables, purge_model_variables)  -- builds the state tuple of fit/train_on_batch
#   JAXTrainer.jax_state_sync()                    -- writes the state back into the variables
#   JAXTrainer._jax_state, ._jax_state_synced      -- the state between sync points
#   JAXTrainer._get_state_sharding_spec()          -- out_shardings of the jitted step
#   KerasVariable._value = None                    -- the purge of a variable's own copy
# Keras fills the optimiser slot from ``model.optimizer`` alone; no public API lets a model with
# two optimisers put both in it.


class TrainerHooks:
    """Mixin (before ``keras.Model`` in the bases) adapting Keras's JAX trainer to the suite's models.

    A model with optimisers of its own (``model.optimizer`` is None: the adversarial models'
    two) gets the state's optimiser slot filled with its ``training_optimizers()``' variables,
    concatenated in order, written back at sync points, so :func:`train_step` receives and
    returns every optimiser's state. Every model also runs ``steps_per_execution`` batches per
    dispatch (:func:`make_train_function`).
    """

    def _own_optimizers(self) -> bool:
        return getattr(self, "optimizer", None) is None

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
        group = _optimizer_variables(self)
        state.insert(int(bool(trainable_variables)) + int(bool(non_trainable_variables)), [v.value for v in group])
        if purge_model_variables:  # as Keras purges its own optimiser's: the state holds the only copy
            for v in group:
                v._value = None
        return tuple(state)

    def jax_state_sync(self):
        state = getattr(self, "_jax_state", None)
        if state and not self._jax_state_synced and self._own_optimizers():
            values = state.get("optimizer_variables")
            if values:
                for ref, value in zip(_optimizer_variables(self), values):
                    ref.assign(value)
            self._jax_state = {k: v for k, v in state.items() if k != "optimizer_variables"}
        super().jax_state_sync()

    def _get_state_sharding_spec(self):
        trainable, non_trainable, optimizer, metrics = super()._get_state_sharding_spec()
        if self._own_optimizers():
            optimizer = [v.value.sharding for v in _optimizer_variables(self)]
        return trainable, non_trainable, optimizer, metrics

    def make_train_function(self, force=False):
        return make_train_function(self, force)


# -- input and devices ------------------------------------------------------------------------


def make_dataset(
    images: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_remainder: bool = False
) -> NumpyBatches:
    """Batches for ``fit`` on JAX, from NumPy; see :class:`NumpyBatches`."""
    return NumpyBatches(images, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder)


class DataParallelStrategy:
    """What ``experiment`` uses of a ``tf.distribute`` strategy: ``scope()``, ``num_replicas_in_sync``.

    ``default`` and ``mirrored`` both use every local device: with more than one, ``scope()``
    sets a process-wide ``keras.distribution.DataParallel`` (build, fit and predict then split
    each batch, which must divide by the device count); with one it does nothing.
    ``multi-worker`` is TensorFlow only.
    """

    def __init__(self, name: str = "default"):
        if name not in ("default", "mirrored"):
            raise ValueError(f"strategy {name!r} is not available on the JAX backend; use 'default' or 'mirrored'")
        devices = jax.devices()
        self.num_replicas_in_sync = len(devices)
        self.distribution = keras.distribution.DataParallel(devices=devices) if len(devices) > 1 else None

    @contextlib.contextmanager
    def scope(self):
        if self.distribution is not None:
            keras.distribution.set_distribution(self.distribution)
        yield self


def get_strategy(name: str = "default") -> DataParallelStrategy:
    return DataParallelStrategy(name)


def padding_for_devices(model, n: int, batch_size: int) -> int:
    """How many copies of the last image to append to ``n`` images scored in batches of
    ``batch_size``: under a ``keras.distribution`` every batch must split evenly across the devices."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return 0
    mesh = distribution.device_mesh
    devices = int(mesh.shape[mesh.axis_names.index(distribution.batch_dim_name)])
    if devices <= 1:
        return 0
    if batch_size % devices:
        raise ValueError(
            f"batch_size {batch_size} does not divide across {devices} devices; score in batches of a multiple of "
            f"{devices} (bn_mode 'per-image', batches of one, needs a single device)"
        )
    return -(n % batch_size) % devices
