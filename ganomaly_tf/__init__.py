"""GANomaly in Keras 3: the model, its baselines, and honest evaluation."""

__version__ = "0.1.0"
