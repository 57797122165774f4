"""JAX training steps, the NumPy input feed and data parallelism for ``KERAS_BACKEND=jax``.

Imported only on the JAX backend (through :func:`steps.backend_steps`); needs no TensorFlow.

Keras's JAX trainer calls ``model.train_step(state, data)`` inside ``jax.jit`` with
``state = (trainable, non_trainable, optimizer, metrics)``, lists of arrays in the order of
``model.trainable_variables``, ``model.non_trainable_variables``, the optimiser variables and
``model.metrics_variables``; the step returns ``(logs, new_state)``. GANomaly, AnoGAN and EGBAD
have two optimisers of their own and ``model.optimizer`` is None: :class:`steps.JaxTrainerHooks`
puts ``g_optimizer.variables + d_optimizer.variables`` in the optimiser slot, and the step below
splits them again and updates each group with ``Optimizer.stateless_apply``.

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


# -- training -------------------------------------------------------------------------------


def standard_normal(model, shape, step, stream: int = 0):
    """N(0, 1) draws for one training step, stateless: ``fold_in(key(seed * 1000 + 900 + stream), step)``.

    Inside a jitted data-parallel step the draw covers the global batch at once. (The TensorFlow
    step draws with ``tf.random.stateless_normal``: same rule, other numbers.)
    """
    key = jax.random.fold_in(jax.random.key(model.seed * 1000 + 900 + stream), jnp.asarray(step, jnp.uint32))
    return jax.random.normal(key, shape, jnp.float32)


def train_step(model, state, x):
    """One training step of any of the suite's models (see ``base.AnomalyModel``), stateless.

    One forward pass for every optimiser group (as the TensorFlow step's tapes): ``jax.vjp`` of
    the groups' objectives (each the sum of its losses) is pulled back once per group, with a
    one-hot cotangent, for that group's gradients; each group's optimiser then applies them with
    ``Optimizer.stateless_apply``. Then GANomaly's discriminator re-initialisation rule.
    Returns ``(logs, new_state)``.
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
        losses = {k: v for k, v in losses.items() if k != "x_hat"}
        objectives = tuple(sum(losses[name] for name in names) for _, _, names in groups)
        return objectives, (losses, new_non_trainable)

    objectives, pullback, (losses, non_trainable) = jax.vjp(forward, *group_values, has_aux=True)
    new_values, new_opt_states = [], []
    for i, ((optimizer, _, _), values, opt_state) in enumerate(zip(groups, group_values, opt_states)):
        cotangent = tuple(jnp.ones_like(o) if j == i else jnp.zeros_like(o) for j, o in enumerate(objectives))
        grads = pullback(cotangent)[i]
        values, opt_state = optimizer.stateless_apply(opt_state, grads, values)
        new_values.append(values)
        new_opt_states.append(opt_state)

    reinit = getattr(model, "d_reinit_threshold", 0) > 0
    if reinit:
        # d_loss is the global-batch loss: one decision for every device.
        flag = losses["d_loss"] < model.d_reinit_threshold
        d = next(i for i, (opt, _, _) in enumerate(groups) if opt is model.d_optimizer)
        step = _iterations(model.d_optimizer, new_opt_states[d])
        new_values[d] = reinitialise(model, new_values[d], step, flag)

    def update_metrics():
        if reinit:
            model.reinit_tracker.update_state(flag.astype("float32"))
        return model.update_trackers(losses)

    logs, metric_values = _update_metrics(model, metric_values, update_metrics)

    trainable = list(trainable)
    for (_, variables, _), values in zip(groups, new_values):
        for v, value in zip(variables, values):
            trainable[position[id(v)]] = value
    optimizer_values = [value for opt_state in new_opt_states for value in opt_state]
    return logs, (trainable, non_trainable, optimizer_values, metric_values)


def reinitialise(model, d_values, step, flag) -> list:
    """D's weights redrawn if ``flag`` holds (kernels N(0, .02), gamma N(1, .02), beta 0), else kept.

    Stateless and deterministic: variable ``i`` draws from ``fold_in(fold_in(key(seed), i), step)``
    with ``step`` the D optimiser's iteration count after this step's update. Inside a jitted
    data-parallel step the draw is one replicated value, so every device holds the same weights.
    The draw runs only when the rule fires (``lax.cond``). (The TensorFlow step draws with
    ``tf.random.stateless_normal``: same rule, other numbers.)
    """
    targets = [(mean, std) for _, mean, std in model.discriminator_reinit_targets()]

    def redraw(values):
        key = jax.random.key(model.seed)
        out = []
        for i, ((mean, std), value) in enumerate(zip(targets, values)):
            k = jax.random.fold_in(jax.random.fold_in(key, i), jnp.asarray(step, jnp.uint32))
            out.append((mean + std * jax.random.normal(k, value.shape, jnp.float32)).astype(value.dtype))
        return out

    return jax.lax.cond(flag, redraw, lambda values: list(values), list(d_values))


def anogan_score(model, x, training: bool = False):
    """AnoGAN's latent search, batched: ``model.score_iterations`` Adam steps on one z per image.

    The JAX counterpart of ``tf_steps.anogan_score`` (same updates), a ``lax.fori_loop`` inside
    the caller's stateless predict step. Returns the per-image loss at the final z, float32 (n,).
    """
    x = jnp.asarray(x, jnp.float32)
    n = x.shape[0]
    _, features_x = model.discriminator(x, training=training)
    features_x = jax.lax.stop_gradient(jnp.asarray(features_x, jnp.float32))
    z0 = jnp.broadcast_to(jnp.asarray(model.z_init)[None, :], (n, model.latent_dim))
    beta_1, beta_2, epsilon = model.z_adam
    # The weights as the enclosing stateless scope holds them. Each evaluation of the loss runs in
    # a scope of its own, which absorbs BatchNorm's moving-statistics updates (bn_mode="batch"):
    # they must not leak out of the gradient's trace (the caller restores them anyway).
    weights = [(v, v.value) for v in (*model.trainable_variables, *model.non_trainable_variables)]

    def loss(z):
        with keras.StatelessScope(state_mapping=weights):
            return model.latent_loss(x, features_x, z, training=training)

    def body(i, carry):
        z, m, v = carry
        g = jax.grad(lambda z: jnp.sum(loss(z)))(z)
        t = (i + 1).astype(jnp.float32)
        m = beta_1 * m + (1.0 - beta_1) * g
        v = beta_2 * v + (1.0 - beta_2) * jnp.square(g)
        step = model.z_learning_rate(i) * (m / (1.0 - beta_1**t)) / (jnp.sqrt(v / (1.0 - beta_2**t)) + epsilon)
        return z - step, m, v

    zeros = jnp.zeros_like(z0)
    z, _, _ = jax.lax.fori_loop(0, model.score_iterations, body, (z0, zeros, zeros))
    return jax.lax.stop_gradient(loss(z))


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
