"""AnoGAN (Schlegl, Seeböck, Waldstein, Schmidt-Erfurth, Langs, "Unsupervised Anomaly Detection
with Generative Adversarial Networks to Guide Marker Discovery", IPMI 2017, arXiv 1703.05921).

Training: a DCGAN on normal images only. Generator G = the DCGAN decoder of :mod:`networks`
from z ~ N(0, I) of size ``latent_dim``; discriminator D = :class:`networks.Discriminator`.
Standard non-saturating binary cross-entropy losses:
    L_D = BCE(D(x), 1) + BCE(D(G(z)), 0)        (sum of the two batch means, as DCGAN)
    L_G = BCE(D(G(z)), 1)                       (non-saturating generator loss)

Scoring: for each test image a latent code is optimised to map the image onto the learned
manifold, minimising, per image,
    L(z) = (1 - lambda) * R(z) + lambda * D_fm(z),
    R(z) = sum |x - G(z)|                       (residual loss, L1 over pixels)
    D_fm(z) = sum |f(x) - f(G(z))|              (discrimination loss, the paper's
                                                 feature-matching form on D's 4x4 feature maps)
with lambda = 0.1 (the paper's). After ``score_iterations`` updates of z (paper: 500), the
anomaly score is L at the final z. The loop is batched (one z per image; the images do not
interact: the loss is a sum of per-image terms and Adam acts per coordinate) and runs in the
backend's graph (the backends' ``latent_search``: a ``tf.while_loop`` or a ``lax.fori_loop``). It is slow by
design: each iteration is a forward and backward pass through G and D. At the paper's sizes
on a 2-core CPU this scored about 12 images/s with 50 iterations and 1.2 images/s with 500
(a 19.5k-image MNIST test set: about 27 minutes and 4.4 hours per evaluation).

Choices and deviations from the paper:
- Networks: the 32x32 DCGAN blocks shared with GANomaly (docs/design.md, Networks), nz = 100, 64 filters;
  the paper used a 64x64 DCGAN on OCT patches.
- Optimiser settings shared with GANomaly: Adam 2e-4, beta_1 0.5, beta_2 0.999, batch 64,
  the suite's epochs. Both networks are updated from one forward pass per batch (as the
  suite's GANomaly step); the DCGAN reference updates D first and then G against the updated D.
- The paper updates z "via backpropagation" without naming an optimiser. Here z has its own
  Adam (beta_1 0.9, beta_2 0.999, eps 1e-8) with the step schedule of the AnoGAN baseline in
  Zenati et al.'s EGBAD code (lr 0.01, then 0.001 after 40 % of the iterations, 0.0005 after
  60 %: their 200/300 of 500), ``score_learning_rate`` being the first value.
- Every image starts from the same code z_0 ~ N(0, I), drawn once from ``seed`` (the paper
  draws z_1 at random): a score depends only on the image and the weights, not on the
  batch it is scored in nor on its position there (with BatchNorm in inference mode).
- The paper's discriminator-feature loss uses "an intermediate layer" of D; here the
  features are the 4x4 maps before D's classifier, the same features GANomaly matches.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ..backends import active
from .base import AdversarialModel, AnomalyModel
from .ganomaly import binary_crossentropy
from .networks import Discriminator, build_decoder


def _per_image_l1(a, b):
    """sum |a - b| over all but the first axis, float32 (n,)."""
    diff = ops.abs(ops.cast(a, "float32") - ops.cast(b, "float32"))
    return ops.sum(ops.reshape(diff, (ops.shape(diff)[0], -1)), axis=-1)


@keras.saving.register_keras_serializable(package="ganomaly_tf")
class AnoGAN(AdversarialModel):
    """DCGAN on normals, scored by latent-code optimisation.

    Parameters
    ----------
    image_size, channels, latent_dim, filters, seed, sync_bn : as :class:`base.AnomalyModel`.
    score_iterations : updates of z per test image (paper: 500). 0 scores z_0 itself.
    lambda_ : weight of the discrimination loss in the score (paper: 0.1).
    score_learning_rate : first learning rate of z's Adam (see the module docstring).
    """

    config_keys = (*AnomalyModel.config_keys, "score_iterations", "lambda_", "score_learning_rate")
    networks = ("generator", "discriminator")
    loss_names = ("g_loss", "d_loss")
    # g_loss is measured on noise alone; the mean score of held-out normals depends on the images
    selection_key = "score_mean"
    train_noise = True  # z ~ N(0, I)
    #: Adam on z: beta_1, beta_2, epsilon
    z_adam = (0.9, 0.999, 1e-8)
    #: the schedule of z's learning rate: (fraction of the iterations, factor from then on)
    z_lr_schedule = ((0.4, 0.1), (0.6, 0.05))

    def __init__(
        self,
        *,
        score_iterations: int = 500,
        lambda_: float = 0.1,
        score_learning_rate: float = 0.01,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(score_iterations) < 0:
            raise ValueError(f"score_iterations must be >= 0, got {score_iterations}")
        self.score_iterations = int(score_iterations)
        self.lambda_ = float(lambda_)
        self.score_learning_rate = float(score_learning_rate)
        net = self.network_options
        self.generator = build_decoder(latent_dim=self.latent_dim, name="generator", **net)
        self.discriminator = Discriminator(name="discriminator", **net)
        # The start of every latent search; a function of the seed alone, so a reloaded model scores the same.
        self.z_init = np.random.default_rng(self.seed).standard_normal(self.latent_dim).astype(np.float32)
        self.built = True

    # -- model -------------------------------------------------------------------------

    @property
    def generator_variables(self) -> list:
        return self.generator.trainable_variables

    def call(self, z, training: bool = False):
        """Latent codes (n, latent_dim) -> generated images (n, s, s, c)."""
        return self.generator(z, training=training)

    def compute_losses(self, x, z, training: bool = True) -> dict:
        """GAN losses of a batch of real images ``x`` and latent codes ``z`` (float32 scalars)."""
        fake = self.generator(z, training=training)
        p_real, _ = self.discriminator(x, training=training)
        p_fake, _ = self.discriminator(fake, training=training)
        p_real, p_fake = ops.cast(p_real, "float32"), ops.cast(p_fake, "float32")
        d_loss = binary_crossentropy(p_real, 1.0) + binary_crossentropy(p_fake, 0.0)
        g_loss = binary_crossentropy(p_fake, 1.0)
        return {"g_loss": g_loss, "d_loss": d_loss}

    def optimizer_groups(self) -> list:
        """G's optimiser updates G on g_loss; D's updates D on d_loss (no ``after_update``)."""
        return [
            (self.g_optimizer, self.generator_variables, ("g_loss",)),
            (self.d_optimizer, self.discriminator.trainable_variables, ("d_loss",)),
        ]

    def latent_loss(self, x, features_x, z, training: bool = False):
        """Per-image (1 - lambda) * sum|x - G(z)| + lambda * sum|f(x) - f(G(z))|, float32 (n,).

        ``features_x`` are D's features of ``x`` (fixed during the search).
        """
        fake = self.generator(z, training=training)
        _, features_fake = self.discriminator(fake, training=training)
        residual = _per_image_l1(x, fake)
        discrimination = _per_image_l1(features_x, features_fake)
        return (1.0 - self.lambda_) * residual + self.lambda_ * discrimination

    def z_learning_rate(self, iteration):
        """Learning rate of z's Adam at 0-based ``iteration`` (a scalar tensor or int)."""
        lr = ops.convert_to_tensor(self.score_learning_rate, "float32")
        for fraction, factor in self.z_lr_schedule:
            boundary = int(round(fraction * self.score_iterations))
            lr = ops.where(ops.cast(iteration, "int32") >= boundary, self.score_learning_rate * factor, lr)
        return lr

    def anomaly_score(self, x, training: bool = False):
        """The latent search of the module docstring, batched: ``score_iterations`` Adam steps on
        one z per image from z_0, then the loss at the final z. (n, s, s, c) -> float32 (n,)."""
        x = ops.cast(x, "float32")
        _, features_x = self.discriminator(x, training=training)
        features_x = ops.stop_gradient(ops.cast(features_x, "float32"))  # fixed during the search
        z0 = ops.broadcast_to(
            ops.convert_to_tensor(self.z_init, "float32")[None, :], (ops.shape(x)[0], self.latent_dim)
        )
        return active().latent_search(
            self,
            lambda z: self.latent_loss(x, features_x, z, training=training),
            z0,
            self.score_iterations,
            self.z_learning_rate,
            self.z_adam,
        )

    def evaluation_losses(self, x) -> dict:
        """GAN losses with inference BatchNorm and a fixed draw of z (seeded)."""
        z = keras.random.normal((ops.shape(x)[0], self.latent_dim), seed=self.seed)
        return self.compute_losses(x, z, training=False)
