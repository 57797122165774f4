"""The TensorFlow backend: tf.distribute strategies, the tf.data feed and the GradientTape step.

Imported through :func:`ganomaly_tf.backends.active` on ``KERAS_BACKEND=tensorflow``; the same
functions as ``backends.jax`` (listed in ``ganomaly_tf.backends``), plus :func:`split_logical_cpus`.

Strategies: ``default``: one device. ``mirrored``: all local devices (GPUs, or logical CPU
devices), synchronous data parallelism. ``multi-worker``: ``MultiWorkerMirroredStrategy``,
configured by the ``TF_CONFIG`` environment variable of each worker process, e.g. for two
workers on one host::

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]},
                "task": {"type": "worker", "index": 0}}'

Build and compile the model inside ``strategy.scope()``; the batch size given to
:func:`make_dataset` is the global batch, split across replicas. Each replica then sees
``global_batch / replicas`` images and Keras's optimiser sums the replicas' gradients; the
losses are plain means, so the step divides them by the replica count before differentiation
to give the gradient of the global mean.
"""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np
import tensorflow as tf

from ..constants import STRATEGIES

# -- devices --------------------------------------------------------------------------------

_created: dict = {}


def get_strategy(name: str = "default") -> tf.distribute.Strategy:
    """The strategy ``name``, one instance per process: a second MirroredStrategy in the same
    process reuses the first one's collective instance keys, and its all-reduces then fail with
    "Shape mismatch in the collective instance" once the model differs."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name in _created:
        return _created[name]
    if name == "mirrored":
        return _created.setdefault(name, tf.distribute.MirroredStrategy())
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy 'multi-worker' needs the TF_CONFIG environment variable; see ganomaly_tf.backends.tensorflow"
            )
        json.loads(os.environ["TF_CONFIG"])  # fail early on malformed JSON
        return _created.setdefault(name, tf.distribute.MultiWorkerMirroredStrategy())
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def split_logical_cpus(n: int = 2) -> None:
    """Expose the CPU as ``n`` logical devices (before TensorFlow initialises), for tests."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)


def _replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


def padding_for_devices(model, n: int, batch_size: int) -> int:
    """How many copies of the last image to append to ``n`` images scored in batches of
    ``batch_size``: a last batch smaller than the replica count would leave a replica an empty
    batch, which the conv layers reject."""
    short = n % batch_size
    replicas = model.distribute_strategy.num_replicas_in_sync
    if batch_size < replicas:
        raise ValueError(
            f"batch_size {batch_size} leaves some of the {replicas} replicas without images; score in batches of "
            f"at least {replicas} (bn_mode 'per-image', batches of one, needs a single device)"
        )
    return replicas - short if 0 < short < replicas else 0


# -- input ----------------------------------------------------------------------------------


def make_dataset(
    images: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0, drop_remainder: bool = False
) -> tf.data.Dataset:
    """Batches of preprocessed float32 images (n, s, s, c) (from ``data.preprocess``).

    ``batch_size`` is the global batch: under a ``tf.distribute`` strategy, Keras splits it
    across replicas. Shuffling is seeded and reshuffles each epoch, deterministically.
    The arrays are already decoded and resized, so an epoch does no Python work.
    """
    ds = tf.data.Dataset.from_tensor_slices(images)
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


# -- random draws ---------------------------------------------------------------------------


def standard_normal(model, shape, step, stream: int = 0) -> tf.Tensor:
    """N(0, 1) draws for one training step, stateless: the same seed and step give the same draws.

    ``stream`` separates the uses within a model. Each replica gets its own draws (its replica
    id enters the counter), so the replicas' batches see different noise, as one big batch would.
    """
    ctx = tf.distribute.get_replica_context()
    replica = ctx.replica_id_in_sync_group if ctx is not None else 0
    counter = tf.cast(step, tf.int64) * _replicas() + tf.cast(replica, tf.int64)
    seed = tf.stack([tf.constant(model.seed * 1000 + 900 + stream, tf.int64), counter])
    return tf.random.stateless_normal(shape, seed=seed, dtype=tf.float32)


def replicated_normal(shape, seed: int, step, dtype="float32") -> tf.Tensor:
    """N(0, 1) draws from the seed pair ``(seed, step)``: the same on every replica, so that
    mirrored copies of a variable assigned from them stay equal."""
    pair = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    return tf.random.stateless_normal(shape, seed=pair, dtype=dtype)


