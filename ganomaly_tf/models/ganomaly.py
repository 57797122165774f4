"""GANomaly (Akcay, Atapour-Abarghouei, Breckon, ACCV 2018; arXiv 1805.06725).

Generator: z = E1(x), x_hat = Dec(z), z_hat = E2(x_hat). A discriminator D gives the
adversarial signal. Losses (docs/design.md, Losses and training): adversarial = feature matching, mean squared
difference of D's features of x and x_hat; contextual = mean |x - x_hat|; encoder = mean
squared difference of z and z_hat; discriminator = binary cross-entropy, real -> 1,
x_hat -> 0, averaged. Anomaly score: mean over latent dimensions of (z - z_hat)^2.

GANomaly's training step, in this file: one forward pass per batch (:meth:`GANomaly.compute_losses`);
``g_optimizer`` updates E1, Dec and E2 on g_loss, ``d_optimizer`` updates D on d_loss
(:meth:`GANomaly.optimizer_groups`); then the official code's rule re-initialises D when its loss
collapses (:meth:`GANomaly.after_update`). The backends' generic ``train_step``
(``ganomaly_tf.backends``, tapes on TensorFlow, ``jax.vjp`` on JAX) runs these three in this order.
Networks, losses, scores and the rule are ``keras.ops`` and the backends' portable primitives.
"""

from __future__ import annotations

import keras
from keras import ops

from ..backends import active
from .base import AdversarialModel, AnomalyModel, count_params
from .networks import Discriminator, build_decoder, build_encoder

_EPS = 1e-7


def binary_crossentropy(probabilities, target: float):
    """Mean BCE of probabilities against a constant target, clipped as Keras does."""
    p = ops.clip(probabilities, _EPS, 1.0 - _EPS)
    return -ops.mean(target * ops.log(p) + (1.0 - target) * ops.log(1.0 - p))


