"""Models: DCGAN blocks, GANomaly and the baselines. Importing this needs Keras, not TensorFlow."""

from .base import BN_MODES, AnomalyModel
from .ganomaly import GANomaly
from .networks import Discriminator, build_decoder, build_encoder

__all__ = ["BN_MODES", "AnomalyModel", "Discriminator", "GANomaly", "build_decoder", "build_encoder"]
