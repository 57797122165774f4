"""One run, in four steps: prepare the data, build the model, fit it, record the result.

This is the unit that sweeps call. Evaluation is honest by default (docs/design.md, Evaluation):
AUC on the whole test set with BatchNorm in inference mode after every evaluated epoch
(:class:`callbacks.EpochEvaluation`), and the last epoch is the result; the best epoch on the test
set is recorded too, labelled as the optimistic paper-style number.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from . import evaluation
from .callbacks import EpochEvaluation
from .config import RunConfig
from .data import load_dataset, make_split, preprocess, subsample
from .data.splits import Split, hold_out
from .record import BEST_IS, RunRecord


@dataclass
class RunResult:
    """A finished run: its ``record``, the last evaluation's ``scores`` (n,), ``labels`` (n,)
    0 normal / 1 abnormal, ``origins`` (n,) indices into the original data, and the model."""

    record: RunRecord
    scores: np.ndarray
    labels: np.ndarray
    origins: np.ndarray
    model: Any = None


@dataclass
class Prepared:
    """A run's data: the split, its identity, and its images preprocessed for the model
    (float32 (n, image_size, image_size, channels) in [-1, 1]; ``x_val`` None without a hold-out).
    ``image_size`` is the run's, or the images' own where the run leaves it to them."""

    split: Split
    identity: dict
    x_train: np.ndarray
    x_test: np.ndarray
    x_val: np.ndarray | None
    channels: int
    image_size: int


def prepare_split(config: RunConfig) -> tuple[Split, dict]:
    """Load, verify and split the data of a run; also return the data's identity."""
    dataset = load_dataset(
        config.dataset, config.data_dir, image_size=config.image_size, skip_unreadable=config.skip_unreadable
    )
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
        **source_identity(dataset),
    }
    return split, identity


def source_identity(dataset) -> dict:
    """What a record says of a dataset without canonical hashes: where it came from, its layout, the
    digest and size of its manifest, its images' size and channels, and any file skipped."""
    if dataset.manifest is None:
        return {}
    return {
        "source": dataset.source,
        "layout": dataset.layout,
        "manifest_sha256": dataset.manifest.digest,
        "n_files": len(dataset.manifest.entries),
        "image_shape": list(dataset.x_train.shape[1:]),
        **({"skipped": [list(s) for s in dataset.skipped]} if dataset.skipped else {}),
    }


def prepare(config: RunConfig) -> Prepared:
    """Step 1: the split of ``config`` and its images, preprocessed at ``config.image_size``."""
    split, identity = prepare_split(config)
    channels = 1 if split.x_train.ndim == 3 else split.x_train.shape[-1]
    size = config.image_size or int(split.x_train.shape[1])

    def images(x):
        return None if x is None else preprocess(x, size=size, channels=channels)

    x_train, x_test, x_val = images(split.x_train), images(split.x_test), images(split.x_val)
    return Prepared(split, identity, x_train, x_test, x_val, channels, size)


