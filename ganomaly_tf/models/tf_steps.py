"""TensorFlow training steps (GradientTape). Imported only on the TensorFlow backend.

Under a ``tf.distribute`` strategy each replica sees ``global_batch / replicas`` images and
Keras's optimiser sums the replicas' gradients; the losses here are plain means, so they are
divided by the replica count before differentiation to give the gradient of the global mean.
"""

from __future__ import annotations

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


def apply(optimizer, scaled_loss, variables, tape: tf.GradientTape) -> None:
    """Apply the gradient of a loss already divided by the replica count (inside the tape)."""
    optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))


def reinitialise(targets, seed: int, step, flag) -> None:
    """Redraw each (variable, mean, std) where ``flag`` holds; stateless and deterministic.

    Each replica draws the same values (same seed and step), so mirrored copies stay equal.
    """
    for i, (var, mean, std) in enumerate(targets):
        fresh = mean + std * tf.random.stateless_normal(
            var.shape, seed=tf.stack([tf.cast(seed * 1000 + i, tf.int64), tf.cast(step, tf.int64)]), dtype=var.dtype
        )
        var.assign(tf.where(flag, fresh, var.value))


def ganomaly_train_step(model, x) -> dict:
    """One generator update and one discriminator update on a batch (official order)."""
    with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
        losses = model.compute_losses(x, training=True)
        g_scaled = losses["g_loss"] / _replicas()
        d_scaled = losses["d_loss"] / _replicas()
    apply(model.g_optimizer, g_scaled, model.generator_variables, g_tape)
    apply(model.d_optimizer, d_scaled, model.discriminator.trainable_variables, d_tape)
    if model.d_reinit_threshold > 0:
        ctx = tf.distribute.get_replica_context()
        d_loss = ctx.all_reduce(tf.distribute.ReduceOp.MEAN, losses["d_loss"]) if ctx else losses["d_loss"]
        flag = d_loss < model.d_reinit_threshold
        reinitialise(model.discriminator_reinit_targets(), model.seed, model.d_optimizer.iterations, flag)
        model.reinit_tracker.update_state(tf.cast(flag, tf.float32) / _replicas())
    return logs(model, losses)


# -- baselines (autoencoder.py, anogan.py, egbad.py, vae.py) ----------------------------------


def standard_normal(model, shape, step, stream: int):
    """N(0, 1) draws for one training step, stateless: the same seed and step give the same draws.

    ``stream`` separates the uses within a model. Each replica gets its own draws (its replica
    id enters the counter), so the replicas' batches see different noise, as one big batch would.
    """
    ctx = tf.distribute.get_replica_context()
    replica = ctx.replica_id_in_sync_group if ctx is not None else 0
    counter = tf.cast(step, tf.int64) * _replicas() + tf.cast(replica, tf.int64)
    seed = tf.stack([tf.constant(model.seed * 1000 + 900 + stream, tf.int64), counter])
    return tf.random.stateless_normal(shape, seed=seed, dtype=tf.float32)


def ae_train_step(model, x) -> dict:
    """One update of encoder and decoder on the reconstruction loss."""
    with tf.GradientTape() as tape:
        losses = model.compute_losses(x, training=True)
        scaled = losses["rec_loss"] / _replicas()
    apply(model.optimizer, scaled, model.trainable_variables, tape)
    return logs(model, losses)


def anogan_train_step(model, x) -> dict:
    """One generator and one discriminator update from the same forward pass (z ~ N(0, I))."""
    z = standard_normal(model, (tf.shape(x)[0], model.latent_dim), model.g_optimizer.iterations, stream=0)
    with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
        losses = model.compute_losses(x, z, training=True)
        g_scaled = losses["g_loss"] / _replicas()
        d_scaled = losses["d_loss"] / _replicas()
    apply(model.g_optimizer, g_scaled, model.generator.trainable_variables, g_tape)
    apply(model.d_optimizer, d_scaled, model.discriminator.trainable_variables, d_tape)
    return logs(model, losses)


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
        with tf.GradientTape() as tape:
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


def egbad_train_step(model, x) -> dict:
    """One E+G update and one D update from the same forward pass (BiGAN, z ~ N(0, I))."""
    z = standard_normal(model, (tf.shape(x)[0], model.latent_dim), model.g_optimizer.iterations, stream=0)
    with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
        losses = model.compute_losses(x, z, training=True)
        g_scaled = (losses["g_loss"] + losses["e_loss"]) / _replicas()
        d_scaled = losses["d_loss"] / _replicas()
    apply(model.g_optimizer, g_scaled, model.generator_variables, g_tape)
    apply(model.d_optimizer, d_scaled, model.discriminator.trainable_variables, d_tape)
    return logs(model, losses)


def vae_train_step(model, x) -> dict:
    """One update on the negative ELBO with one reparameterised draw per image."""
    eps = standard_normal(model, (tf.shape(x)[0], model.latent_dim), model.optimizer.iterations, stream=0)
    with tf.GradientTape() as tape:
        losses = model.compute_losses(x, eps, training=True)
        scaled = losses["loss"] / _replicas()
    apply(model.optimizer, scaled, model.trainable_variables, tape)
    return logs(model, losses)
