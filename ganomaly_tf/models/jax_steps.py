"""JAX training steps, the NumPy input feed and data parallelism for ``KERAS_BACKEND=jax``.

Imported only on the JAX backend (through :func:`steps.backend_steps`); needs no TensorFlow.

Keras's JAX trainer calls ``model.train_step(state, data)`` inside ``jax.jit`` with
``state = (trainable, non_trainable, optimizer, metrics)``, lists of arrays in the order of
``model.trainable_variables``, ``model.non_trainable_variables``, the optimiser variables and
``model.metrics_variables``; the step returns ``(logs, new_state)``. A GANomaly model has two
optimisers and ``model.optimizer`` is None: :class:`steps.MultiOptimizerModel` puts
``g_optimizer.variables + d_optimizer.variables`` in the optimiser slot, and the step below
splits them again and updates each half with ``Optimizer.stateless_apply``.

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

# -- stateless execution ------------------------------------------------------------------


def _run_stateless(mapping, fn, variables):
    """Call ``fn()`` with the (variable, value) ``mapping`` in place; also return the values of
    ``variables`` afterwards (a variable ``fn`` assigned gets its new value)."""
    with keras.StatelessScope(state_mapping=mapping) as scope:
        out = fn()
    values = []
    for v in variables:
        new = scope.get_current_value(v)
        values.append(v.value if new is None else new)
    return out, values


def stateless_predict_step(model, state, predict):
    """JAX ``predict_step(state, data)``: ``predict()`` reads the variables from ``state``.

    With BatchNorm in training mode (``bn_mode="batch"``) the moving statistics it updates come
    back in the new state, as Keras's own JAX predict step does.
    """
    trainable, non_trainable = state
    nt_vars = model.non_trainable_variables
    mapping = [*zip(model.trainable_variables, trainable), *zip(nt_vars, non_trainable)]
    outputs, non_trainable = _run_stateless(mapping, predict, nt_vars)
    return outputs, non_trainable


def stateless_test_step(model, state, compute_logs):
    """JAX ``test_step(state, data)``: ``compute_logs()`` updates the metrics and returns logs."""
    trainable, non_trainable, metrics = state
    nt_vars, m_vars = model.non_trainable_variables, model.metrics_variables
    mapping = [*zip(model.trainable_variables, trainable), *zip(nt_vars, non_trainable), *zip(m_vars, metrics)]
    logs, values = _run_stateless(mapping, compute_logs, [*nt_vars, *m_vars])
    return logs, (trainable, values[: len(nt_vars)], values[len(nt_vars) :])


def _update_metrics(model, metric_values, update):
    m_vars = model.metrics_variables
    return _run_stateless(list(zip(m_vars, metric_values)), update, m_vars)


def _split_optimizer_state(model, values) -> list[list]:
    out, start = [], 0
    for opt in model.training_optimizers():
        out.append(list(values[start : start + len(opt.variables)]))
        start += len(opt.variables)
    return out


def _iterations(optimizer, values):
    """The value of ``optimizer.iterations`` in a list of its variables' values."""
    index = next(i for i, v in enumerate(optimizer.variables) if v is optimizer.iterations)
    return values[index]


# -- GANomaly -----------------------------------------------------------------------------


def reinitialise(model, d_values, step, flag) -> list:
    """D's weights redrawn where ``flag`` holds (kernels N(0, .02), gamma N(1, .02), beta 0).

    Stateless and deterministic: variable ``i`` draws from ``fold_in(fold_in(key(seed), i), step)``
    with ``step`` the D optimiser's iteration count after this step's update. Inside a jitted
    data-parallel step the draw is one replicated value, so every device holds the same weights.
    (The TensorFlow step draws with ``tf.random.stateless_normal``: same rule, other numbers.)
    """
    key = jax.random.key(model.seed)
    out = []
    for i, ((_, mean, std), value) in enumerate(zip(model.discriminator_reinit_targets(), d_values)):
        k = jax.random.fold_in(jax.random.fold_in(key, i), jnp.asarray(step, jnp.uint32))
        fresh = mean + std * jax.random.normal(k, value.shape, jnp.float32)
        out.append(jnp.where(flag, fresh.astype(value.dtype), value))
    return out


