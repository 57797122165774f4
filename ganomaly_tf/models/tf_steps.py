"""TensorFlow training steps (GradientTape). Imported only on the TensorFlow backend.

``train_step`` serves every model (its ``optimizer_groups`` say what to update on which
losses); ``anogan_score`` is AnoGAN's latent search. ``jax_steps`` holds the JAX counterparts.

Under a ``tf.distribute`` strategy each replica sees ``global_batch / replicas`` images and
Keras's optimiser sums the replicas' gradients; the losses here are plain means, so they are
divided by the replica count before differentiation to give the gradient of the global mean.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf


def _replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


def logs(model, losses: dict) -> dict:
    """Update the metric trackers and return the step's logs.

    Under MultiWorkerMirroredStrategy, Keras's ``fit`` reduces each log along axis 0, which
    fails for scalars (tensorflow/tensorflow#72388); there the logs are given shape (1,).
    """
    results = model.update_trackers(losses)
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        results = {k: tf.reshape(v, [1]) for k, v in results.items()}
    return results


def standard_normal(model, shape, step, stream: int = 0):
    """N(0, 1) draws for one training step, stateless: the same seed and step give the same draws.

    ``stream`` separates the uses within a model. Each replica gets its own draws (its replica
    id enters the counter), so the replicas' batches see different noise, as one big batch would.
    """
    ctx = tf.distribute.get_replica_context()
    replica = ctx.replica_id_in_sync_group if ctx is not None else 0
    counter = tf.cast(step, tf.int64) * _replicas() + tf.cast(replica, tf.int64)
    seed = tf.stack([tf.constant(model.seed * 1000 + 900 + stream, tf.int64), counter])
    return tf.random.stateless_normal(shape, seed=seed, dtype=tf.float32)


def train_step(model, x) -> dict:
    """One training step of any of the suite's models (see ``base.AnomalyModel``).

    One forward pass under one tape per optimiser group; each group's optimiser then applies
    the gradient of its losses' sum. Then GANomaly's discriminator re-initialisation rule.
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
    if getattr(model, "d_reinit_threshold", 0) > 0:
        reinitialise_discriminator(model, losses["d_loss"])
    return logs(model, losses)


def reinitialise_discriminator(model, d_loss) -> None:
    """GANomaly's rule: when D's loss (the mean over replicas) falls below the threshold, redraw
    D's weights (its Adam state is kept). Stateless and deterministic: the draws come from
    (seed, step), so each replica draws the same values and mirrored copies stay equal."""
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and _replicas() > 1:
        d_loss = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, d_loss)
    flag = d_loss < model.d_reinit_threshold
    step = model.d_optimizer.iterations
    targets = model.discriminator_reinit_targets()

    def redraw():
        for i, (var, mean, std) in enumerate(targets):
            seed = tf.stack([tf.cast(model.seed * 1000 + i, tf.int64), tf.cast(step, tf.int64)])
            var.assign(mean + std * tf.random.stateless_normal(var.shape, seed=seed, dtype=var.dtype))
        return tf.constant(True)

    # Drawn only when the rule fires (rarely), not on every step.
    tf.cond(flag, redraw, lambda: tf.constant(False))
    model.reinit_tracker.update_state(tf.cast(flag, tf.float32) / _replicas())


def anogan_score(model, x, training: bool = False):
    """AnoGAN's latent search, batched: ``model.score_iterations`` Adam steps on one z per image.

    Runs as a ``tf.while_loop`` inside the caller's graph (Keras's predict function). Returns
    the per-image loss at the final z, float32 (n,).
    """
    x = tf.cast(x, tf.float32)
    n = tf.shape(x)[0]
    _, features_x = model.discriminator(x, training=training)
    features_x = tf.stop_gradient(tf.cast(features_x, tf.float32))
    z0 = tf.broadcast_to(tf.constant(model.z_init, tf.float32)[None, :], tf.stack([n, model.latent_dim]))
    beta_1, beta_2, epsilon = model.z_adam

    def body(i, z, m, v):
        # Only z is differentiated: the tape records no weight reads, so no weight gradients.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(z)
            # A sum of per-image losses: each z gets the gradient of its own image's loss only.
            loss = tf.reduce_sum(model.latent_loss(x, features_x, z, training=training))
        g = tape.gradient(loss, z)
        t = tf.cast(i + 1, tf.float32)
        m = beta_1 * m + (1.0 - beta_1) * g
        v = beta_2 * v + (1.0 - beta_2) * tf.square(g)
        step = model.z_learning_rate(i) * (m / (1.0 - beta_1**t)) / (tf.sqrt(v / (1.0 - beta_2**t)) + epsilon)
        return i + 1, z - step, m, v

    zeros = tf.zeros_like(z0)
    _, z, _, _ = tf.while_loop(
        lambda i, *_: i < model.score_iterations, body, (tf.constant(0), z0, zeros, zeros), parallel_iterations=1
    )
    return tf.stop_gradient(model.latent_loss(x, features_x, z, training=training))