@keras.saving.register_keras_serializable(package="ganomaly_tf")
class GANomaly(AdversarialModel):
    """GANomaly for square images.

    Parameters
    ----------
    image_size, channels : input shape (image_size, image_size, channels); 32 and 1 or 3.
    latent_dim : nz, the size of z (paper: 100).
    filters : base filter count of every network (paper: 64).
    d_reinit_threshold : re-initialise D's weights when its loss falls below this (1e-5,
        the official rule; its Adam state is kept). 0 disables it.
    seed : seeds the re-initialisation draws.
    sync_bn : synchronise BatchNorm statistics across replicas under tf.distribute.
    """

    config_keys = (*AnomalyModel.config_keys, "d_reinit_threshold")
    loss_names = ("g_loss", "adv_loss", "con_loss", "enc_loss", "d_loss")

    def __init__(self, *, d_reinit_threshold: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.d_reinit_threshold = float(d_reinit_threshold)
        net = self.network_options
        self.encoder1 = build_encoder(latent_dim=self.latent_dim, name="encoder1", **net)
        self.decoder = build_decoder(latent_dim=self.latent_dim, name="decoder", **net)
        self.encoder2 = build_encoder(latent_dim=self.latent_dim, name="encoder2", **net)
        self.discriminator = Discriminator(name="discriminator", **net)
        self.reinit_tracker = keras.metrics.Sum(name="d_reinits")
        self.w_adv, self.w_con, self.w_enc = 1.0, 50.0, 1.0
        self.built = True

    # -- forward pass and losses -------------------------------------------------------

    def call(self, x, training: bool = False):
        """(n, s, s, c) -> (x_hat (n, s, s, c), z (n, nz), z_hat (n, nz))."""
        z = self.encoder1(x, training=training)
        x_hat = self.decoder(z, training=training)
        z_hat = self.encoder2(x_hat, training=training)
        return x_hat, z, z_hat

    def compute_losses(self, x, training: bool = True) -> dict:
        """The losses of one batch x (n, s, s, c), float32 scalars: ``loss_names``."""
        x_hat, z, z_hat = self(x, training=training)
        p_real, f_real = self.discriminator(x, training=training)
        p_fake, f_fake = self.discriminator(x_hat, training=training)
        f32 = lambda t: ops.cast(t, "float32")  # noqa: E731
        adv = ops.mean(ops.square(f32(f_real) - f32(f_fake)))
        con = ops.mean(ops.abs(f32(x) - f32(x_hat)))
        enc = ops.mean(ops.square(f32(z) - f32(z_hat)))
        g_loss = self.w_adv * adv + self.w_con * con + self.w_enc * enc
        # D sees x_hat as a constant: its loss only ever differentiates D's own weights.
        d_loss = 0.5 * (binary_crossentropy(f32(p_real), 1.0) + binary_crossentropy(f32(p_fake), 0.0))
        return {"g_loss": g_loss, "adv_loss": adv, "con_loss": con, "enc_loss": enc, "d_loss": d_loss}

    # -- the training step: what is updated on which losses, then the re-initialisation rule --

    def optimizer_groups(self) -> list:
        """G's optimiser updates E1, Dec and E2 on g_loss; D's updates D on d_loss."""
        return [
            (self.g_optimizer, self.generator_variables, ("g_loss",)),
            (self.d_optimizer, self.discriminator.trainable_variables, ("d_loss",)),
        ]

    def after_update(self, losses: dict) -> None:
        """The official code's rule: when D's loss falls below ``d_reinit_threshold``, redraw D's
        weights as ``weights_init`` does (:meth:`discriminator_reinit_targets`); its Adam state is
        kept. Counted in the ``d_reinits`` metric.

        One decision per step from the global batch's D loss. Stateless and deterministic:
        variable ``i`` is drawn from (``seed * 1000 + i``, D's iteration count after this step's
        update), the same on every replica, so mirrored copies stay equal; drawn only when the
        rule fires (rarely). (The backends draw from different generators: same rule, other numbers.)
        """
        if self.d_reinit_threshold <= 0:
            return
        backend = active()
        fired = backend.global_mean(losses["d_loss"]) < self.d_reinit_threshold
        step = self.d_optimizer.iterations
        targets = self.discriminator_reinit_targets()

        def redraw() -> list:
            return [
                mean + std * backend.replicated_normal(var.shape, self.seed * 1000 + i, step, var.dtype)
                for i, (var, mean, std) in enumerate(targets)
            ]

        backend.assign_where(fired, [var for var, _, _ in targets], redraw)
        # Each replica adds its share: one per firing, however many replicas.
        self.reinit_tracker.update_state(ops.cast(fired, "float32") / backend.replicas_in_step())

    def discriminator_reinit_targets(self) -> list[tuple[keras.Variable, float, float]]:
        """(variable, mean, std) of the official ``weights_init`` for each D weight."""
        targets = []
        for v in self.discriminator.trainable_variables:
            name = v.path.split("/")[-1]
            if name == "beta":
                targets.append((v, 0.0, 0.0))
            elif name == "gamma":
                targets.append((v, 1.0, 0.02))
            else:
                targets.append((v, 0.0, 0.02))
        return targets

    # -- scoring -------------------------------------------------------------------------

    def anomaly_score(self, x, training: bool = False):
        """Mean over the latent dimensions of (z - z_hat)^2: (n, s, s, c) -> float32 (n,)."""
        _, z, z_hat = self(x, training=training)
        return ops.mean(ops.square(ops.cast(z, "float32") - ops.cast(z_hat, "float32")), axis=-1)

    # -- settings ------------------------------------------------------------------------

    @property
    def generator_variables(self) -> list:
        return [
            *self.encoder1.trainable_variables,
            *self.decoder.trainable_variables,
            *self.encoder2.trainable_variables,
        ]

    def parameter_counts(self) -> dict[str, int]:
        return {
            "generator": count_params(self.generator_variables),
            "discriminator": count_params(self.discriminator.trainable_variables),
        }

    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer | None = None,
        d_optimizer: keras.optimizers.Optimizer | None = None,
        w_adv: float = 1.0,
        w_con: float = 50.0,
        w_enc: float = 1.0,
        **kwargs,
    ):
        """Set the two optimisers and the loss weights (paper: 1, 50, 1).

        Missing optimisers default to Adam(2e-4, beta_1=0.5, beta_2=0.999).
        """
        super().compile(g_optimizer, d_optimizer, **kwargs)
        self.w_adv, self.w_con, self.w_enc = float(w_adv), float(w_con), float(w_enc)

    def compile_settings(self) -> dict:
        return {"w_adv": self.w_adv, "w_con": self.w_con, "w_enc": self.w_enc}

    @property
    def metrics(self) -> list:
        return [*self.trackers.values(), self.reinit_tracker]
