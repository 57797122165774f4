"""Image folders as datasets: the official code's layout, MVTec AD, and one sub-folder per class.

Three layouts, detected from the folder names (:func:`detect`):

``official``
    The official GANomaly code's custom-dataset layout: ``train/0.normal/``, ``test/0.normal/``,
    ``test/1.abnormal/``. A fixed split, one "class" named after the folder.
``mvtec``
    MVTec AD: ``train/good/``, ``test/good/``, ``test/<defect>/`` (``ground_truth/`` masks are not
    read). A fixed split, abnormal = every defect type. A folder holding several such categories
    (the dataset's root) is ``mvtec`` too, each category one "class" of a sweep.
``labelled``
    ``<class name>/`` sub-folders of images: a labelled dataset on which both split protocols
    apply. It has no test split of its own, so one is fixed once for all runs: a seeded 20% of each
    class (generator seed 0, the same draw for every run and seed), so ``one-class`` has an
    original test split and ``paper`` pools both parts as it does for MNIST.

Every image is decoded once (Pillow), converted to one channel count (greyscale when all images
are, else RGB), resized to the requested size and cached (:mod:`cache`); a manifest of the files
read is the dataset's identity (:mod:`manifest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import cache, images
from .datasets import Dataset
from .manifest import Manifest, listing_key

LAYOUTS = ("official", "mvtec", "labelled")
#: The share of each class a labelled folder sets aside as its test split, and the generator seed.
LABELLED_TEST_FRACTION, LABELLED_TEST_SEED = 0.2, 0

_OFFICIAL = ("train/0.normal", "test/0.normal", "test/1.abnormal")
_HELP = (
    "expected one of: train/0.normal/ + test/0.normal/ + test/1.abnormal/ (the official code's layout); "
    "train/good/ + test/good/ + test/<defect>/ (MVTec AD, or a folder of such categories); or one sub-folder "
    "of images per class"
)


@dataclass(frozen=True)
class Layout:
    """A detected folder layout: ``kind`` (one of :data:`LAYOUTS`), the class names, and per class
    the image files of each part (``train``; and ``test-normal``/``test-abnormal`` for a fixed split)."""

    kind: str
    root: Path
    class_names: tuple[str, ...]
    parts: tuple[dict[str, list[Path]], ...]

    @property
    def fixed_split(self) -> bool:
        return self.kind != "labelled"

    def describe(self) -> str:
        n = sum(len(files) for part in self.parts for files in part.values())
        n_classes = len(self.class_names)
        what = {
            "official": "the official code's layout (train/0.normal, test/0.normal, test/1.abnormal)",
            "mvtec": f"the MVTec AD layout, {n_classes} categor{'y' if n_classes == 1 else 'ies'}",
            "labelled": f"one sub-folder per class, {n_classes} classes",
        }[self.kind]
        return f"{self.root}: {what}, {n:,} images"

    def paths(self) -> list[Path]:
        return [p for part in self.parts for files in part.values() for p in files]


def _images_in(folder: Path, what: str) -> list[Path]:
    files = images.list_images(folder)
    if not files:
        raise DataError(f"{folder}: {what} folder holds no images ({', '.join(images.IMAGE_SUFFIXES)}); add some")
    return files


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _mvtec_category(folder: Path) -> dict[str, list[Path]]:
    defects = [d for d in _subfolders(folder / "test") if d.name != "good"]
    if not defects:
        raise DataError(f"{folder / 'test'}: no defect folder beside good/; MVTec AD tests need test/<defect>/ images")
    return {
        "train": _images_in(folder / "train" / "good", "a training"),
        "test-normal": _images_in(folder / "test" / "good", "a test"),
        "test-abnormal": [p for d in defects for p in _images_in(d, "a defect")],
    }


def detect(root: str | Path) -> Layout:
    """The layout of an image folder, with its files; a :class:`DataError` saying what was expected."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"folder {root}: no such folder; pass the folder that holds the images")
    if (root / "train" / "0.normal").is_dir():
        missing = [p for p in _OFFICIAL if not (root / p).is_dir()]
        if missing:
            raise DataError(f"{root}: the official layout needs {', '.join(_OFFICIAL)}; missing {', '.join(missing)}")
        if (root / "train" / "1.abnormal").exists():
            raise DataError(
                f"{root / 'train' / '1.abnormal'}: training uses normal images only; move these images to "
                "test/1.abnormal/ (or delete the folder)"
            )
        part = {
            "train": _images_in(root / "train" / "0.normal", "a training"),
            "test-normal": _images_in(root / "test" / "0.normal", "a test"),
            "test-abnormal": _images_in(root / "test" / "1.abnormal", "a test"),
        }
        return Layout("official", root, (root.name,), (part,))
    if (root / "train" / "good").is_dir():
        return Layout("mvtec", root, (root.name,), (_mvtec_category(root),))
    subs = _subfolders(root)
    categories = [d for d in subs if (d / "train" / "good").is_dir()]
    if categories:
        return Layout("mvtec", root, tuple(d.name for d in categories), tuple(_mvtec_category(d) for d in categories))
    if {d.name for d in subs} & {"train", "test"}:
        raise DataError(f"{root}: has train/ or test/ but not a known layout; {_HELP}")
    if len(subs) < 2:
        raise DataError(
            f"{root}: {len(subs)} sub-folder(s); a labelled dataset needs one sub-folder per class, two or more "
            f"({_HELP})"
        )
    parts = tuple({"train": _images_in(d, f"class {d.name!r}: the")} for d in subs)
    return Layout("labelled", root, tuple(d.name for d in subs), parts)


