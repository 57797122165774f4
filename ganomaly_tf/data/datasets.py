"""Find, read and verify MNIST and CIFAR-10. NumPy only.

Lookup order for the files: ``data_dir`` alone when it is given; otherwise ``$GANOMALY_DATA_DIR``, then the Keras cache
(``~/.keras/datasets``), then the tensorflow-datasets data dir (``$TFDS_DATA_DIR`` or
``~/tensorflow_datasets``). When no local copy exists and offline mode is off, the files are
downloaded through ``keras.datasets``. Whatever was read is verified against the canonical
shapes, per-class counts and SHA-256 hashes of the decoded arrays.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import readers
from .manifest import Manifest

DATASETS = ("mnist", "cifar10")

MNIST_CLASSES = tuple(str(d) for d in range(10))
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The official GANomaly code's names, accepted as aliases (label order 0-9).
CIFAR10_SHORT_CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class _Spec:
    shapes: dict[str, tuple[int, ...]]
    counts_train: tuple[int, ...]
    counts_test: tuple[int, ...]
    sha256: dict[str, str]
    classes: tuple[str, ...]


# Decoded-array hashes (C order) and counts of the canonical files; see ../shared/data/README.md.
SPECS: dict[str, _Spec] = {
    "mnist": _Spec(
        shapes={"x_train": (60000, 28, 28), "y_train": (60000,), "x_test": (10000, 28, 28), "y_test": (10000,)},
        counts_train=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
        counts_test=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
        sha256={
            "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
            "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
            "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
            "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
        },
        classes=MNIST_CLASSES,
    ),
    "cifar10": _Spec(
        shapes={
            "x_train": (50000, 32, 32, 3),
            "y_train": (50000,),
            "x_test": (10000, 32, 32, 3),
            "y_test": (10000,),
        },
        counts_train=(5000,) * 10,
        counts_test=(1000,) * 10,
        sha256={
            "x_train": "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
            "y_train": "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
            "x_test": "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
            "y_test": "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
        },
        classes=CIFAR10_CLASSES,
    ),
}

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class Dataset:
    """A decoded, verified dataset in canonical order.

    ``x_train``/``x_test`` are uint8, (n, 28, 28) for MNIST and (n, 32, 32, 3) HWC RGB for
    CIFAR-10, (n, s, s, c) for other sources; ``y_train``/``y_test`` are integer class labels
    0..K-1. ``source`` says where it was read from; ``sha256`` maps each array name to its content
    hash, or holds the ``manifest`` digest for sources without canonical hashes (the data's identity).

    A *fixed split* (an image folder in the official or MVTec layout) has ``test_abnormal``, 0 normal
    / 1 abnormal per test image: its training images are all normal, and a class (a category) is
    one task rather than one abnormal class among the others. ``manifest`` lists the files read and
    ``skipped`` the unreadable ones left out (path, reason), when asked to skip them.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    sha256: dict[str, str] = field(default_factory=dict)
    test_abnormal: np.ndarray | None = None
    layout: str = "canonical"
    manifest: Manifest | None = None
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def channels(self) -> int:
        return 1 if self.x_train.ndim == 3 else self.x_train.shape[-1]

    @property
    def image_size(self) -> int:
        """The images' height (every source's images are square, or resized to a square)."""
        return int(self.x_train.shape[1])

    @property
    def fixed_split(self) -> bool:
        return self.test_abnormal is not None

    def class_index(self, cls: int | str) -> int:
        """Resolve a class given by index or name (for CIFAR-10 also the official short names)."""
        return resolve_in(self.class_names, cls, self.name)


def resolve_class(dataset: str, cls: int | str) -> int:
    """Map a class index or name of MNIST or CIFAR-10 (e.g. ``3``, ``"3"``, ``"cat"``, ``"plane"``) to its label."""
    name = _check_name(dataset)
    return resolve_in(SPECS[name].classes, cls, name)


def resolve_in(names: tuple[str, ...], cls: int | str, dataset: str, aliases: tuple[str, ...] | None = None) -> int:
    """The index of class ``cls`` (an index, a name, or one of ``aliases``, matched case-insensitively) in
    ``names``. ``aliases`` None: CIFAR-10's official short names for CIFAR-10's classes, else none."""
    if aliases is None:
        aliases = CIFAR10_SHORT_CLASSES if tuple(names) == CIFAR10_CLASSES else ()
    lookup = {n.lower(): i for i, n in enumerate(aliases)} | {n.lower(): i for i, n in enumerate(names)}
    if isinstance(cls, (int, np.integer)) and not isinstance(cls, bool) and 0 <= int(cls) < len(names):
        return int(cls)
    key = str(cls).strip().lower()
    if key in lookup:
        return lookup[key]
    if key.isdigit() and int(key) < len(names):
        return int(key)
    shown = names if len(names) <= 20 else (*names[:20], "...")
    valid = ", ".join(f"{i}={n}" for i, n in enumerate(shown))
    raise ValueError(f"unknown {dataset} class {cls!r}; use an index 0-{len(names) - 1} or a name ({valid})")


def _check_name(name: str) -> str:
    key = name.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def verify(name: str, arrays: dict[str, np.ndarray], source: str) -> dict[str, str]:
    """Check shapes, dtype, per-class counts and content hashes; return the hashes."""
    spec = SPECS[name]
    fix = (
        f"The files under {source} are not the canonical {name} files: fetch them again "
        "(see the README's Data section) or point data_dir at a good copy."
    )
    for key in _ARRAYS:
        a = arrays[key]
        if a.dtype != np.uint8 or a.shape != spec.shapes[key]:
            raise DataError(
                f"{name} {key} from {source}: got {a.dtype} {a.shape}, expected uint8 {spec.shapes[key]}. {fix}"
            )
    for key, counts in (("y_train", spec.counts_train), ("y_test", spec.counts_test)):
        got = tuple(np.bincount(arrays[key], minlength=10)[:10].tolist())
        if got != counts:
            raise DataError(
                f"{name} {key} from {source}: per-class counts {got}, expected {counts}: these are not the canonical "
                f"{name} files but another dataset in the same format (e.g. Fashion-MNIST, 6,000 + 1,000 images a "
                f"class) or a damaged copy; the name {name!r} reads only the canonical {name}, so point data_dir at "
                "those files (or fetch them again if this copy is damaged)"
            )
    hashes = {key: _sha256(arrays[key]) for key in _ARRAYS}
    for key in _ARRAYS:
        if hashes[key] != spec.sha256[key]:
            raise DataError(
                f"{name} {key} from {source}: SHA-256 {hashes[key]} differs from the canonical "
                f"{spec.sha256[key]}. {fix}"
            )
    return hashes


# --- locating files -------------------------------------------------------------------

Reader = Callable[[], dict[str, np.ndarray]]


#: MNIST's IDX file names (each ``.gz`` or raw), by array.
IDX_STEMS = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def idx_paths(folder: Path, what: str = "MNIST") -> dict[str, Path] | None:
    """The four IDX files in ``folder`` by array name; None if it has none; a DataError if only some."""
    paths = {}
    for key, stem in IDX_STEMS.items():
        found = [p for p in (folder / f"{stem}.gz", folder / stem) if p.is_file()]
        if found:
            paths[key] = found[0]
    if not paths:
        return None
    if len(paths) < len(IDX_STEMS):
        missing = [IDX_STEMS[k] for k in IDX_STEMS if k not in paths]
        raise DataError(
            f"{folder}: incomplete {what} folder, missing {', '.join(missing)} (.gz or raw). "
            "Put all four IDX files there, or point data_dir at a complete copy."
        )
    return paths


def _mnist_idx_reader(folder: Path) -> Reader | None:
    paths = idx_paths(folder)
    if paths is None:
        return None
    return lambda: {key: readers.read_idx(p) for key, p in paths.items()}


def _mnist_npz_reader(folder: Path) -> Reader | None:
    path = folder / "mnist.npz"
    if not path.is_file():
        return None
    return lambda: dict(zip(_ARRAYS, readers.read_mnist_npz(path)))


def _cifar_reader(folder: Path) -> Reader | None:
    for sub, read, ext in (
        ("cifar-10-batches-bin", readers.read_cifar_binary, ".bin"),
        ("cifar-10-batches-py", readers.read_cifar_pickle, ""),
    ):
        d = folder / sub
        if not d.is_dir():
            continue
        train = [d / f"data_batch_{i}{ext}" for i in range(1, 6)]
        test = d / f"test_batch{ext}"
        missing = [p for p in [*train, test] if not p.is_file()]
        if missing:
            raise DataError(
                f"{d}: incomplete CIFAR-10 folder, missing {', '.join(p.name for p in missing)}. "
                "Extract the whole official archive there, or point data_dir at a complete copy."
            )

        def load(train=train, test=test, read=read) -> dict[str, np.ndarray]:
            def read_checked(p: Path) -> tuple[np.ndarray, np.ndarray]:
                images, labels = read(p)
                readers.check_cifar_batch(p, images)
                return images, labels

            parts = [read_checked(p) for p in train]
            x_test, y_test = read_checked(test)
            return {
                "x_train": np.concatenate([p[0] for p in parts]),
                "y_train": np.concatenate([p[1] for p in parts]),
                "x_test": x_test,
                "y_test": y_test,
            }

        return load
    return None


def _candidates(name: str, root: Path) -> Iterator[Path]:
    """Folders under a root where the files of ``name`` may sit."""
    yield root
    yield root / name
    if name == "cifar10":
        yield root / "cifar-10"
    # tensorflow-datasets keeps extracted archives under downloads/extracted/<hash>/
    extracted = root / "downloads" / "extracted"
    if extracted.is_dir():
        yield from sorted(p for p in extracted.iterdir() if p.is_dir())


def _find(name: str, root: Path) -> tuple[Reader, Path] | None:
    finders = (_mnist_idx_reader, _mnist_npz_reader) if name == "mnist" else (_cifar_reader,)
    for folder in _candidates(name, root):
        if not folder.is_dir():
            continue
        for finder in finders:
            reader = finder(folder)
            if reader is not None:
                return reader, folder
    return None


def search_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched, in order: an explicit ``data_dir`` alone, else the environment's and caches'."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    roots = []
    if os.environ.get("GANOMALY_DATA_DIR"):
        roots.append(Path(os.environ["GANOMALY_DATA_DIR"]).expanduser())
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser()
    roots.append(keras_home / "datasets")
    roots.append(Path(os.environ.get("TFDS_DATA_DIR", Path.home() / "tensorflow_datasets")).expanduser())
    return roots


def _offline_default() -> bool:
    return os.environ.get("GANOMALY_OFFLINE", "").lower() in ("1", "true", "yes")


def _download(name: str) -> dict[str, np.ndarray]:
    import keras  # deferred: only the download path needs it

    module = keras.datasets.mnist if name == "mnist" else keras.datasets.cifar10
    (x_train, y_train), (x_test, y_test) = module.load_data()
    return {
        "x_train": np.asarray(x_train, np.uint8),
        "y_train": np.asarray(y_train, np.uint8).reshape(-1),
        "x_test": np.asarray(x_test, np.uint8),
        "y_test": np.asarray(y_test, np.uint8).reshape(-1),
    }


def load_canonical(name: str, data_dir: str | os.PathLike | None = None, *, offline: bool | None = None) -> Dataset:
    """Load and verify MNIST (``"mnist"``) or CIFAR-10 (``"cifar10"``).

    Parameters
    ----------
    name : ``"mnist"`` or ``"cifar10"``.
    data_dir : a folder holding the canonical files (directly, or in a ``mnist/`` or
        ``cifar10/`` subfolder). Searched first; see :func:`search_roots` for the rest.
    offline : never download. Defaults to ``$GANOMALY_OFFLINE``; when a ``data_dir`` is
        given and holds nothing, that is an error rather than a download.
    """
    name = _check_name(name)
    roots = search_roots(data_dir)
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise DataError(f"data_dir {data_dir}: no such folder. Pass the folder holding the {name} files.")
    for root in roots:
        found = _find(name, root)
        if found is not None:
            reader, folder = found
            arrays = reader()
            source = str(folder)
            break
    else:
        if offline if offline is not None else (_offline_default() or data_dir is not None):
            searched = ", ".join(str(r) for r in roots)
            if data_dir is not None:
                raise DataError(
                    f"data_dir {data_dir}: no {name} files there (nor in its {name}/ subfolder); "
                    "pass the folder that holds them (see the README's Data section)"
                )
            raise DataError(
                f"{name}: no files found in {searched}; put the canonical files in one of these "
                "(see the README's Data section), set GANOMALY_DATA_DIR, or allow a download (unset GANOMALY_OFFLINE)"
            )
        try:
            arrays = _download(name)
        except Exception as e:  # keras raises a bare Exception on network errors
            searched = ", ".join(str(r) for r in roots)
            raise DataError(
                f"{name}: no local files (searched {searched}) and the download failed ({e}); offline? put the "
                "canonical files in a folder and pass data_dir= / --data-dir or set GANOMALY_DATA_DIR"
            ) from e
        source = f"keras.datasets.{name} download"
    hashes = verify(name, arrays, source)
    return Dataset(name=name, class_names=SPECS[name].classes, source=source, sha256=hashes, **arrays)
