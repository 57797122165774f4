"""Models: DCGAN blocks, GANomaly and the baselines. Importing this needs Keras, not TensorFlow."""

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