def build(config: RunConfig, channels: int, image_size: int | None = None):
    """Step 2: the compiled model in its strategy's scope; returns ``(model, strategy, make_dataset)``
    with the active backend's input feed ``make_dataset(images, batch_size, shuffle=, seed=, drop_remainder=)``.
    ``image_size`` defaults to the run's (which must then be set)."""
    backend = keras.backend.backend()
    from .backends import active  # JAX: NumPy batches and keras.distribution, no TensorFlow

    backend_module = active()
    get_strategy, make_dataset = backend_module.get_strategy, backend_module.make_dataset
    from .models.registry import build_model

    strategy = get_strategy(config.strategy)
    if config.bn_mode == "per-image" and strategy.num_replicas_in_sync > 1:
        from .errors import ConfigError

        # Caught here, not at the first evaluation an epoch later.
        raise ConfigError(
            f"bn_mode 'per-image' scores batches of one image, which cannot split across the "
            f"{strategy.num_replicas_in_sync} replicas of strategy {config.strategy!r}; use strategy 'default' "
            "(one device) or another bn_mode"
        )
    options = dict(config.model_options)
    if strategy.num_replicas_in_sync > 1 and backend == "tensorflow":
        # Per-replica BatchNorm statistics would make an image's score depend on the replica
        # that scored it; synchronised BatchNorm keeps one set.
        options.setdefault("sync_bn", True)
    with strategy.scope():
        model = build_model(
            config.model,
            image_size=image_size or config.image_size,
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
    return model, strategy, make_dataset


def fit(
    model,
    train_ds,
    evaluator: EpochEvaluation,
    config: RunConfig,
    *,
    callbacks: list | None = None,
    verbose: int = 0,
    backup_dir: Path | None = None,
) -> float:
    """Step 3: train for ``config.epochs``, evaluating as ``evaluator`` says; returns the wall seconds.

    With ``backup_dir`` the model and optimisers are checkpointed after every epoch and a fit
    interrupted in an earlier process resumes from its last finished epoch.
    """
    restore = []
    if backup_dir is not None:
        restore.append(keras.callbacks.BackupAndRestore(str(backup_dir / "checkpoint"), delete_checkpoint=False))
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
    return time.perf_counter() - start


def make_record(
    config: RunConfig,
    model,
    data: Prepared,
    history: list[dict],
    total_s: float,
    replicas: int,
    *,
    threshold: dict | None = None,
) -> RunRecord:
    """Step 4: the run's record from its settings, model, data and per-epoch history (and the
    :func:`label_free_threshold` of a run that keeps its model)."""
    from .reproducibility import environment

    train_s = sum(h["train_seconds"] for h in history)
    evaluated = [h for h in history if "auc" in h]
    score_s = evaluated[-1]["score_seconds"] if evaluated else math.nan
    trained = len(data.x_train) // config.batch_size * config.batch_size * len(history)
    selected = evaluation.select_on_validation(history, model.validation_key) if data.x_val is not None else {}
    return RunRecord(
        status="ok",
        model=config.model,
        dataset=config.dataset,
        protocol=config.protocol,
        abnormal_class=data.split.abnormal_class,
        class_name=data.split.class_name,
        seed=config.seed,
        config=config.to_dict(),
        epochs=len(history),
        **evaluation.summarize(history),
        **selected,
        best_is=BEST_IS,
        evaluated_epochs=[h["epoch"] for h in evaluated],
        bn_mode=config.bn_mode,
        threshold=threshold,
        params=model.parameter_counts(),
        model_config={k: v for k, v in model.get_config().items() if k not in ("name", "trainable", "dtype")},
        train_seconds=train_s,
        total_seconds=total_s,
        train_images_per_s=trained / train_s if train_s else math.nan,
        score_images_per_s=len(data.x_test) / score_s if score_s else math.nan,
        data=data.identity,
        environment=environment(replicas, config.deterministic),
        history=history,
    )


#: The percentile of held-out normal scores that a run keeping its model records as its threshold:
#: about 5 % of new normal images score above it.
THRESHOLD_PERCENTILE = 95.0
#: At most this many images are scored for the threshold (a seeded subset): AnoGAN's score is a
#: per-image latent search (about 12 images/s on 2 cores at 50 iterations, ~1.5 min for 1,000);
#: the other models score 1,000 images in about a second.
THRESHOLD_MAX_IMAGES = 1000


def check_percentile(percentile: float) -> None:
    """A :class:`ConfigError` unless ``percentile`` is strictly between 0 and 100."""
    from .errors import ConfigError

    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 < percentile < 100:
        raise ConfigError(
            f"threshold percentile {percentile!r}: must be between 0 and 100 (exclusive); e.g. {THRESHOLD_PERCENTILE:g}"
        )


def label_free_threshold(
    model,
    data: Prepared,
    config: RunConfig,
    *,
    percentile: float = THRESHOLD_PERCENTILE,
    max_images: int = THRESHOLD_MAX_IMAGES,
    test_scores: np.ndarray | None = None,
) -> dict:
    """A score threshold chosen without test labels: the ``percentile`` of held-out normals' scores.

    The images are the run's held-out validation normals (``data.x_val``, when
    ``config.val_fraction > 0``), else its training images. The model has fit those, so their
    scores run low and a threshold taken from them is biased low: more than ``100 - percentile``
    percent of new normal images will exceed it; the rule says so. At most ``max_images`` are
    scored, a subset seeded by ``config.seed``, under ``config.bn_mode`` and batched as the run
    scores its test set (:func:`callbacks.score_test_set`).

    Parameters
    ----------
    percentile : in (0, 100); 95 flags about 5 % of new normal images.
    max_images : the most images scored (AnoGAN's score is slow).
    test_scores : float32 (n_test,) the run's last test scores, in ``data.split``'s order, or
        None. Given, the fractions of test normals and abnormals above the threshold are added
        (``test_false_alarm_rate``, ``test_detection_rate``): the labels measure the threshold
        after it is fixed; they never choose it.

    Returns a dict: ``value`` (a score above it is abnormal), ``percentile``, ``n_images``
    scored, ``images`` (``"validation"`` or ``"training"``), ``bn_mode`` and ``rule``, all of it
    in words.
    """
    from .callbacks import score_test_set
    from .errors import ConfigError

    check_percentile(percentile)
    if isinstance(max_images, bool) or not isinstance(max_images, (int, np.integer)) or max_images < 1:
        raise ConfigError(
            f"max_images {max_images!r}: must be a whole number of at least 1; e.g. {THRESHOLD_MAX_IMAGES}"
        )
    held_out = data.x_val is not None and len(data.x_val) > 0
    pool = data.x_val if held_out else data.x_train
    total = len(pool)
    n = min(total, int(max_images))
    images = pool
    if n < total:  # a seeded subset, in the images' order; a generator of its own, so no other stream moves
        images = pool[np.sort(np.random.default_rng(config.seed).choice(total, n, replace=False))]
    # epoch 0: a shuffle stream no test evaluation uses (bn_mode "batch" on MNIST shuffles its batches)
    scores = score_test_set(model, images, config, epoch=0)
    value = float(np.percentile(scores.astype(np.float64), percentile))
    p, above = f"{percentile:g}", f"{100 - percentile:g}%"
    which = f"{n:,} of the {total:,} " if n < total else f"the {n:,} "
    if held_out:
        what = (
            f"{which}held-out training normals (val_fraction {config.val_fraction:g}), BatchNorm {config.bn_mode}; "
            f"chosen without test labels, so about {above} of new normal images score above it"
        )
    else:
        what = (
            f"{which}training images, BatchNorm {config.bn_mode}; the model trained on these images (no "
            f"val_fraction was held out), so their scores run low: the threshold is biased low, expect more than "
            f"{above} false alarms on new normal images; rerun with --val-fraction 0.1 for an unbiased one"
        )
    threshold = {
        "value": value,
        "percentile": float(percentile),
        "n_images": n,
        "images": "validation" if held_out else "training",
        "bn_mode": config.bn_mode,
        "rule": f"score > {value:.6g} is abnormal: the {_ordinal(p)} percentile of the scores of {what}",
    }
    labels = data.split.y_test if test_scores is not None and data.split is not None else None
    if labels is not None and len(test_scores) == len(labels):
        for key, label in (("test_false_alarm_rate", 0), ("test_detection_rate", 1)):
            if np.any(labels == label):
                threshold[key] = float(np.mean(test_scores[labels == label] > value))
    return threshold


def _ordinal(number: str) -> str:
    """``"95"`` -> ``"95th"``, ``"91"`` -> ``"91st"``, ``"97.5"`` -> ``"97.5th"``."""
    if not number.isdigit() or number[-2:] in ("11", "12", "13"):
        return f"{number}th"
    return number + {"1": "st", "2": "nd", "3": "rd"}.get(number[-1], "th")


def run(
    config: RunConfig,
    *,
    callbacks: list | None = None,
    verbose: int = 0,
    keep_model: bool = True,
    backup_dir: str | Path | None = None,
    threshold_percentile: float | None = None,
) -> RunResult:
    """Train ``config.model`` on one split and evaluate it honestly; see :class:`RunConfig`.

    With ``backup_dir``, the model, optimisers and per-epoch evaluations are saved there after
    every epoch, and a run interrupted in an earlier process resumes from its last finished
    epoch (data order after a resume differs from an uninterrupted run's).

    With ``threshold_percentile`` (e.g. :data:`THRESHOLD_PERCENTILE`), the record keeps a
    :func:`label_free_threshold` at that percentile, for labelling new images with the saved
    model. It is computed after training and the last evaluation: every result stays as it was.
    """
    from .reproducibility import seed_everything, set_threads

    if threshold_percentile is not None:
        check_percentile(threshold_percentile)  # before training, not after
    set_threads(config.threads)
    seed_everything(config.seed, config.deterministic)
    # "mixed_bfloat16": bf16 compute, float32 weights; losses and scores are cast to float32.
    keras.config.set_dtype_policy(config.dtype_policy)
    data = prepare(config)
    model, strategy, make_dataset = build(config, data.channels, data.image_size)
    train_ds = make_dataset(data.x_train, config.batch_size, shuffle=True, seed=config.seed, drop_remainder=True)
    if backup_dir is not None:
        backup_dir = Path(backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
    evaluator = EpochEvaluation(data.x_test, data.split.y_test, config, x_val=data.x_val, resume_dir=backup_dir)
    total_s = fit(model, train_ds, evaluator, config, callbacks=callbacks, verbose=verbose, backup_dir=backup_dir)
    threshold = None
    if threshold_percentile is not None:
        threshold = label_free_threshold(
            model, data, config, percentile=threshold_percentile, test_scores=evaluator.scores
        )
    record = make_record(
        config, model, data, evaluator.history, total_s, strategy.num_replicas_in_sync, threshold=threshold
    )
    return RunResult(
        record=record,
        scores=evaluator.scores,
        labels=data.split.y_test,
        origins=data.split.test_origin,
        model=model if keep_model else None,
    )
