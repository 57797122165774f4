"""Models: DCGAN blocks, GANomaly and the baselines, one file each. Importing this needs Keras and
the running backend's module (``ganomaly_tf.backends``): no TensorFlow on JAX."""

from .anogan import AnoGAN
from .autoencoder import AutoEncoder
from .base import BN_MODES, AnomalyModel
from .egbad import EGBAD
from .ganomaly import GANomaly
from .networks import Discriminator, build_decoder, build_encoder
from .vae import VAE

__all__ = [
    "BN_MODES",
    "EGBAD",
    "VAE",
    "AnoGAN",
    "AnomalyModel",
    "AutoEncoder",
    "Discriminator",
    "GANomaly",
    "build_decoder",
    "build_encoder",
]
