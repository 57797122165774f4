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
    (float32 (n, image_size, image_size, channels) in [-1, 1]; ``x_val`` None without a hold-out)."""

    split: Split
    identity: dict
    x_train: np.ndarray
    x_test: np.ndarray
    x_val: np.ndarray | None
    channels: int


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


def prepare(config: RunConfig) -> Prepared:
    """Step 1: the split of ``config`` and its images, preprocessed at ``config.image_size``."""
    split, identity = prepare_split(config)
    channels = 1 if split.x_train.ndim == 3 else split.x_train.shape[-1]

    def images(x):
        return None if x is None else preprocess(x, size=config.image_size, channels=channels)

    return Prepared(split, identity, images(split.x_train), images(split.x_test), images(split.x_val), channels)


def build(config: RunConfig, channels: int):
    """Step 2: the compiled model in its strategy's scope; returns ``(model, strategy, make_dataset)``
    with the active backend's input feed ``make_dataset(images, batch_size, shuffle=, seed=, drop_remainder=)``."""
    backend = keras.backend.backend()
    from .backends import active  # JAX: NumPy batches and keras.distribution, no TensorFlow

    backend_module = active()
    get_strategy, make_dataset = backend_module.get_strategy, backend_module.make_dataset
    from .models.registry import build_model

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
    config: RunConfig, model, data: Prepared, history: list[dict], total_s: float, replicas: int
) -> RunRecord:
    """Step 4: the run's record from its settings, model, data and per-epoch history."""
    from .reproducibility import environment

    train_s = sum(h["train_seconds"] for h in history)
    evaluated = [h for h in history if "auc" in h]
    score_s = evaluated[-1]["score_seconds"] if evaluated else math.nan
    trained = len(data.x_train) // config.batch_size * config.batch_size * len(history)
    selected = evaluation.select_on_validation(history, f"val_{model.loss_names[0]}") if data.x_val is not None else {}
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
    from .reproducibility import seed_everything, set_threads

    set_threads(config.threads)
    seed_everything(config.seed, config.deterministic)
    # "mixed_bfloat16": bf16 compute, float32 weights; losses and scores are cast to float32.
    keras.config.set_dtype_policy(config.dtype_policy)
    data = prepare(config)
    model, strategy, make_dataset = build(config, data.channels)
    train_ds = make_dataset(data.x_train, config.batch_size, shuffle=True, seed=config.seed, drop_remainder=True)
    if backup_dir is not None:
        backup_dir = Path(backup_dir)
        backup_dir.mkdir(parents=True, exist_ok=True)
    evaluator = EpochEvaluation(data.x_test, data.split.y_test, config, x_val=data.x_val, resume_dir=backup_dir)
    total_s = fit(model, train_ds, evaluator, config, callbacks=callbacks, verbose=verbose, backup_dir=backup_dir)
    record = make_record(config, model, data, evaluator.history, total_s, strategy.num_replicas_in_sync)
    return RunResult(
        record=record,
        scores=evaluator.scores,
        labels=data.split.y_test,
        origins=data.split.test_origin,
        model=model if keep_model else None,
    )
