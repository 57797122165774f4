"""A run's configuration, :class:`RunConfig`: everything that determines its result.

NumPy only (no Keras import): the runner builds and validates a grid of these before it picks
the Keras backend.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .constants import BN_MODES, DTYPE_POLICIES, MODEL_NAMES, STRATEGIES
from .data import PROTOCOLS, parse_source, resolve_class, train_size
from .data.datasets import Dataset, resolve_in
from .errors import ConfigError


@dataclass
class RunConfig:
    """Everything that determines a run. Defaults are the paper's schedule (docs/design.md, Losses and training).

    ``dataset`` names a source (``mnist``, ``cifar10``, ``folder:PATH``, ``idx:PATH``, ``tfds:NAME``;
    see :mod:`ganomaly_tf.data.sources`). ``image_size`` None means 32 for MNIST and CIFAR-10 (the
    paper's size) and the images' own size for every other source.
    """

    dataset: str = "mnist"
    abnormal_class: int | str = 0
    seed: int = 0
    protocol: str = "paper"
    model: str = "ganomaly"
    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    train_subset: int | None = None
    test_subset: int | None = None
    image_size: int | None = None
    latent_dim: int = 100
    filters: int = 64
    model_options: dict[str, Any] = field(default_factory=dict)
    compile_options: dict[str, Any] = field(default_factory=dict)
    bn_mode: str = "inference"
    score_batch_size: int = 1024
    strategy: str = "default"
    deterministic: bool = True
    steps_per_execution: int = 1
    dtype_policy: str = "float32"
    data_dir: str | None = None
    #: Evaluate after every ``eval_every``-th epoch and always after the last; 0: the last only.
    eval_every: int = 1
    #: Seed of the test subset's draw; None: the run's seed. A fixed value keeps the same
    #: abnormal test images for every seed of a class.
    test_subset_seed: int | None = None
    #: TensorFlow intra- and inter-op threads; None: TensorFlow's default (every core). The
    #: thread count changes float rounding and so the bits of a result: it is part of the identity.
    threads: int | None = None
    #: Hold out this seeded fraction of the training normals for label-free epoch selection (0: none).
    val_fraction: float = 0.0
    #: Image folders: leave out files that cannot be decoded (the record lists them) instead of stopping.
    skip_unreadable: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first setting that is out of range or unknown."""
        canonical = parse_source(self.dataset).kind == "canonical"  # a ConfigError for an unknown name
        if self.image_size is None and canonical:
            self.image_size = 32  # stored, so a canonical run's settings read as they always have
        choices = {
            "protocol": PROTOCOLS,
            "model": MODEL_NAMES,
            "bn_mode": BN_MODES,
            "strategy": STRATEGIES,
            "dtype_policy": DTYPE_POLICIES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} {getattr(self, name)!r}: unknown; choose one of {', '.join(allowed)}")
        minimum = {
            "seed": 0,
            "epochs": 1,
            "batch_size": 1,
            "latent_dim": 1,
            "filters": 1,
            "score_batch_size": 1,
            "steps_per_execution": 1,
            "eval_every": 0,
        }
        optional_minimum = {"train_subset": max(1, _as_int(self.batch_size)), "test_subset": 2, "test_subset_seed": 0}
        optional_minimum.update(threads=1, image_size=16)
        for name, low in [*minimum.items(), *optional_minimum.items()]:
            value = getattr(self, name)
            if value is None and name in optional_minimum:
                continue
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ConfigError(f"{name} {value!r}: not a whole number; give an integer of at least {low}")
            if value < low:
                why = {"train_subset": f"fewer training images than one batch of {self.batch_size}"}.get(
                    name, f"must be at least {low}"
                )
                raise ConfigError(f"{name} {value}: {why}; give {low} or more")
        if self.image_size is not None:
            check_image_size(self.image_size)
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            raise ConfigError(f"val_fraction {self.val_fraction!r}: must be in [0, 1), e.g. 0.1; 0 holds nothing out")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate {self.learning_rate!r}: must be positive; the paper's is 2e-4")
        for name in ("beta_1", "beta_2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} {getattr(self, name)!r}: must be in [0, 1); the paper's are 0.5 and 0.999")
        if canonical:  # other sources' classes are known once their files are read (check_fits)
            try:
                resolve_class(self.dataset, self.abnormal_class)
            except ValueError as e:
                raise ConfigError(f"abnormal_class {self.abnormal_class!r}: {e}") from None

    def check_fits(self, dataset: Dataset) -> None:
        """Raise :class:`ConfigError` if the class, protocol or size does not fit ``dataset``, or the
        split gives fewer training images than one batch."""
        try:
            k = resolve_in(dataset.class_names, self.abnormal_class, dataset.name)
        except ValueError as e:
            raise ConfigError(f"abnormal_class {self.abnormal_class!r}: {e}") from None
        try:
            n = train_size(dataset, k, self.protocol)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        check_image_size(self.image_size or dataset.image_size, own=self.image_size is None)
        if self.train_subset is not None:
            n = min(n, self.train_subset)
        if n < self.batch_size:
            raise ConfigError(
                f"batch_size {self.batch_size}: {self.dataset} class {dataset.class_names[k]!r} under the "
                f"{self.protocol} protocol gives {n} training images, fewer than one batch; use a smaller batch "
                "size, or add images"
            )

    def evaluated_epochs(self) -> list[int]:
        """The 1-based epochs evaluated on the test set: every ``eval_every``-th, and always the last."""
        every = range(self.eval_every, self.epochs + 1, self.eval_every) if self.eval_every > 0 else []
        return sorted({*every, self.epochs})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown run option(s) {sorted(unknown)}; valid: {sorted(names)}")
        return cls(**d)

    def identity(self) -> dict:
        """The fields that change results (not where the data lives).

        Fields added after the first release count only when set away from their defaults,
        so the identities (and folders) of earlier runs stay valid.
        """
        d = self.to_dict()
        d.pop("data_dir")
        source = parse_source(self.dataset)
        if source.kind != "canonical":  # a folder's name, not its location: the same data anywhere
            d["dataset"] = source.label
        for name, default in _LATER_FIELDS.items():
            if d.get(name) == default:
                d.pop(name)
        return d


def check_image_size(size: int, *, own: bool = False) -> None:
    """A :class:`ConfigError` unless ``size`` is a power of two: every network halves the image down
    to 4 x 4, one stride-2 block a halving. ``own``: the size is the images' own (none was asked)."""
    if size & (size - 1) == 0:
        return
    below, above = 1 << (size.bit_length() - 1), 1 << size.bit_length()
    if own:
        raise ConfigError(
            f"image_size: the images are {size} x {size} pixels; the networks need a power of two, so pass "
            f"--image-size {below} or {above} (image_size={below} or {above}) to resize them"
        )
    raise ConfigError(
        f"image_size {size}: the networks need a power of two (16, 32, 64, 128, ...); use {below} or {above}"
    )


def _as_int(value) -> int:
    return value if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else 1


_LATER_FIELDS = {
    "dtype_policy": "float32",
    "eval_every": 1,
    "test_subset_seed": None,
    "threads": None,
    "val_fraction": 0.0,
    "skip_unreadable": False,
}
