"""Evaluation during training: :class:`EpochEvaluation` scores the test set after each evaluated epoch.

Honest by default (docs/design.md, Evaluation): AUC on the whole test set at once, BatchNorm in
inference mode unless the run names another mode. Each epoch's entry (its losses, seconds, and
where evaluated the AUCs) goes into the callback's ``history``; with a resume folder the history
and the last scores are saved after every epoch, atomically, so an interrupted run resumes them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

from . import atomic, evaluation
from .config import RunConfig


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


class EpochEvaluation(keras.callbacks.Callback):
    """After each epoch, a history entry; after each evaluated one, the test AUCs in it and in the logs.

    Parameters
    ----------
    x_test : float32 (n, s, s, c) preprocessed test images; ``y_test`` (n,) 0 normal / 1 abnormal.
    config : the run's settings (``epochs``, ``eval_every``, ``bn_mode``, batch sizes).
    x_val : held-out training normals, scored for label-free epoch selection; None: none.
    resume_dir : folder of the per-epoch state (``history.json``, ``history.scores.npy``); what is
        there from an interrupted run is loaded now.

    After ``fit``, ``history`` holds one entry per epoch and ``scores`` the last evaluation's
    float32 (n,) test scores (empty if none ran).
    """

    def __init__(self, x_test, y_test, config: RunConfig, *, x_val=None, resume_dir: str | Path | None = None):
        super().__init__()
        self.x_test, self.y_test, self.x_val, self.config = x_test, y_test, x_val, config
        self.history: list[dict] = []
        self.scores = np.array([], np.float32)
        self._history_file = self._scores_file = None
        if resume_dir is not None:
            self._history_file = Path(resume_dir) / "history.json"
            self._scores_file = Path(resume_dir) / "history.scores.npy"
            if self._history_file.exists():
                self.history = json.loads(self._history_file.read_text())["history"]
            if self._scores_file.exists():
                self.scores = np.load(self._scores_file)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        train_s = time.perf_counter() - self._start
        entry = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}, "train_seconds": train_s}
        if epoch + 1 in self.config.evaluated_epochs():
            self._evaluate(epoch + 1, entry)
            if logs is not None:
                logs["auc"], logs["auc_pr"] = entry["auc"], entry["auc_pr"]
        # A resumed run redoes an epoch evaluated but not checkpointed: its entry is replaced.
        self.history = [h for h in self.history if h["epoch"] < entry["epoch"]] + [entry]
        if self._history_file is not None:
            atomic.write_json(self._history_file, {"history": self.history})

    def _evaluate(self, epoch: int, entry: dict) -> None:
        start = time.perf_counter()
        scores = score_test_set(self.model, self.x_test, self.config, epoch)
        entry.update(
            auc=evaluation.auc_roc(self.y_test, scores),
            auc_pr=evaluation.auc_pr(self.y_test, scores),
            score_seconds=time.perf_counter() - start,
        )
        self.scores = scores
        if self.x_val is not None:
            entry.update(validation_entry(self.model, self.x_val, self.config.score_batch_size))
        if self._scores_file is not None:
            with atomic.replacing(self._scores_file) as tmp:
                np.save(tmp, scores)
