"""One run: train a model on a split, evaluate after every epoch, return the record.

This is the unit that sweeps call. Evaluation is honest by default (docs/design.md, Evaluation): AUC on the
whole test set with BatchNorm in inference mode, and the last epoch is the result; the best
epoch on the test set is recorded too, labelled as the optimistic paper-style number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import evaluation
from .constants import BN_MODES, DTYPE_POLICIES, MODEL_NAMES, STRATEGIES
from .data import DATASETS, PROTOCOLS, load_dataset, make_split, preprocess, resolve_class, subsample, train_size
from .data.datasets import Dataset
from .data.splits import Split, hold_out
from .errors import ConfigError


@dataclass
class RunConfig:
    """Everything that determines a run. Defaults are the paper's schedule (docs/design.md, Losses and training)."""

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
    image_size: int = 32
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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first setting that is out of range or unknown."""
        if str(self.dataset).lower().replace("-", "").replace("_", "") not in DATASETS:
            raise ConfigError(f"dataset {self.dataset!r}: unknown; choose one of {', '.join(DATASETS)}")
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
            "image_size": 16,
            "latent_dim": 1,
            "filters": 1,
            "score_batch_size": 1,
            "steps_per_execution": 1,
            "eval_every": 0,
        }
        optional_minimum = {"train_subset": max(1, _as_int(self.batch_size)), "test_subset": 2, "test_subset_seed": 0}
        optional_minimum["threads"] = 1
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
        if not (isinstance(self.val_fraction, (int, float)) and 0 <= self.val_fraction < 1):
            raise ConfigError(f"val_fraction {self.val_fraction!r}: must be in [0, 1), e.g. 0.1; 0 holds nothing out")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate {self.learning_rate!r}: must be positive; the paper's is 2e-4")
        for name in ("beta_1", "beta_2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} {getattr(self, name)!r}: must be in [0, 1); the paper's are 0.5 and 0.999")
        try:
            resolve_class(self.dataset, self.abnormal_class)
        except ValueError as e:
            raise ConfigError(f"abnormal_class {self.abnormal_class!r}: {e}") from None

    def check_fits(self, dataset: Dataset) -> None:
        """Raise :class:`ConfigError` if the split gives fewer training images than one batch."""
        n = train_size(dataset, self.abnormal_class, self.protocol)
        if self.train_subset is not None:
            n = min(n, self.train_subset)
        if n < self.batch_size:
            raise ConfigError(
                f"batch_size {self.batch_size}: {self.dataset} class {self.abnormal_class} under the {self.protocol} "
                f"protocol gives {n} training images, fewer than one batch; use a smaller batch size"
            )

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
        for name, default in _LATER_FIELDS.items():
            if d.get(name) == default:
                d.pop(name)
        return d


def _as_int(value) -> int:
    return value if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else 1


_LATER_FIELDS = {
    "dtype_policy": "float32",
    "eval_every": 1,
    "test_subset_seed": None,
    "threads": None,
    "val_fraction": 0.0,
}


@dataclass
class RunResult:
    """A finished run: ``record`` (JSON-ready), the last epoch's ``scores`` (n,), ``labels``
    (n,) 0 normal / 1 abnormal, ``origins`` (n,) indices into the original data, and the model."""

    record: dict
    scores: np.ndarray
    labels: np.ndarray
    origins: np.ndarray
    model: Any = None


def prepare_split(config: RunConfig) -> tuple[Split, dict]:
    """Load, verify and split the data of a run; also return the data's identity."""
    dataset = load_dataset(config.dataset, config.data_dir)
    config.check_fits(dataset)
    split = make_split(dataset, config.abnormal_class, config.seed, config.protocol)
    if config.train_subset or config.test_subset:
        split = subsample(
            split,
            train=config.train_subset,
            test=config.test_subset,
            seed=config.seed,
            test_seed=config.test_subset_seed,
        )
    if config.val_fraction:
        split = hold_out(split, config.val_fraction, config.seed)
    digest = hashlib.sha256(json.dumps(dataset.sha256, sort_keys=True).encode()).hexdigest()[:16]
    identity = {
        "dataset_sha256": digest,
        "split_fingerprint": split.fingerprint,
        "n_train": int(len(split.x_train)),
        **({"n_val": int(len(split.x_val))} if split.x_val is not None else {}),
        "n_test_normal": int(np.sum(split.y_test == 0)),
        "n_test_abnormal": int(np.sum(split.y_test == 1)),
    }
    return split, identity