def set_aside_test(labels: np.ndarray) -> np.ndarray:
    """Which images of a dataset without a test split form one: a bool mask marking a seeded
    :data:`LABELLED_TEST_FRACTION` of each class, the same for every run (seed :data:`LABELLED_TEST_SEED`)."""
    held = np.zeros(len(labels), bool)
    for k in np.unique(labels):
        idx = np.flatnonzero(labels == k)
        order = np.random.default_rng([LABELLED_TEST_SEED, int(k)]).permutation(len(idx))
        held[idx[order[: int(LABELLED_TEST_FRACTION * len(idx))]]] = True
    return held


def _arrays(layout: Layout, decoded: images.Decoded) -> dict[str, np.ndarray]:
    """The decoded images arranged as a :class:`Dataset`'s arrays (see :func:`load_folder`)."""
    index = {p: i for i, p in enumerate(decoded.paths)}
    x_train, y_train, x_test, y_test, abnormal = [], [], [], [], []

    def take(files: list[Path]) -> list[int]:
        return [index[p] for p in files if p in index]

    for k, part in enumerate(layout.parts):
        if layout.fixed_split:
            train, normal, bad = take(part["train"]), take(part["test-normal"]), take(part["test-abnormal"])
            test = normal + bad
            abnormal += [0] * len(normal) + [1] * len(bad)
        else:
            files = take(part["train"])
            held = set_aside_test(np.full(len(files), k))
            train = [f for f, h in zip(files, held) if not h]
            test = [f for f, h in zip(files, held) if h]
        x_train += train
        x_test += test
        y_train += [k] * len(train)
        y_test += [k] * len(test)
    out = {
        "x_train": decoded.images[x_train],
        "y_train": np.asarray(y_train, np.int64),
        "x_test": decoded.images[x_test],
        "y_test": np.asarray(y_test, np.int64),
    }
    if layout.fixed_split:
        out["test_abnormal"] = np.asarray(abnormal, np.int64)
    return out


def load_folder(
    root: str | Path, *, image_size: int | None = None, skip_unreadable: bool = False, name: str | None = None
) -> Dataset:
    """Read an image folder (any of :data:`LAYOUTS`) as a :class:`Dataset`.

    Images are uint8 (n, size, size, channels), ``size`` = ``image_size`` or the images' own (one
    square size for all), ``channels`` 1 when every image is greyscale, else 3. Labels ``y_*`` are
    class indices; a fixed split also has ``test_abnormal`` (0 normal / 1 abnormal per test image).
    Unreadable files are errors unless ``skip_unreadable``; then ``skipped`` lists them.
    """
    layout = detect(root)
    paths = layout.paths()
    key = listing_key(layout.root, paths, layout=layout.kind, size=image_size, skip=skip_unreadable, v=1)

    def build():
        decoded = images.decode(paths, root=layout.root, size=image_size, skip_unreadable=skip_unreadable)
        arrays = _arrays(layout, decoded)
        skipped = [[p.relative_to(layout.root).as_posix(), why] for p, why in decoded.skipped]
        return arrays, {"manifest": decoded.manifest.to_json(), "skipped": skipped}

    arrays, meta, _ = cache.cached(key, build)
    manifest = Manifest.from_json(meta["manifest"])
    for k in range(len(layout.parts)):
        if not np.any(arrays["y_train"] == k):
            raise DataError(f"{layout.root}: class {layout.class_names[k]!r} has no readable training image; add some")
    return Dataset(
        name=name or f"folder:{layout.root}",
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        class_names=layout.class_names,
        source=layout.describe(),
        sha256={"manifest": manifest.digest},
        test_abnormal=arrays.get("test_abnormal"),
        layout=layout.kind,
        manifest=manifest,
        skipped=tuple(tuple(s) for s in meta["skipped"]),
    )
