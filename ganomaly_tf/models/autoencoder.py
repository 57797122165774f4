"""Plain convolutional autoencoder baseline (docs/design.md, Baselines): GANomaly's encoder 1 and decoder alone.

x_hat = Dec(E(x)), trained with the reconstruction loss only: mean |x - x_hat|, the L1
loss of GANomaly's contextual term (without its weight 50, which a lone loss does not need
under Adam). No discriminator, no second encoder. Anomaly score: the mean absolute
reconstruction error per image, mean over pixels and channels of |x - x_hat| (the training
loss, per image).

Networks are the DCGAN blocks of :mod:`networks` at GANomaly's sizes; optimiser settings are
GANomaly's (Adam 2e-4, beta_1 0.5, beta_2 0.999, batch 64). Losses and scores are
``keras.ops``; the training step is the backends' generic one (``ganomaly_tf.backends``): one
optimiser, every weight, the reconstruction loss.
"""

from __future__ import annotations

import keras
from keras import ops

from .base import AnomalyModel
from .networks import build_decoder, build_encoder


@keras.saving.register_keras_serializable(package="ganomaly_tf")
class AutoEncoder(AnomalyModel):
    """Convolutional autoencoder scored by its L1 reconstruction error.

    Parameters
    ----------
    image_size, channels, latent_dim, filters, seed, sync_bn : as :class:`base.AnomalyModel` (latent code of
        size ``latent_dim``, the bottleneck; paper sizes 32, 1 or 3, 100, 64).
    """

    networks = ("encoder", "decoder")
    loss_names = ("rec_loss",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        net = self.network_options
        self.encoder = build_encoder(latent_dim=self.latent_dim, name="encoder", **net)
        self.decoder = build_decoder(latent_dim=self.latent_dim, name="decoder", **net)
        self.built = True

    def call(self, x, training: bool = False):
        """(n, s, s, c) -> reconstruction x_hat (n, s, s, c)."""
        return self.decoder(self.encoder(x, training=training), training=training)

    def reconstruction_errors(self, x, training: bool = False):
        """Mean |x - x_hat| per image, float32 (n,)."""
        x_hat = self(x, training=training)
        diff = ops.abs(ops.cast(x, "float32") - ops.cast(x_hat, "float32"))
        return ops.mean(ops.reshape(diff, (ops.shape(diff)[0], -1)), axis=-1)

    def anomaly_score(self, x, training: bool = False):
        return self.reconstruction_errors(x, training=training)

    def compute_losses(self, x, training: bool = True) -> dict:
        """The batch loss (mean over images of the per-image L1 error), a float32 scalar."""
        return {"rec_loss": ops.mean(self.reconstruction_errors(x, training=training))}