def score_test_set(model, x_test: np.ndarray, config: RunConfig, epoch: int) -> np.ndarray:
    """The test scores of one evaluation, float32 (n,), in the split's order, under ``config.bn_mode``.

    ``batch`` scores as the official code's test loader fed its networks: batches of the training
    batch size (64) in training-mode BatchNorm, the last one smaller; for MNIST in a fresh random
    order at every evaluation (its loader had ``shuffle=True``; ours is seeded by the run's seed
    and the epoch, not torch's generator, so the batches hold other images than the official
    code's), for CIFAR-10 in the split's order (``shuffle=False``: most batches hold one label).
    """
    if config.bn_mode == "inference":
        return model.score(x_test, batch_size=config.score_batch_size)
    if config.bn_mode == "batch" and str(config.dataset).lower() == "mnist":
        order = np.random.default_rng([config.seed, epoch]).permutation(len(x_test))
        scores = np.empty(len(x_test), np.float32)
        scores[order] = model.score(x_test[order], batch_size=config.batch_size, bn_mode="batch")
        return scores
    return model.score(x_test, batch_size=config.batch_size, bn_mode=config.bn_mode)


def is_evaluated(epoch: int, epochs: int, eval_every: int) -> bool:
    """Whether 1-based ``epoch`` of ``epochs`` is evaluated: every ``eval_every``-th and the last."""
    return epoch == epochs or (eval_every > 0 and epoch % eval_every == 0)


def validation_entry(model, x_val: np.ndarray, batch_size: int) -> dict:
    """Losses (inference BatchNorm, the model's ``evaluation_losses``) and score statistics on the
    held-out training normals: ``val_<loss>`` means over the images, ``val_score_mean``/``_std``."""
    totals: dict[str, float] = {}
    for start in range(0, len(x_val), batch_size):
        batch = x_val[start : start + batch_size]
        for name, value in model.evaluation_losses(batch).items():
            if name in model.loss_names:
                totals[name] = totals.get(name, 0.0) + float(value) * len(batch)
    scores = model.score(x_val, batch_size=batch_size)
    entry = {f"val_{name}": total / len(x_val) for name, total in totals.items()}
    return {**entry, "val_score_mean": float(scores.mean()), "val_score_std": float(scores.std())}


def _evaluation_callback(
    x_test, y_test, x_val, config: RunConfig, history: list, store: dict, history_file: Path | None
):
    import keras

    class EpochEvaluation(keras.callbacks.Callback):
        """Scores the whole test set after each evaluated epoch; adds ``auc``/``auc_pr`` to the logs.

        Every epoch gets a history entry (its losses and time); evaluated ones also get the AUCs.
        """

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            train_s = time.perf_counter() - self._start
            entry = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}, "train_seconds": train_s}
            if is_evaluated(epoch + 1, config.epochs, config.eval_every):
                t = time.perf_counter()
                scores = score_test_set(self.model, x_test, config, epoch + 1)
                entry.update(
                    auc=evaluation.auc_roc(y_test, scores),
                    auc_pr=evaluation.auc_pr(y_test, scores),
                    score_seconds=time.perf_counter() - t,
                )
                store["scores"] = scores
                if x_val is not None:
                    entry.update(validation_entry(self.model, x_val, config.score_batch_size))
                if history_file is not None:
                    np.save(history_file.with_suffix(".scores.npy"), scores)
                if logs is not None:
                    logs["auc"], logs["auc_pr"] = entry["auc"], entry["auc_pr"]
            history[:] = [h for h in history if h["epoch"] < entry["epoch"]]
            history.append(entry)
            if history_file is not None:
                write_json(history_file, {"history": history})

    return EpochEvaluation()


