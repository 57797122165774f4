"""Name -> model class, so runs and sweeps can say ``--models ganomaly ae ...``."""

from __future__ import annotations

from .anogan import AnoGAN
from .autoencoder import AutoEncoder
from .base import AnomalyModel
from .egbad import EGBAD
from .ganomaly import GANomaly
from .vae import VAE

MODELS: dict[str, type[AnomalyModel]] = {
    "ganomaly": GANomaly,
    "ae": AutoEncoder,
    "anogan": AnoGAN,
    "egbad": EGBAD,
    "vae": VAE,
}


def build_model(name: str, **kwargs) -> AnomalyModel:
    """Instantiate a registered model; ``kwargs`` go to its constructor."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    return cls(**kwargs)
