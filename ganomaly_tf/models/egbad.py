"""EGBAD (Zenati, Foo, Lecouat, Manek, Chandrasekhar, "Efficient GAN-Based Anomaly Detection",
ICLR 2018 workshop, arXiv 1802.06222): a BiGAN (Donahue et al. 2017) trained on normal images.

Networks: encoder E (image -> z, the DCGAN encoder of :mod:`networks`), generator G (z ->
image, the DCGAN decoder) and a joint discriminator D(x, z) (:class:`JointDiscriminator`).
BiGAN binary cross-entropy losses, as in the authors' code (non-saturating for G and E):
    L_D = BCE(D(x, E(x)), 1) + BCE(D(G(z), z), 0),   z ~ N(0, I)
    L_G = BCE(D(G(z), z), 1)
    L_E = BCE(D(x, E(x)), 0)
E and G share one Adam (their losses touch disjoint weights, so this equals two Adams).

Anomaly score, the paper's A(x) = alpha * L_G(x) + (1 - alpha) * L_D(x) with alpha = 0.9:
    L_G(x) = ||x - G(E(x))||_1                                   (sum over pixels)
    L_D(x) = ||f_D(x, E(x)) - f_D(G(E(x)), E(x))||_1             (feature-matching variant)
f_D is D's joint hidden layer (the layer before its logit). The authors' code writes the
same score as (1 - w) * L_G + w * L_D with w = 0.1 ("as in AnoGAN, weight 0.1 on the
discriminator loss"); the weight 0.9 is on the reconstruction term either way.

Choices and deviations from the paper (MNIST setting of the authors' code):
- Networks: the 32x32 DCGAN blocks shared with GANomaly (docs/design.md, Networks), nz = 100, 64 filters,
  instead of their 28x28 MNIST networks with nz = 200 (dense layers in G, 3x3 convs in E).
- D(x, z), kept small: x branch = the DCGAN encoder body (conv stack to 4x4x(4 * filters),
  the GANomaly discriminator's body) -> a 4x4 valid conv to 8 * filters features (the DCGAN
  discriminator's classifier conv, widened from 1 output) + LeakyReLU 0.2 -> dropout; z branch
  = Dense(8 * filters) + LeakyReLU 0.2 -> dropout; joint = concatenation -> Dense(8 * filters)
  + LeakyReLU 0.2 (these are f_D) -> dropout -> Dense(1) logit. 3.3 M weights at the paper
  sizes. Theirs (MNIST): two 4x4 convs of 64 filters on x, flattened; Dense(512) on z; a joint
  Dense(1024); LeakyReLU 0.1; dropout 0.5 after every layer (about 3.9 M weights). Dropout
  rate ``dropout`` (0.5, theirs) acts in training only, never in scoring (in any BatchNorm
  mode), so scores are deterministic; our conv body has none inside. In short MNIST runs
  (about 280 steps of batch 32, 16 filters, abnormal digit 0), a D without dropout, or one
  that flattened the 4x4 maps straight into the joint layer, gave AUCs anywhere from 0.1 to
  0.9 across seeds, G and E collapsed (one reconstruction for every image); this D gave
  0.74-0.92 on three seeds.
- Optimiser settings shared with GANomaly: Adam 2e-4, beta_1 0.5, beta_2 0.999, batch 64,
  the suite's epochs (theirs: Adam 1e-5, beta_1 0.5, batch 100). No exponential moving
  average of the weights at test time (theirs: EMA 0.999).
- All three networks are updated from one forward pass per batch (their code updates D on
  one batch, then E and G on another).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from .base import AdversarialModel, AnomalyModel
from .networks import LEAKY_SLOPE, build_decoder, build_encoder, conv_init, encoder_body


def bce_with_logits(logits, target: float):
    """Mean binary cross-entropy of logits against a constant 0/1 target, numerically stable."""
    logits = ops.cast(logits, "float32")
    return ops.mean(ops.softplus(-logits) if target == 1.0 else ops.softplus(logits))


def _dense(units: int, name: str) -> layers.Dense:
    return layers.Dense(units, kernel_initializer=conv_init(), bias_initializer="zeros", name=name)


class JointDiscriminator(keras.Model):
    """BiGAN discriminator D(x, z): returns ``(logit (n,), joint features f_D (n, 8 * filters))``.

    Layers as in the module docstring; ``seed`` seeds the dropout masks.
    """

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        latent_dim: int = 100,
        filters: int = 64,
        *,
        sync_bn: bool = False,
        dropout: float = 0.5,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        units = 8 * filters
        self.x_branch = encoder_body(image_size, channels, filters, sync_bn=sync_bn, name="x_branch")
        x_shape = self.x_branch.compute_output_shape((None, image_size, image_size, channels))
        # Like the DCGAN discriminator's 4x4 valid classifier conv, but to ``units`` features, not one logit.
        self.x_head = keras.Sequential(
            [
                keras.Input(x_shape[1:]),
                layers.Conv2D(
                    units, x_shape[1], 1, "valid", use_bias=False, kernel_initializer=conv_init(), name="conv"
                ),
                layers.LeakyReLU(LEAKY_SLOPE, name="lrelu"),
                layers.Flatten(name="flatten"),
            ],
            name="x_head",
        )
        self.z_branch = keras.Sequential(
            [keras.Input((latent_dim,)), _dense(units, "z_dense"), layers.LeakyReLU(LEAKY_SLOPE, name="z_lrelu")],
            name="z_branch",
        )
        self.joint = keras.Sequential(
            [
                keras.Input((2 * units,)),
                _dense(units, "joint_dense"),
                layers.LeakyReLU(LEAKY_SLOPE, name="joint_lrelu"),
            ],
            name="joint",
        )
        self.logit = keras.Sequential([keras.Input((units,)), _dense(1, "logit")], name="logit")
        self.dropout = float(dropout)
        # Seeded from ``seed``: the masks of a run do not depend on the global seed.
        self.drop_x = layers.Dropout(self.dropout, seed=seed + 1, name="drop_x")
        self.drop_z = layers.Dropout(self.dropout, seed=seed + 2, name="drop_z")
        self.drop_joint = layers.Dropout(self.dropout, seed=seed + 3, name="drop_joint")
        self.built = True

    def call(self, x, z, training: bool = False, dropout: bool | None = None):
        """``dropout``: apply the dropout layers (None: when ``training``). Scoring passes False, so
        training-mode BatchNorm at test time does not also draw dropout masks."""
        drop = training if dropout is None else dropout
        hx = self.drop_x(self.x_head(self.x_branch(x, training=training), training=training), training=drop)
        hz = self.drop_z(self.z_branch(z, training=training), training=drop)
        features = self.joint(ops.concatenate([hx, ops.cast(hz, hx.dtype)], axis=-1), training=training)
        return self.logit(self.drop_joint(features, training=drop), training=training)[:, 0], features


@keras.saving.register_keras_serializable(package="ganomaly_tf")
class EGBAD(AdversarialModel):
    """BiGAN anomaly detector scored by reconstruction and discriminator feature matching.

    Parameters
    ----------
    image_size, channels, latent_dim, filters, seed, sync_bn : as :class:`base.AnomalyModel`.
    alpha : weight of the reconstruction term in the score (paper: 0.9); 1 - alpha weighs
        the feature-matching term.
    dropout : dropout rate in the discriminator during training (authors' code: 0.5).
    """

    config_keys = (*AnomalyModel.config_keys, "alpha", "dropout")
    networks = ("encoder", "generator", "discriminator")
    loss_names = ("g_loss", "e_loss", "d_loss")
    # g_loss is measured on noise alone; the mean score of held-out normals depends on the images
    selection_key = "score_mean"
    train_noise = True  # z ~ N(0, I)

    def __init__(self, *, alpha: float = 0.9, dropout: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)
        self.dropout = float(dropout)
        net = self.network_options
        self.encoder = build_encoder(latent_dim=self.latent_dim, name="encoder", **net)
        self.generator = build_decoder(latent_dim=self.latent_dim, name="generator", **net)
        self.discriminator = JointDiscriminator(
            latent_dim=self.latent_dim, dropout=self.dropout, seed=self.seed, name="discriminator", **net
        )
        self.built = True

    # -- model -------------------------------------------------------------------------

    @property
    def generator_variables(self) -> list:
        """E's and G's weights, updated together by ``g_optimizer``."""
        return [*self.encoder.trainable_variables, *self.generator.trainable_variables]

    def call(self, x, training: bool = False):
        """(n, s, s, c) -> (reconstruction G(E(x)) (n, s, s, c), code E(x) (n, latent_dim))."""
        z = self.encoder(x, training=training)
        return self.generator(z, training=training), z

    def score_terms(self, x, training: bool = False) -> dict:
        """Per-image L_G, L_D and A = alpha * L_G + (1 - alpha) * L_D, float32 (n,) each."""
        x_rec, z = self(x, training=training)
        _, f_real = self.discriminator(x, z, training=training, dropout=False)
        _, f_rec = self.discriminator(x_rec, z, training=training, dropout=False)
        flat = lambda t: ops.reshape(ops.cast(t, "float32"), (ops.shape(t)[0], -1))  # noqa: E731
        l_g = ops.sum(ops.abs(flat(x) - flat(x_rec)), axis=-1)
        l_d = ops.sum(ops.abs(flat(f_real) - flat(f_rec)), axis=-1)
        return {"l_g": l_g, "l_d": l_d, "score": self.alpha * l_g + (1.0 - self.alpha) * l_d}

    def anomaly_score(self, x, training: bool = False):
        return self.score_terms(x, training=training)["score"]

    def compute_losses(self, x, z, training: bool = True) -> dict:
        """BiGAN losses of real images ``x`` and prior draws ``z`` (float32 scalars)."""
        z_enc = self.encoder(x, training=training)
        x_gen = self.generator(z, training=training)
        l_enc, _ = self.discriminator(x, z_enc, training=training)
        l_gen, _ = self.discriminator(x_gen, z, training=training)
        return {
            "d_loss": bce_with_logits(l_enc, 1.0) + bce_with_logits(l_gen, 0.0),
            "g_loss": bce_with_logits(l_gen, 1.0),
            "e_loss": bce_with_logits(l_enc, 0.0),
        }

    def optimizer_groups(self) -> list:
        """One Adam updates E and G on g_loss + e_loss (disjoint weights: as two Adams); D's
        updates D on d_loss (no ``after_update``)."""
        return [
            (self.g_optimizer, self.generator_variables, ("g_loss", "e_loss")),
            (self.d_optimizer, self.discriminator.trainable_variables, ("d_loss",)),
        ]

    def evaluation_losses(self, x) -> dict:
        """BiGAN losses with inference BatchNorm and a fixed draw of z (seeded)."""
        z = keras.random.normal((ops.shape(x)[0], self.latent_dim), seed=self.seed)
        return self.compute_losses(x, z, training=False)