def ganomaly_train_step(model, state, x):
    """One generator update and one discriminator update on a batch (official order), stateless.

    The same forward pass feeds both updates (as the TensorFlow step's two tapes): ``jax.vjp``
    of ``(g_loss, d_loss)`` is pulled back once with (1, 0) for G's gradients and once with
    (0, 1) for D's. Returns ``(logs, new_state)``.
    """
    trainable, non_trainable, optimizer_values, metric_values = state
    t_vars, nt_vars = model.trainable_variables, model.non_trainable_variables
    position = {id(v): i for i, v in enumerate(t_vars)}
    g_vars, d_vars = model.generator_variables, model.discriminator.trainable_variables
    g_values = [trainable[position[id(v)]] for v in g_vars]
    d_values = [trainable[position[id(v)]] for v in d_vars]
    g_opt, d_opt = _split_optimizer_state(model, optimizer_values)

    def forward(g_values, d_values):
        mapping = [*zip(g_vars, g_values), *zip(d_vars, d_values), *zip(nt_vars, non_trainable)]
        losses, new_non_trainable = _run_stateless(mapping, lambda: model.compute_losses(x, training=True), nt_vars)
        losses.pop("x_hat")
        return (losses["g_loss"], losses["d_loss"]), (losses, new_non_trainable)

    (g_loss, d_loss), pullback, (losses, non_trainable) = jax.vjp(forward, g_values, d_values, has_aux=True)
    one, zero = jnp.ones_like(g_loss), jnp.zeros_like(g_loss)
    g_grads = pullback((one, zero))[0]
    d_grads = pullback((zero, one))[1]
    g_values, g_opt = model.g_optimizer.stateless_apply(g_opt, g_grads, g_values)
    d_values, d_opt = model.d_optimizer.stateless_apply(d_opt, d_grads, d_values)

    reinit = model.d_reinit_threshold > 0
    if reinit:
        flag = d_loss < model.d_reinit_threshold  # d_loss is the global-batch loss: one decision
        d_values = reinitialise(model, d_values, _iterations(model.d_optimizer, d_opt), flag)

    def update_metrics():
        if reinit:
            model.reinit_tracker.update_state(flag.astype("float32"))
        return model.update_trackers(losses)

    logs, metric_values = _update_metrics(model, metric_values, update_metrics)

    trainable = list(trainable)
    for v, value in (*zip(g_vars, g_values), *zip(d_vars, d_values)):
        trainable[position[id(v)]] = value
    return logs, (trainable, non_trainable, [*g_opt, *d_opt], metric_values)


# -- several batches per dispatch -----------------------------------------------------------


def _without_none(data):
    """``(x, None, None)`` (train_on_batch) and ``(x,)`` (fit) as one structure: one compile."""
    return tuple(d for d in data if d is not None) if isinstance(data, (tuple, list)) else data


def _same_types(new, old):
    """``new`` cast to ``old``'s dtypes (no weak types), as ``lax.scan`` wants of its carry."""
    return jax.tree.map(lambda n, o: jax.lax.convert_element_type(n, o.dtype), new, old)


def make_train_function(model, force: bool = False):
    """``model.train_function`` running up to ``steps_per_execution`` batches per dispatch.

    Keras's own JAX ``fit`` dispatches one jitted step per batch however large
    ``steps_per_execution`` is; here the batches of one execution are passed to one jitted
    function that runs the step over them with ``lax.scan``, so small batches don't leave a GPU
    waiting on Python. Numerically the same as one step after another. The logs returned are
    the last step's (the trackers accumulate over the epoch anyway). A last execution of an
    epoch with fewer batches compiles once more, for its length.
    """
    if model.train_function is not None and not force:
        return model.train_function
    from keras.src.distribution import distribution_lib

    k = int(model.steps_per_execution)
    out_shardings = None
    if distribution_lib.distribution() is not None:
        out_shardings = (None, model._get_state_sharding_spec())

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
        if many_fn is None:
            for data in take(iterator, k):
                logs, state = one_fn(state, data)
            return logs, state
        group = take(iterator, k)
        if len(group) == 1:
            return one_fn(state, group[0])
        return many_fn(state, tuple(group))

    model.train_function = train_function
    return train_function


# -- input ----------------------------------------------------------------------------------


class NumpyBatches(keras.utils.PyDataset):
    """Batches of a NumPy array for ``fit`` on JAX, in a new seeded order each epoch; no TensorFlow.

    The counterpart of ``data.pipeline.make_dataset``, same arguments: with ``drop_remainder``
    an epoch is ``len(images) // batch_size`` full batches, the last partial batch dropped.
    With ``shuffle``, epoch ``e`` (counted from 0 by this object's ``on_epoch_begin`` calls)
    uses the permutation ``np.random.default_rng([seed, e]).permutation(n)``: deterministic,
    though not the tf.data shuffle's order. A run resumed from a checkpoint starts at ``e = 0``.
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


def make_dataset(
    images: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_remainder: bool = False
) -> NumpyBatches:
    """Batches for ``fit`` on JAX, from NumPy; see :class:`NumpyBatches`."""
    return NumpyBatches(images, batch_size, shuffle=shuffle, seed=seed, drop_remainder=drop_remainder)


# -- devices --------------------------------------------------------------------------------


class DataParallelStrategy:
    """What ``experiment.run`` uses of a ``tf.distribute`` strategy, for JAX: ``scope()`` and
    ``num_replicas_in_sync``.

    ``default`` and ``mirrored`` both use every local device: with more than one,
    ``scope()`` sets a process-wide ``keras.distribution.DataParallel`` (build, fit and predict
    then run data-parallel, the batch split across devices; it must divide by the device count);
    with one it does nothing. ``multi-worker`` is TensorFlow only.
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
