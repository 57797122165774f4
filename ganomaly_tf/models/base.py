"""What every anomaly model of the suite shares: scoring, BatchNorm test mode, config, and the
training step's contract (optimiser groups, losses, the ``after_update`` hook) that the
backends' steps (``ganomaly_tf.backends``) carry out."""

from __future__ import annotations

import keras
import numpy as np

from ..backends import active
from ..constants import BN_MODES


def adam(learning_rate: float = 2e-4, beta_1: float = 0.5, beta_2: float = 0.999) -> keras.optimizers.Adam:
    """The paper's optimiser: Adam(2e-4, beta_1=0.5, beta_2=0.999)."""
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2)


def images_of(data):
    """The images of a batch that Keras may hand over as ``x`` or ``(x, ...)``."""
    return data[0] if isinstance(data, (tuple, list)) else data


def count_params(variables) -> int:
    return int(sum(np.prod(v.shape) for v in variables))


class AnomalyModel(active().TrainerHooks, keras.Model):
    """A Keras model trained on normal images whose ``predict`` returns anomaly scores.

    Subclasses implement ``anomaly_score(x, training)`` (backend-agnostic ``keras.ops``, one
    score per image, higher = more abnormal) and ``compute_losses(x[, noise], training)`` (a
    dict of float32 scalars, exactly the names in ``loss_names``). One training step, on either
    backend (``backends.tensorflow.train_step``, ``backends.jax.train_step``): one forward pass
    of ``compute_losses``, then for each ``(optimizer, variables, losses)`` of
    :meth:`optimizer_groups`, one update of those variables on the sum of those losses, then
    :meth:`after_update`. This base class trains every trainable variable with
    ``self.optimizer`` on the first loss and does nothing after the update;
    :class:`AdversarialModel` has two optimisers of its own.

    ``active().TrainerHooks`` adapts Keras's trainer of the running backend (empty on TensorFlow).

    Parameters
    ----------
    image_size, channels : input shape (image_size, image_size, channels); 32 and 1 or 3.
    latent_dim : size of the latent code (GANomaly's nz; paper: 100).
    filters : base filter count of every network (paper: 64).
    seed : seeds what the model draws itself (training noise, re-initialisation, dropout).
    sync_bn : synchronise BatchNorm statistics across replicas under tf.distribute.
    """

    #: keyword arguments of ``__init__`` stored in ``get_config``
    config_keys: tuple[str, ...] = ("image_size", "channels", "latent_dim", "filters", "seed", "sync_bn")
    #: the attributes holding the model's networks, counted by ``parameter_counts``
    networks: tuple[str, ...] = ()
    #: the losses ``compute_losses`` returns, tracked as the metrics of ``fit``; a single-optimiser
    #: model minimises the first (see ``optimizer_groups``) and only logs the others
    loss_names: tuple[str, ...] = ()
    #: the validation figure label-free epoch selection minimises (``val_<key>`` of
    #: ``callbacks.validation_entry``); None: the first loss, the objective the generator (or the
    #: only network) minimises
    selection_key: str | None = None
    #: whether each training step draws standard normal noise (n, latent_dim) for
    #: ``compute_losses(x, noise)``; stateless, from the seed and the first optimiser's step count
    train_noise: bool = False
    #: how many optimisers ``compile`` takes (``default_compile`` builds that many Adams)
    optimizer_count: int = 1

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        latent_dim: int = 100,
        filters: int = 64,
        seed: int = 0,
        sync_bn: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.loss_names}
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.latent_dim = int(latent_dim)
        self.filters = int(filters)
        self.seed = int(seed)
        self.sync_bn = bool(sync_bn)
        self._score_in_training_mode = False

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({k: getattr(self, k) for k in self.config_keys})
        return config

    def anomaly_score(self, x, training: bool = False):
        raise NotImplementedError

    @property
    def network_options(self) -> dict:
        """The keyword arguments every network of the model is built with (``networks.build_*``)."""
        return {
            "image_size": self.image_size,
            "channels": self.channels,
            "filters": self.filters,
            "sync_bn": self.sync_bn,
        }

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per network of ``networks`` (BatchNorm moving statistics excluded)."""
        if not self.networks:
            return {"total": count_params(self.trainable_variables)}
        return {name: count_params(getattr(self, name).trainable_variables) for name in self.networks}

    def compute_losses(self, x, *noise, training: bool = True) -> dict:
        raise NotImplementedError

    # -- training ----------------------------------------------------------------------

    def compile(self, optimizer: keras.optimizers.Optimizer | None = None, **kwargs):
        """One optimiser for every trainable weight; defaults to Adam(2e-4, beta_1=0.5, beta_2=0.999)."""
        super().compile(optimizer=optimizer or adam(), **kwargs)
        self.optimizer.build(self.trainable_variables)  # now, so that checkpoints restore its state

    def compile_settings(self) -> dict:
        """Keyword arguments of ``compile`` beyond the optimisers that a saved model keeps."""
        return {}

    def get_compile_config(self) -> dict:
        """The optimisers and :meth:`compile_settings`: ``.keras`` files reload compiled, with
        the optimisers' state."""
        if not self.compiled:
            return {}
        optimizers = [keras.optimizers.serialize(o) for o in self.training_optimizers()]
        return {"optimizers": optimizers, **self.compile_settings()}

    def compile_from_config(self, config: dict) -> None:
        config = dict(config)
        optimizers = [keras.optimizers.deserialize(c) for c in config.pop("optimizers", [])]
        self.compile(*optimizers, **config)

    def default_compile(self, learning_rate: float = 2e-4, beta_1: float = 0.5, beta_2: float = 0.999, **kwargs):
        """Compile with the paper's optimiser settings, one Adam per optimiser."""
        self.compile(*(adam(learning_rate, beta_1, beta_2) for _ in range(self.optimizer_count)), **kwargs)

    def optimizer_groups(self) -> list[tuple[keras.optimizers.Optimizer, list, tuple[str, ...]]]:
        """``(optimizer, variables, names of the losses it minimises)`` per update of a step."""
        return [(self.optimizer, self.trainable_variables, self.loss_names[:1])]

    def training_optimizers(self) -> list:
        return [optimizer for optimizer, _, _ in self.optimizer_groups()]

    def after_update(self, losses: dict) -> None:
        """Called by the training step after every optimiser group's update, with the step's
        losses (float32 scalars of the replica's batch). Nothing here; a model overrides it to
        change its state after the update (GANomaly: the discriminator's re-initialisation).

        It may assign the model's and optimisers' variables and update its metrics, in
        ``keras.ops`` and the active backend's ``global_mean``, ``replicas_in_step``,
        ``assign_where`` and ``replicated_normal`` (``ganomaly_tf.backends``): on TensorFlow it
        runs in the step's graph, on JAX in a ``keras.StatelessScope`` over the updated state,
        its assignments returned in the step's new state.
        """

    def train_step(self, *args):
        """TensorFlow: ``train_step(data) -> logs``; JAX: ``train_step(state, data) -> (logs, state)``."""
        *state, data = args
        return active().train_step(self, *state, images_of(data))

    @property
    def validation_key(self) -> str:
        """The history key label-free epoch selection minimises: ``val_`` and :attr:`selection_key`."""
        return f"val_{self.selection_key or self.loss_names[0]}"

    def evaluation_losses(self, x) -> dict:
        """The losses of ``evaluate``: inference BatchNorm, no sampling."""
        return self.compute_losses(x, training=False)

    def test_step(self, *args):
        *state, data = args
        x = images_of(data)

        def logs():
            return self.update_trackers(self.evaluation_losses(x))

        return active().test_step(self, *state, logs)

    @property
    def metrics(self) -> list:
        """The loss trackers, ``self.trackers`` (name -> ``keras.metrics.Mean``)."""
        return list(getattr(self, "trackers", {}).values())

    def update_trackers(self, losses: dict) -> dict:
        """Feed each tracker its loss; return the logs of every metric."""
        for name, tracker in self.trackers.items():
            tracker.update_state(losses[name])
        return {m.name: m.result() for m in self.metrics}

    def predict_step(self, *args):
        """TensorFlow: ``predict_step(data)``; JAX: ``predict_step(state, data)``, stateless."""
        *state, data = args

        def scores():
            return self.anomaly_score(images_of(data), training=self._score_in_training_mode)

        return active().predict_step(self, *state, scores)

    def score(self, images: np.ndarray, *, batch_size: int = 512, bn_mode: str = "inference") -> np.ndarray:
        """Anomaly scores of preprocessed images.

        Parameters
        ----------
        images : float32 (n, image_size, image_size, channels) in [-1, 1].
        batch_size : images per forward pass. With ``bn_mode="batch"`` the scores depend on it
            (and on which images share a batch); ``"per-image"`` ignores it.
        bn_mode : ``"inference"`` (BatchNorm uses its moving statistics; the honest default),
            ``"batch"`` (each batch's own statistics, as the official code scored, its BatchNorm
            never switched to eval mode) or ``"per-image"`` (each image's own statistics: batches
            of one in training mode, as the official code's authors advised; slow). The moving
            statistics are restored afterwards.

        Returns float32 (n,) scores, higher = more abnormal.
        """
        if bn_mode not in BN_MODES:
            raise ValueError(f"unknown bn_mode {bn_mode!r}; choose one of {', '.join(BN_MODES)}")
        training_mode = bn_mode != "inference"
        if bn_mode == "per-image":
            batch_size = 1
        saved = [v.numpy() for v in self.non_trainable_variables] if training_mode else None
        n = len(images)
        extra = active().padding_for_devices(self, n, batch_size)
        if extra:  # copies of the last image, scored and dropped
            images = np.concatenate([images, np.repeat(images[-1:], extra, axis=0)])
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


class AdversarialModel(AnomalyModel):
    """A model trained by two optimisers of its own, ``g_optimizer`` for
    :attr:`generator_variables` and ``d_optimizer`` for ``self.discriminator``'s weights, both
    from one forward pass per batch; a subclass says on which losses in :meth:`optimizer_groups`."""

    optimizer_count = 2

    @property
    def generator_variables(self) -> list:
        raise NotImplementedError

    def compile(
        self,
        g_optimizer: keras.optimizers.Optimizer | None = None,
        d_optimizer: keras.optimizers.Optimizer | None = None,
        **kwargs,
    ):
        """The generator's optimiser and the discriminator's; each defaults to Adam(2e-4, beta_1=0.5, beta_2=0.999)."""
        kwargs.pop("optimizer", None)
        super(AnomalyModel, self).compile(optimizer=None, **kwargs)  # Keras's default RMSprop would sit unused
        self.g_optimizer = g_optimizer or adam()
        self.d_optimizer = d_optimizer or adam()
        # Built now (in the caller's strategy scope), not at the first step: checkpoints restore
        # their state, and a step reads g_optimizer.iterations before its first update.
        self.g_optimizer.build(self.generator_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def optimizer_groups(self) -> list:
        raise NotImplementedError