def run(
    config: RunConfig,
    *,
    callbacks: list | None = None,
    verbose: int = 0,
    keep_model: bool = True,
    backup_dir: str | Path | None = None,
) -> RunResult:
    """Train ``config.model`` on one split and evaluate it honestly; see :class:`RunConfig`.

    With ``backup_dir``, the model, optimisers and per-epoch evaluations are saved there after
    every epoch, and a run interrupted in an earlier process resumes from its last finished
    epoch (data order after a resume differs from an uninterrupted run's).
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":  # NumPy batches and keras.distribution: no TensorFlow
        from .models.jax_steps import get_strategy, make_dataset
    else:
        from .data.pipeline import make_dataset
        from .distribution import get_strategy
    from .models.registry import build_model
    from .reproducibility import environment, seed_everything, set_threads

    set_threads(config.threads)
    seed_everything(config.seed, config.deterministic)
    # "mixed_bfloat16": bf16 compute, float32 weights; losses and scores are cast to float32.
    keras.config.set_dtype_policy(config.dtype_policy)
    split, data_identity = prepare_split(config)
    channels = 1 if split.x_train.ndim == 3 else split.x_train.shape[-1]
    x_train = preprocess(split.x_train, size=config.image_size, channels=channels)
    x_test = preprocess(split.x_test, size=config.image_size, channels=channels)
    x_val = None if split.x_val is None else preprocess(split.x_val, size=config.image_size, channels=channels)

    strategy = get_strategy(config.strategy)
    options = dict(config.model_options)
    if strategy.num_replicas_in_sync > 1 and backend == "tensorflow":
        # Per-replica BatchNorm statistics would make an image's score depend on the replica
        # that scored it; synchronised BatchNorm keeps one set.
        options.setdefault("sync_bn", True)
    with strategy.scope():
        model = build_model(
            config.model,
            image_size=config.image_size,
            channels=channels,
            latent_dim=config.latent_dim,
            filters=config.filters,
            seed=config.seed,
            **options,
        )
        model.default_compile(
            config.learning_rate,
            config.beta_1,
            config.beta_2,
            steps_per_execution=config.steps_per_execution,
            **config.compile_options,
        )
    train_ds = make_dataset(x_train, config.batch_size, shuffle=True, seed=config.seed, drop_remainder=True)

    history: list[dict] = []
    store: dict = {}
    restore = []
    history_file = None
    if backup_dir is not None:
        import keras

        backup_dir = Path(backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
        history_file = backup_dir / "history.json"
        if history_file.exists():
            history.extend(json.loads(history_file.read_text())["history"])
        if history_file.with_suffix(".scores.npy").exists():
            store["scores"] = np.load(history_file.with_suffix(".scores.npy"))
        restore.append(keras.callbacks.BackupAndRestore(str(backup_dir / "checkpoint"), delete_checkpoint=False))
    evaluator = _evaluation_callback(x_test, split.y_test, x_val, config, history, store, history_file)
    start = time.perf_counter()
    # The evaluator saves an epoch's evaluation before BackupAndRestore saves its weights; an
    # epoch evaluated but not checkpointed is redone, and its entry replaced.
    model.fit(
        train_ds,
        epochs=config.epochs,
        shuffle=False,  # the dataset shuffles itself, seeded
        callbacks=[evaluator, *restore, *(callbacks or [])],
        verbose=verbose,
    )
    total_s = time.perf_counter() - start

    train_s = sum(h["train_seconds"] for h in history)
    evaluated = [h for h in history if "auc" in h]
    score_s = evaluated[-1]["score_seconds"] if evaluated else math.nan
    steps = len(x_train) // config.batch_size
    record = {
        "status": "ok",
        "model": config.model,
        "dataset": config.dataset,
        "protocol": config.protocol,
        "abnormal_class": split.abnormal_class,
        "class_name": split.class_name,
        "seed": config.seed,
        "epochs": len(history),
        **evaluation.summarize(history),
        **(evaluation.select_on_validation(history, f"val_{model.loss_names[0]}") if x_val is not None else {}),
        "best_is": "best-on-test (paper-style, optimistic): the epoch is selected on test labels",
        "evaluated_epochs": [h["epoch"] for h in evaluated],
        "bn_mode": config.bn_mode,
        "history": history,
        "params": model.parameter_counts(),
        "model_config": {k: v for k, v in model.get_config().items() if k not in ("name", "trainable", "dtype")},
        "train_seconds": train_s,
        "total_seconds": total_s,
        "train_images_per_s": steps * config.batch_size * len(history) / train_s if train_s else math.nan,
        "score_images_per_s": len(x_test) / score_s if score_s else math.nan,
        "data": data_identity,
        "environment": environment(strategy.num_replicas_in_sync, config.deterministic),
        "config": config.to_dict(),
    }
    return RunResult(
        record=record,
        scores=store.get("scores", np.array([], np.float32)),
        labels=split.y_test,
        origins=split.test_origin,
        model=model if keep_model else None,
    )


def write_json(path: str | Path, obj: dict) -> None:
    """Write JSON atomically: a reader sees the old file or the new one, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")
    tmp.replace(path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")
