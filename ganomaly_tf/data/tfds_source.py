"""Image-classification datasets of tensorflow-datasets (``tfds:NAME``), read once and cached.

The dataset must be prepared in the tensorflow-datasets data dir (``data_dir``, else
``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``); with a network and offline mode off,
tensorflow-datasets downloads and prepares it first. Its image feature and class-label feature
are found from the dataset's features (its ``supervised_keys`` first); its ``train`` split is the
original train split and its ``test`` split, when it has one, the original test split (without
one, a seeded 20% of each class is set aside once, as for a labelled image folder). The manifest
lists the prepared files, so a re-prepared dataset has another identity.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import cache, images
from .datasets import Dataset
from .folders import set_aside_test
from .manifest import Entry, Manifest, listing_key


def _tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(
            "tfds: tensorflow-datasets is not installed; pip install tensorflow-datasets (or the project's "
            '"tfds" extra: pip install ".[tfds]")'
        ) from None
    return tfds


def _builder(name: str, data_dir: str | None, offline: bool):
    tfds = _tfds()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # tfds raises DatasetNotFoundError and others, all for an unknown or unprepared name
        raise DataError(
            f"tfds:{name}: not a dataset tensorflow-datasets knows or has prepared in "
            f"{data_dir or os.environ.get('TFDS_DATA_DIR') or '~/tensorflow_datasets'} ({type(e).__name__}); "
            "check the name (tfds.list_builders()) and --data-dir"
        ) from None
    if not builder.is_prepared():
        if offline:
            raise DataError(
                f"tfds:{name}: not prepared in {builder.data_dir} and offline; prepare it on a machine with a "
                "network (tfds build or tfds.load) and copy the data dir, or unset GANOMALY_OFFLINE"
            )
        builder.download_and_prepare()
    return builder


def _keys(builder, name: str) -> tuple[str, str]:
    tfds = _tfds()
    features = builder.info.features
    if builder.info.supervised_keys and len(builder.info.supervised_keys) == 2:
        image, label = builder.info.supervised_keys
        if isinstance(features[image], tfds.features.Image) and isinstance(features[label], tfds.features.ClassLabel):
            return image, label
    image = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    label = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
    if len(image) != 1 or len(label) != 1:
        raise DataError(
            f"tfds:{name}: needs one image feature and one class-label feature, has {dict(features.items())}; "
            "only image-classification datasets can be read"
        )
    return image[0], label[0]


def _read_split(builder, split: str, keys: tuple[str, str], size: int | None, channels: int):
    tfds = _tfds()
    xs, ys = [], []
    for example in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)):
        xs.append(images.conform(example[keys[0]], size=size, channels=channels))
        ys.append(int(example[keys[1]]))
    return xs, np.asarray(ys, np.int64)


def load_tfds(
    name: str, data_dir: str | os.PathLike | None = None, *, image_size: int | None = None, offline: bool = False
) -> Dataset:
    """Read the tensorflow-datasets dataset ``name`` as a labelled :class:`Dataset` (uint8 images)."""
    builder = _builder(name, None if data_dir is None else str(data_dir), offline)
    keys = _keys(builder, name)
    root = Path(str(builder.data_path))
    files = sorted(p for p in root.rglob("*") if p.is_file())
    key = listing_key(root, files, tfds=name, version=str(builder.info.version), size=image_size, v=1)
    shape = builder.info.features[keys[0]].shape
    channels = 1 if shape[-1] == 1 else 3
    splits = list(builder.info.splits)
    if "train" not in splits:
        raise DataError(f"tfds:{name}: has no train split (splits: {', '.join(splits)}); cannot split it")

    def build():
        x_train, y_train = _read_split(builder, "train", keys, image_size, channels)
        if "test" in splits:
            x_test, y_test = _read_split(builder, "test", keys, image_size, channels)
        else:
            held = set_aside_test(y_train)
            x_test, y_test = [x for x, h in zip(x_train, held) if h], y_train[held]
            x_train, y_train = [x for x, h in zip(x_train, held) if not h], y_train[~held]
        sizes = {x.shape for x in x_train + x_test}
        if len(sizes) > 1:
            raise DataError(
                f"tfds:{name}: images of {len(sizes)} sizes (e.g. {sorted(sizes)[:2]}); pass --image-size S to "
                "resize every image to S x S"
            )
        entries = []
        for p in files:
            data = p.read_bytes()
            entries.append(Entry(p.relative_to(root).as_posix(), len(data), hashlib.sha256(data).hexdigest()))
        arrays = {"x_train": np.stack(x_train), "y_train": y_train, "x_test": np.stack(x_test), "y_test": y_test}
        return arrays, {"manifest": Manifest(str(root), tuple(entries)).to_json()}

    arrays, meta, _ = cache.cached(key, build)
    manifest = Manifest.from_json(meta["manifest"])
    names = tuple(builder.info.features[keys[1]].names)
    return Dataset(
        name=f"tfds:{name}",
        class_names=names,
        source=f"tensorflow-datasets {name} {builder.info.version} in {root}",
        sha256={"manifest": manifest.digest},
        layout="tfds",
        manifest=manifest,
        **arrays,
    )
