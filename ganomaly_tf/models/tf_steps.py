"""TensorFlow training steps (GradientTape). Imported only on the TensorFlow backend.

Under a ``tf.distribute`` strategy each replica sees ``global_batch / replicas`` images and
Keras's optimiser sums the replicas' gradients; the losses here are plain means, so they are
divided by the replica count before differentiation to give the gradient of the global mean.
"""

from __future__ import annotations

import tensorflow as tf


def _replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


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
    return model.update_trackers(losses)
