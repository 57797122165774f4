"""What every anomaly model of the suite shares: scoring, BatchNorm test mode, config."""

from __future__ import annotations

import keras
import numpy as np

BN_MODES = ("inference", "batch")


def images_of(data):
    """The images of a batch that Keras may hand over as ``x`` or ``(x, ...)``."""
    return data[0] if isinstance(data, (tuple, list)) else data


def count_params(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


class AnomalyModel(keras.Model):
    """A Keras model trained on normal images whose ``predict`` returns anomaly scores.

    Subclasses implement ``anomaly_score(x, training)`` (backend-agnostic ``keras.ops``,
    one score per image, higher = more abnormal), ``default_compile`` and a ``train_step``.
    """

    #: keyword arguments of ``__init__`` stored in ``get_config``
    config_keys: tuple[str, ...] = ("image_size", "channels", "latent_dim", "filters", "seed")

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        latent_dim: int = 100,
        filters: int = 64,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.latent_dim = int(latent_dim)
        self.filters = int(filters)
        self.seed = int(seed)
        self._score_in_training_mode = False

    @property
    def input_spec_shape(self) -> tuple[int | None, int, int, int]:
        return (None, self.image_size, self.image_size, self.channels)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({k: getattr(self, k) for k in self.config_keys})
        return config

    def anomaly_score(self, x, training: bool = False):
        raise NotImplementedError

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per network (BatchNorm moving statistics excluded)."""
        return {"total": count_params(self.trainable_variables)}

    def default_compile(self, learning_rate: float = 2e-4, beta_1: float = 0.5, beta_2: float = 0.999, **kwargs):
        """Compile with the paper's optimiser settings."""
        raise NotImplementedError

    @property
    def metrics(self) -> list:
        """The loss trackers, ``self.trackers`` (name -> ``keras.metrics.Mean``)."""
        return list(getattr(self, "trackers", {}).values())

    def update_trackers(self, losses: dict) -> dict:
        """Feed each tracker its loss; return the logs of every metric."""
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return {m.name: m.result() for m in self.metrics}

    def predict_step(self, data):
        x = images_of(data)
        return self.anomaly_score(x, training=self._score_in_training_mode)

    def score(self, images: np.ndarray, *, batch_size: int = 512, bn_mode: str = "inference") -> np.ndarray:
        """Anomaly scores of preprocessed images.

        Parameters
        ----------
        images : float32 (n, image_size, image_size, channels) in [-1, 1].
        batch_size : images per forward pass. With ``bn_mode="batch"`` the scores depend on it.
        bn_mode : ``"inference"`` (BatchNorm uses its moving statistics; the honest default)
            or ``"batch"`` (per-batch statistics, as the official code scored, its BatchNorm
            never switched to eval mode). The moving statistics are restored afterwards.

        Returns float32 (n,) scores, higher = more abnormal.
        """
        if bn_mode not in BN_MODES:
            raise ValueError(f"unknown bn_mode {bn_mode!r}; choose one of {', '.join(BN_MODES)}")
        saved = [v.numpy() for v in self.non_trainable_variables] if bn_mode == "batch" else None
        n = len(images)
        # Under tf.distribute a last batch smaller than the replica count leaves a replica an
        # empty batch, which the conv layers reject: pad it with copies of the last image.
        strategy = getattr(self, "distribute_strategy", None)
        short = n % batch_size
        if strategy is not None and 0 < short < strategy.num_replicas_in_sync:
            images = np.concatenate([images, np.repeat(images[-1:], strategy.num_replicas_in_sync - short, axis=0)])
        training_mode = bn_mode == "batch"
        # predict_step bakes the mode and the model's settings (e.g. AnoGAN's search length) in
        # when traced: rebuild it only when one of them changed.
        key = (training_mode, repr(sorted(self.get_config().items())))
        if getattr(self, "_traced_score_key", None) != key:
            self.predict_function = None
            self._traced_score_key = key
        self._score_in_training_mode = training_mode
        try:
            scores = self.predict(images, batch_size=batch_size, verbose=0)
        finally:
            self._score_in_training_mode = False
            if saved is not None:
                for v, value in zip(self.non_trainable_variables, saved):
                    v.assign(value)
        return np.asarray(scores, dtype=np.float32).reshape(-1)[:n]
