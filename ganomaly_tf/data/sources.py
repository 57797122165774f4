"""Where a dataset comes from: ``--dataset`` / ``RunConfig.dataset`` names one of these.

==================  ===========================================================================
``mnist``           the canonical MNIST files, verified against their known hashes
``cifar10``         the canonical CIFAR-10 files, verified likewise
``folder:PATH``     an image folder: the official code's layout, MVTec AD, or one sub-folder a class
``idx:PATH``        the four MNIST-format IDX files of any other dataset, classes 0..K-1
``tfds:NAME``       an image-classification dataset of tensorflow-datasets
==================  ===========================================================================

Only the first two have canonical hashes; every other source is identified by a manifest of the
files it read (:mod:`manifest`). Parsing a name touches no file (run settings are validated
before any data is read); :func:`load_dataset` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, DataError
from .datasets import DATASETS, SPECS, Dataset, _check_name, _offline_default, load_canonical

KINDS = ("folder", "idx", "tfds")
FORMS = "mnist, cifar10, folder:PATH, idx:PATH or tfds:NAME"


@dataclass(frozen=True)
class Source:
    """A parsed dataset name: ``kind`` is ``canonical`` or one of :data:`KINDS`; ``where`` is the
    canonical name, a folder path (as given) or a tensorflow-datasets name."""

    kind: str
    where: str

    @property
    def spec(self) -> str:
        return self.where if self.kind == "canonical" else f"{self.kind}:{self.where}"

    @property
    def label(self) -> str:
        """A short name without the folder's location: its identity across machines and its results folder.

        ``folder:/data/mvtec/bottle`` -> ``folder-bottle``; ``tfds:fashion_mnist`` -> ``tfds-fashion_mnist``.
        """
        if self.kind == "canonical":
            return self.where
        return f"{self.kind}-{Path(self.where).name if self.kind != 'tfds' else self.where}"

    @property
    def title(self) -> str:
        """How tables and plots name it."""
        titles = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
        if self.kind == "canonical":
            return titles[self.where]
        what = {"folder": "image folder", "idx": "IDX files", "tfds": "tensorflow-datasets"}[self.kind]
        return f"{Path(self.where).name if self.kind != 'tfds' else self.where} ({what})"


def parse_source(name: str) -> Source:
    """Parse a dataset name (:data:`FORMS`); :class:`ConfigError` for an unknown one. Reads no file."""
    text = str(name).strip()
    kind, sep, where = text.partition(":")
    if sep and kind.lower() in KINDS:
        if not where:
            what = "name" if kind == "tfds" else "path"
            raise ConfigError(f"dataset {name!r}: {kind}: needs a {what} after the colon, e.g. {kind}:my_data")
        return Source(kind.lower(), where)
    try:
        return Source("canonical", _check_name(text))
    except ValueError:
        raise ConfigError(f"dataset {name!r}: unknown; give one of {FORMS}") from None


def resolve_path(name: str) -> str:
    """``name`` with a folder source's path made absolute (so a run's settings mean one folder)."""
    source = parse_source(name)
    if source.kind in ("folder", "idx"):
        return f"{source.kind}:{Path(source.where).expanduser().resolve()}"
    return source.spec


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    offline: bool | None = None,
    image_size: int | None = None,
    skip_unreadable: bool = False,
) -> Dataset:
    """Load and verify a dataset named as in :data:`FORMS`.

    Parameters
    ----------
    name : ``"mnist"``, ``"cifar10"``, ``"folder:PATH"``, ``"idx:PATH"`` or ``"tfds:NAME"``.
    data_dir : for MNIST and CIFAR-10, the folder holding the canonical files (see
        :func:`~ganomaly_tf.data.datasets.search_roots` for where else they are looked for);
        for ``tfds:``, the tensorflow-datasets data dir; folder sources carry their path.
    offline : never download. Defaults to ``$GANOMALY_OFFLINE``.
    image_size : image folders only: decode every image at this size (bilinear), else at the
        images' own size, which must then be one square size. Other sources are resized later.
    skip_unreadable : image folders only: leave out files Pillow cannot decode, listed in the
        dataset's ``skipped``, instead of stopping with an error naming the first.
    """
    try:
        source = parse_source(name)
    except ConfigError as e:
        raise DataError(str(e)) from None
    offline = _offline_default() if offline is None else offline
    if source.kind == "canonical":
        return load_canonical(source.where, data_dir, offline=offline)
    if source.kind == "folder":
        from .folders import load_folder

        return load_folder(source.where, image_size=image_size, skip_unreadable=skip_unreadable, name=source.spec)
    if source.kind == "idx":
        from .idx_files import load_idx

        return load_idx(source.where, name=source.spec)
    from .tfds_source import load_tfds

    return load_tfds(source.where, data_dir, image_size=image_size, offline=offline)


def fixed_split(name: str) -> bool:
    """Whether the dataset ``name`` comes with its own split (an official-layout or MVTec folder)."""
    source = parse_source(name)
    if source.kind != "folder":
        return False
    from .folders import detect

    return detect(source.where).fixed_split


def class_names(name: str, data_dir: str | os.PathLike | None = None) -> tuple[str, ...]:
    """The classes of dataset ``name``, reading as little as it can (folder names, the labels)."""
    source = parse_source(name)
    if source.kind == "canonical":
        return SPECS[source.where].classes
    if source.kind == "folder":
        from .folders import detect

        return detect(source.where).class_names
    return load_dataset(name, data_dir).class_names


def data_identity(name: str) -> dict | str:
    """What a run's hash takes from its data without reading it all: the canonical hashes, or a
    digest of a folder source's file names and sizes (a tensorflow-datasets name and version)."""
    source = parse_source(name)
    if source.kind == "canonical":
        return SPECS[source.where].sha256
    if source.kind == "tfds":
        return source.spec
    root = Path(source.where).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{source.spec}: no such folder; pass the folder that holds the data")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    listing = [[p.relative_to(root).as_posix(), p.stat().st_size] for p in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


__all__ = ["DATASETS", "FORMS", "KINDS", "Source", "class_names", "data_identity", "fixed_split", "load_dataset"]
