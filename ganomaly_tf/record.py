"""One run's record, :class:`RunRecord`: what ``experiment.run`` produces and every reader reads.

A finished run's ``result.json`` is ``RunRecord.to_json()``; its per-epoch ``history`` is kept
beside it (``history.csv``) rather than inside. :func:`read_record` reads any ``result.json``
this suite has written, the ones from before the schema had a version included, so the store,
the runner and the report share one reader and one list of summary columns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig
from .data.datasets import SPECS
from .data.sources import parse_source

#: Version of the ``result.json`` layout; records without the key are version 1.
SCHEMA_VERSION = 2

#: The label every record gives its best-on-test AUC.
BEST_IS = "best-on-test (paper-style, optimistic): the epoch is selected on test labels"

#: The columns of a sweep's ``summary.csv``: record fields, then ``config_id`` and ``run_dir``.
SUMMARY_COLUMNS = (
    "dataset",
    "protocol",
    "preset",
    "model",
    "abnormal_class",
    "class_name",
    "seed",
    "status",
    "auc_last",
    "auc_best",
    "best_epoch",
    "auc_pr_last",
    "auc_val",
    "val_epoch",
    "epochs",
    "train_seconds",
    "config_id",
    "run_dir",
)


@dataclass
class RunRecord:
    """A run's identity, results, costs and provenance.

    ``status`` is ``"ok"`` (trained and evaluated: ``auc_last`` is finite) or ``"failed"``
    (``error`` and ``traceback`` say why; the result fields are None). AUCs are on the test set: ``auc_last``
    the result, ``auc_best`` at ``best_epoch`` selected on test labels (:data:`BEST_IS`),
    ``auc_val`` at ``val_epoch`` selected without test labels (``val_rule``), when a validation
    fraction was held out. Seconds are wall-clock; ``*_images_per_s`` are throughputs.
    ``threshold``, kept by runs that keep their model (:func:`ganomaly_tf.experiment.label_free_threshold`),
    is a score above which an image is called abnormal, chosen without test labels: its ``value``,
    ``percentile``, ``n_images`` scored, ``images`` (``"validation"`` or ``"training"``) and ``rule`` in words.
    """

    status: str
    model: str
    dataset: str
    protocol: str
    abnormal_class: int
    class_name: str
    seed: int
    config: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    preset_settings: dict[str, Any] | None = None
    epochs: int | None = None
    auc_last: float | None = None
    auc_best: float | None = None
    best_epoch: int | None = None
    auc_pr_last: float | None = None
    auc_val: float | None = None
    val_epoch: int | None = None
    val_rule: str | None = None
    best_is: str | None = None
    evaluated_epochs: list[int] | None = None
    bn_mode: str | None = None
    threshold: dict[str, Any] | None = None
    params: dict[str, int] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    train_seconds: float | None = None
    total_seconds: float | None = None
    train_images_per_s: float | None = None
    score_images_per_s: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    #: per-epoch entries (losses, seconds, and AUCs where evaluated); written as history.csv
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    #: keys of a record written by other code, kept as they were
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def failure(cls, config: RunConfig, error: BaseException, traceback: str, *, backend: str) -> RunRecord:
        """The record of a run that raised ``error``."""
        return cls(
            status="failed",
            model=config.model,
            dataset=config.dataset,
            protocol=config.protocol,
            abnormal_class=config.abnormal_class,
            class_name=_class_name(config),
            seed=config.seed,
            config=config.to_dict(),
            error=f"{type(error).__name__}: {error}",
            traceback=traceback,
            environment={"backend": backend},
        )

    @property
    def config_id(self) -> str:
        """:func:`config_id` of this run's settings."""
        return config_id(self.config)

    @property
    def backend(self) -> str:
        """The Keras backend the run trained on (TensorFlow for records that do not say)."""
        return self.environment.get("backend") or self.extra.get("backend") or "tensorflow"

    def to_json(self) -> dict[str, Any]:
        """The ``result.json`` content: every field but ``history``; unset fields (None, ``{}``) left out."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("history", "extra") or value is None or (value == {} and f.name != "config"):
                continue
            out[f.name] = value
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, d: dict[str, Any], history: list[dict[str, Any]] | None = None) -> RunRecord:
        """A record from ``result.json`` content of any schema version."""
        names = {f.name for f in dataclasses.fields(cls)} - {"history", "extra"}
        known = {k: v for k, v in d.items() if k in names}
        known.setdefault("schema_version", 1)
        return cls(**known, history=list(history or []), extra={k: v for k, v in d.items() if k not in names})

    def summary_row(self, run_dir: str | None = None) -> dict[str, Any]:
        """This record's row of ``summary.csv`` (:data:`SUMMARY_COLUMNS`)."""
        row = {k: getattr(self, k, None) for k in SUMMARY_COLUMNS[:-2]}
        row["protocol"] = self.protocol or self.config.get("protocol")
        return {**row, "config_id": self.config_id if self.config else None, "run_dir": run_dir}


def _class_name(config: RunConfig) -> str:
    """The class's name where it is known without reading data (MNIST, CIFAR-10), else as given."""
    if parse_source(config.dataset).kind == "canonical" and isinstance(config.abnormal_class, int):
        return SPECS[parse_source(config.dataset).where].classes[config.abnormal_class]
    return str(config.abnormal_class)


def config_id(config: dict[str, Any]) -> str:
    """A short hash of a run's settings other than its class and seed: runs of one configuration share it.

    A table averages only runs with the same ``config_id`` (and model) as seeds.
    """
    try:
        identity = RunConfig.from_dict({**config, "seed": 0, "abnormal_class": 0}).identity()
    except (ValueError, TypeError):  # settings written by other code: as they are
        identity = {k: v for k, v in config.items() if k not in ("seed", "abnormal_class", "data_dir")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]


def read_record(run_dir: str | Path, *, with_history: bool = False) -> RunRecord | None:
    """The record of a run folder (its ``result.json``); None if it has none or it is unreadable.

    With ``with_history``, the per-epoch history is read from ``history.csv`` too.
    """
    run_dir = Path(run_dir)
    try:
        d = json.loads((run_dir / "result.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    history = None
    if with_history and (run_dir / "history.csv").exists():
        import pandas as pd

        history = pd.read_csv(run_dir / "history.csv").to_dict("records")
    try:
        return RunRecord.from_json(d, history)
    except TypeError:  # not a run record: it lacks the run's identity (model, dataset, class, seed)
        return None
