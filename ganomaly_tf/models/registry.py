"""Name -> model class, so runs and sweeps can say ``--models ganomaly ae ...``."""

from __future__ import annotations

from .base import AnomalyModel
from .ganomaly import GANomaly

MODELS: dict[str, type[AnomalyModel]] = {
    "ganomaly": GANomaly,
}


def build_model(name: str, **kwargs) -> AnomalyModel:
    """Instantiate a registered model; ``kwargs`` go to its constructor."""
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    return cls(**kwargs)
