"""Convolutional variational autoencoder baseline (Kingma and Welling, "Auto-Encoding
Variational Bayes", ICLR 2014; used for anomaly detection by scoring with the ELBO, e.g.
An and Cho, "Variational Autoencoder based Anomaly Detection using Reconstruction
Probability", SNU Data Mining Center, 2015).

Encoder: the DCGAN encoder of :mod:`networks` with a final 4x4 convolution to 2 * latent_dim
channels, split into the posterior mean mu and log-variance log sigma^2 of q(z|x) =
N(mu, diag sigma^2). Decoder: the DCGAN decoder (tanh output, the mean of p(x|z)).
Prior p(z) = N(0, I).

Loss, per image, then the batch mean (the negative ELBO up to an additive constant):
    rec(x, z) = sum over pixels of (x - Dec(z))^2
        = -log p(x|z) + const for a Gaussian decoder with fixed variance 1/2 per pixel
    KL(x) = -1/2 * sum over latent dimensions of (1 + log sigma^2 - mu^2 - sigma^2)
    loss = rec(x, mu + sigma * eps) + KL(x),  eps ~ N(0, I) (reparameterisation, one draw)
Anomaly score: the negative ELBO per image, estimated deterministically with the posterior
mean as the one latent sample: rec(x, mu) + KL(x). The dropped constant
(D/2 * log(pi), D pixels) is the same for every image and changes no ranking.

Choices and deviations: this benchmark has no fixed VAE recipe to follow, so the setting is
the suite's: networks are the 32x32 DCGAN blocks shared with GANomaly (nz = 100, 64 filters;
BatchNorm in encoder and decoder), optimiser settings are GANomaly's (Adam 2e-4, beta_1 0.5,
beta_2 0.999, batch 64), the decoder variance is fixed (not learned) and the KL term has
weight 1 (no annealing, no beta-VAE weight).
"""

from __future__ import annotations

import keras
from keras import ops

from .base import AnomalyModel
from .networks import build_decoder, build_encoder


def _per_image_sum(t):
    t = ops.cast(t, "float32")
    return ops.sum(ops.reshape(t, (ops.shape(t)[0], -1)), axis=-1)


@keras.saving.register_keras_serializable(package="ganomaly_tf")
class VAE(AnomalyModel):
    """Convolutional VAE scored by its negative ELBO at the posterior mean.

    Parameters
    ----------
    image_size, channels, latent_dim, filters, seed, sync_bn : as :class:`base.AnomalyModel`.
    """

    networks = ("encoder", "decoder")
    loss_names = ("loss", "rec_loss", "kl_loss")
    train_noise = True  # eps of the reparameterisation

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        net = self.network_options
        self.encoder = build_encoder(latent_dim=2 * self.latent_dim, name="encoder", **net)
        self.decoder = build_decoder(latent_dim=self.latent_dim, name="decoder", **net)
        self.built = True

    def posterior(self, x, training: bool = False):
        """q(z|x): (mean (n, latent_dim), log-variance (n, latent_dim)), float32."""
        h = ops.cast(self.encoder(x, training=training), "float32")
        return h[:, : self.latent_dim], h[:, self.latent_dim :]

    def call(self, x, training: bool = False):
        """(n, s, s, c) -> (reconstruction at the posterior mean, mean, log-variance)."""
        mean, log_var = self.posterior(x, training=training)
        return self.decoder(mean, training=training), mean, log_var

    def elbo_terms(self, x, eps=None, training: bool = False) -> dict:
        """Per-image rec, KL and their sum (the negative ELBO up to a constant), float32 (n,).

        ``eps`` (n, latent_dim): the standard normal draw of z = mean + exp(log_var / 2) * eps;
        ``None`` decodes the posterior mean.
        """
        mean, log_var = self.posterior(x, training=training)
        z = mean if eps is None else mean + ops.exp(0.5 * log_var) * ops.cast(eps, "float32")
        x_hat = self.decoder(z, training=training)
        rec = _per_image_sum(ops.square(ops.cast(x, "float32") - ops.cast(x_hat, "float32")))
        kl = -0.5 * ops.sum(1.0 + log_var - ops.square(mean) - ops.exp(log_var), axis=-1)
        return {"rec": rec, "kl": kl, "neg_elbo": rec + kl}

    def anomaly_score(self, x, training: bool = False):
        return self.elbo_terms(x, training=training)["neg_elbo"]

    def compute_losses(self, x, eps=None, training: bool = True) -> dict:
        """Batch means of the per-image terms (float32 scalars); ``eps`` as :meth:`elbo_terms`."""
        terms = self.elbo_terms(x, eps, training=training)
        return {
            "loss": ops.mean(terms["neg_elbo"]),
            "rec_loss": ops.mean(terms["rec"]),
            "kl_loss": ops.mean(terms["kl"]),
        }