# -- what a model's after_update hook may use -------------------------------------------------


def global_mean(x):
    """The mean over the replicas of a per-replica scalar (the global batch's value)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and _replicas() > 1:
        x = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, x)
    return x


def replicas_in_step() -> int:
    """How many replicas run this step's code, each on its share of the batch."""
    return _replicas()


def assign_where(pred, variables: list, values_fn) -> None:
    """``variables[i].assign(values_fn()[i])`` where the scalar bool ``pred`` holds; ``values_fn``
    runs only then (a ``tf.cond``), so a rarely taken branch costs nothing on other steps."""

    def assign():
        for var, value in zip(variables, values_fn()):
            var.assign(value)
        return tf.constant(True)

    tf.cond(pred, assign, lambda: tf.constant(False))


# -- steps ------------------------------------------------------------------------------------


def logs(model, losses: dict) -> dict:
    """Update the metric trackers and return the step's logs.

    Under MultiWorkerMirroredStrategy, Keras's ``fit`` reduces each log along axis 0, which
    fails for scalars (tensorflow/tensorflow#72388); there the logs are given shape (1,).
    """
    results = model.update_trackers(losses)
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        results = {k: tf.reshape(v, [1]) for k, v in results.items()}
    return results


def train_step(model, x) -> dict:
    """One training step of any of the suite's models (see ``models.base.AnomalyModel``).

    One forward pass under one tape per optimiser group; each group's optimiser then applies
    the gradient of its losses' sum; then the model's ``after_update(losses)`` hook.
    ``x``: the replica's images (n, s, s, c). Returns the logs.
    """
    groups = model.optimizer_groups()
    inputs = [x]
    if model.train_noise:
        inputs.append(standard_normal(model, (tf.shape(x)[0], model.latent_dim), groups[0][0].iterations))
    with contextlib.ExitStack() as stack:
        tapes = [stack.enter_context(tf.GradientTape()) for _ in groups]
        losses = model.compute_losses(*inputs, training=True)
        scaled = [tf.add_n([losses[name] for name in names]) / _replicas() for _, _, names in groups]
    for (optimizer, variables, _), tape, loss in zip(groups, tapes, scaled):
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    model.after_update(losses)
    return logs(model, losses)


def test_step(model, compute_logs):
    """``test_step(data)``: Keras's TensorFlow trainer is stateful, there is no state to thread."""
    return compute_logs()


def predict_step(model, predict):
    """``predict_step(data)``: Keras's TensorFlow trainer is stateful, there is no state to thread."""
    return predict()


class TrainerHooks:
    """Nothing to adapt: Keras's TensorFlow trainer calls the model's steps as they are."""


# -- scoring --------------------------------------------------------------------------------


def latent_search(model, loss, z0, iterations: int, learning_rate, adam: tuple[float, float, float]):
    """``iterations`` Adam steps on codes z (n, d) from ``z0``, each minimising its own entry of
    ``loss(z)`` (n,) (a sum of per-image terms: each z gets its own image's gradient only).

    ``learning_rate(i)``: the rate at 0-based iteration ``i``; ``adam``: (beta_1, beta_2, epsilon).
    Runs as a ``tf.while_loop`` inside the caller's graph (Keras's predict function). Returns
    ``loss`` at the final z, float32 (n,), without gradient.
    """
    beta_1, beta_2, epsilon = adam

    def body(i, z, m, v):
        # Only z is differentiated: the tape records no weight reads, so no weight gradients.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(z)
            total = tf.reduce_sum(loss(z))
        g = tape.gradient(total, z)
        t = tf.cast(i + 1, tf.float32)
        m = beta_1 * m + (1.0 - beta_1) * g
        v = beta_2 * v + (1.0 - beta_2) * tf.square(g)
        step = learning_rate(i) * (m / (1.0 - beta_1**t)) / (tf.sqrt(v / (1.0 - beta_2**t)) + epsilon)
        return i + 1, z - step, m, v

    zeros = tf.zeros_like(z0)
    _, z, _, _ = tf.while_loop(
        lambda i, *_: i < iterations, body, (tf.constant(0), z0, zeros, zeros), parallel_iterations=1
    )
    return tf.stop_gradient(loss(z))
