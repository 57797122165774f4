"""Score new images with a trained model: one anomaly score per image, and a label where a threshold is known.

    python -m ganomaly_tf.score --model RUN_FOLDER_OR_.keras IMAGES_OR_FOLDER... \\
        [--threshold auto|VALUE] [--output scores.csv]

--model is a run folder of a sweep run with --save-models (runs/<model>-c<class>-s<seed>-<hash>/:
its model.keras, and its result.json for the BatchNorm mode, batch size and threshold) or a
.keras file (ganomaly_tf.train --save-model). The image size and channels are the model's.
Folders are searched recursively for image files (.png, .jpg, .bmp, .tif, ...).

Each image is prepared as the run's training images were, then scaled to [-1, 1]: for a run on
MNIST, CIFAR-10 or IDX files, decoded at its own size and resized (bilinear) with the same NumPy
resize as the training images, so a PNG of a test image scores what the run scored it; for a run
on an image folder or a tensorflow-datasets name, and for a bare .keras file, decoded at the
model's size by Pillow, as image folders are read. Under a run's bn_mode "batch" an image's score
depends on the images scored in its batch, in the order given.

Output: one line per image, "path,score" or, when a threshold is known, "path,score,label", the
label "abnormal" when the score is above the threshold and "normal" otherwise; to stdout, or with
--output to a CSV file (with a header line, written atomically). A summary line goes to stderr.
Without --threshold a run folder's recorded threshold labels the images (a label-free one: see
docs/scoring.md); --threshold auto insists on it, --threshold VALUE gives one.

examples:
  # every image under my_digits/, labelled with the run's recorded threshold
  python -m ganomaly_tf.score --model results/mnist/paper/smoke/runs/ganomaly-c0-s0-1a2b3c4d5e my_digits/
  # a bare model file: labels need a threshold
  python -m ganomaly_tf.score --model model.keras --threshold 0.0123 a.png b.png --output scores.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import atomic
from .cli import add_debug_flag, at_least, check_output, documented_parser, fail, run_cli
from .errors import ConfigError, DataError

#: The model file of a run folder (``benchmarks.store.MODEL_FILE``; the library never imports the suite).
MODEL_FILE = "model.keras"
#: Images read, preprocessed and scored at a time, at most (rounded to whole batches).
CHUNK = 4096


def threshold_option(text: str) -> str | float:
    """An argparse ``type``: ``auto`` or a finite number."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: not a number; give auto or a score, e.g. 0.05") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r}: not a finite number; give auto or a score, e.g. 0.05")
    return value


def parser() -> argparse.ArgumentParser:
    p = documented_parser("python -m ganomaly_tf.score", __doc__)
    p.add_argument(
        "--model",
        required=True,
        metavar="RUN_FOLDER_OR_.keras",
        help="a run folder kept by benchmarks.run --save-models, or a .keras file",
    )
    p.add_argument("images", nargs="+", metavar="IMAGES_OR_FOLDER", help="image files and/or folders (recursive)")
    p.add_argument(
        "--threshold",
        type=threshold_option,
        metavar="auto|VALUE",
        help="label images: auto, the run's recorded threshold (the default when it has one), or a score; "
        "a score above it is abnormal",
    )
    p.add_argument("--output", metavar="scores.csv", help="write path,score[,label] rows here instead of stdout")
    p.add_argument(
        "--batch-size",
        type=at_least(1),
        metavar="N",
        help="images per forward pass (default: the run's score batch size, its training batch size under "
        "bn_mode batch, where it changes the scores; 1024 for a .keras file)",
    )
    p.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out files that cannot be decoded (listed on stderr) instead of stopping at the first",
    )
    add_debug_flag(p)
    return p


@dataclass
class Scorer:
    """A loaded model and how to score with it.

    ``image_size``, ``channels``: the model's input; ``bn_mode`` and ``batch_size`` as the run
    scored its test set; ``threshold`` the run's recorded one (see
    :func:`ganomaly_tf.experiment.label_free_threshold`), None if none; ``resize`` ``"array"``
    (each image decoded at its own size, resized by :func:`ganomaly_tf.data.preprocess`, as MNIST,
    CIFAR-10 and IDX runs) or ``"pillow"`` (decoded at the model's size by Pillow, as image folders
    are read); ``name`` what the summary calls the model; ``from_run`` whether it came with a run's record.
    """

    model: object
    image_size: int
    channels: int
    bn_mode: str = "inference"
    batch_size: int = 1024
    threshold: dict | None = None
    resize: str = "pillow"
    name: str = ""
    from_run: bool = False

    def prepare(self, paths: Sequence[Path]) -> np.ndarray:
        """Image files -> float32 (n, image_size, image_size, channels) in [-1, 1], the model's input."""
        return read_inputs(paths, size=self.image_size, channels=self.channels, resize=self.resize)

    def score(self, paths: Sequence[Path], *, batch_size: int | None = None) -> np.ndarray:
        """float32 (n,) anomaly scores of image files, higher = more abnormal, read ``CHUNK`` at a time."""
        batch_size = batch_size or self.batch_size
        chunk = max(1, CHUNK // batch_size) * batch_size  # whole batches: chunking never regroups a batch
        scores = [
            self.model.score(self.prepare(paths[i : i + chunk]), batch_size=batch_size, bn_mode=self.bn_mode)
            for i in range(0, len(paths), chunk)
        ]
        return np.concatenate(scores).astype(np.float32) if scores else np.empty(0, np.float32)


def load_model(path: Path, what: str):
    """The ``ganomaly_tf`` model saved at ``path``; :class:`DataError` naming ``what`` if it is not one."""
    import keras

    from . import models  # registers the model classes with Keras's deserialiser

    try:
        model = keras.saving.load_model(path)
    except Exception as e:  # Keras raises many kinds (ValueError, OSError, zipfile.BadZipFile, ...)
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        raise DataError(
            f"--model {what}: cannot be loaded as a Keras model ({reason}); give a model.keras that "
            "benchmarks.run --save-models or ganomaly_tf.train --save-model wrote"
        ) from None
    if not isinstance(model, models.AnomalyModel):
        raise DataError(
            f"--model {what}: a {type(model).__name__}, not one of this suite's anomaly models; give a model.keras "
            "that benchmarks.run --save-models or ganomaly_tf.train --save-model wrote"
        )
    return model


def load_scorer(path: str | Path) -> Scorer:
    """A :class:`Scorer` for a run folder (its ``model.keras`` and ``result.json``) or a ``.keras`` file."""
    from .data import parse_source
    from .record import read_record

    path = Path(path)
    if path.is_dir():
        record = read_record(path)
        if record is None:
            raise DataError(
                f"--model {path}: no readable result.json, so not a finished run's folder; give a run folder "
                "(<sweep>/runs/<model>-c<class>-s<seed>-<hash>/) or a .keras file"
            )
        if not (path / MODEL_FILE).is_file():
            if record.status != "ok":
                error = " ".join(str(record.error).split())
                raise DataError(f"--model {path}: this run failed ({error}), so it has no model; rerun its sweep")
            raise DataError(
                f"--model {path}: this run folder has no {MODEL_FILE} (its sweep ran without --save-models); "
                "rerun the sweep with --save-models --force to retrain it and keep its model"
            )
        model = load_model(path / MODEL_FILE, str(path))
        recorded = {k: record.model_config.get(k) for k in ("image_size", "channels")}
        if None not in recorded.values() and recorded != {"image_size": model.image_size, "channels": model.channels}:
            raise DataError(
                f"--model {path}: its {MODEL_FILE} takes {model.image_size} x {model.image_size} x {model.channels} "
                f"images but its result.json records {recorded['image_size']} x {recorded['image_size']} x "
                f"{recorded['channels']}: the model is not this run's; rerun the sweep with --save-models --force"
            )
        config = record.config or {}
        bn_mode = record.bn_mode or config.get("bn_mode") or "inference"
        size_key = "batch_size" if bn_mode == "batch" else "score_batch_size"
        try:
            resize = "pillow" if parse_source(record.dataset).kind in ("folder", "tfds") else "array"
        except ConfigError:  # a source this version does not know: read as image folders are
            resize = "pillow"
        return Scorer(
            model,
            model.image_size,
            model.channels,
            bn_mode=bn_mode,
            batch_size=int(config.get(size_key) or 1024),
            threshold=record.threshold,
            resize=resize,
            name=f"{record.model} run {path.name}",
            from_run=True,
        )
    if path.is_file():
        if path.suffix != ".keras":
            raise DataError(f"--model {path}: not a .keras file nor a run folder; give either")
        model = load_model(path, str(path))
        return Scorer(model, model.image_size, model.channels, name=f"{path.name}")
    raise DataError(f"--model {path}: no such run folder or .keras file; check the path")


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """The image files named by ``inputs``: files as given, folders searched recursively (sorted);
    each file once, at its first mention. :class:`DataError` for a missing path or an image-less folder."""
    from .data.images import IMAGE_SUFFIXES, list_images

    found: dict[Path, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            listed = list_images(path)
            if not listed:
                raise DataError(
                    f"{path}: no image files in this folder or below it (looked for {', '.join(IMAGE_SUFFIXES)}); "
                    "give a folder of images, or the image files themselves"
                )
        elif path.is_file():
            listed = [path]
        else:
            raise DataError(f"{path}: no such image file or folder; check the path")
        for p in listed:
            found.setdefault(p.resolve(), p)
    return list(found.values())


def split_readable(paths: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """``paths`` split into the files Pillow decodes and those it cannot, each with the reason."""
    from PIL import Image

    readable, unreadable = [], []
    for path in paths:
        try:
            with Image.open(path) as im:
                im.load()
            readable.append(path)
        except Exception as e:  # Pillow raises many kinds for a bad file (OSError, SyntaxError, ValueError, ...)
            unreadable.append((path, " ".join(f"{type(e).__name__}: {e}".split())))
    return readable, unreadable


def read_inputs(paths: Sequence[Path], *, size: int, channels: int, resize: str = "pillow") -> np.ndarray:
    """Image files -> float32 (n, size, size, channels) in [-1, 1]; ``resize`` as :class:`Scorer` says."""
    from .data import preprocess
    from .data.images import read_images

    if resize == "pillow":
        return preprocess(read_images(paths, size=size, channels=channels), size=size, channels=channels)
    # "array": every image at its own size; a non-square one (no such training image) by Pillow at the model's
    arrays = [read_images([p], size=None if _is_square(p) else size, channels=channels)[0] for p in paths]
    out = np.empty((len(arrays), size, size, channels), np.float32)
    by_shape: dict[tuple, list[int]] = {}
    for i, a in enumerate(arrays):
        by_shape.setdefault(a.shape, []).append(i)
    for rows in by_shape.values():  # one call per size, as the training images were resized in one
        out[rows] = preprocess(np.stack([arrays[i] for i in rows]), size=size, channels=channels)
    return out


def _is_square(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size[0] == im.size[1]
    except Exception:  # unreadable: read_images says so, naming the file
        return True


def labels_for(scores: np.ndarray, threshold: float | None) -> list[str] | None:
    """``"abnormal"`` where a score is above ``threshold``, else ``"normal"``; None without a threshold."""
    if threshold is None:
        return None
    return ["abnormal" if s > threshold else "normal" for s in scores]


def resolve_threshold(option: str | float | None, scorer: Scorer, model_arg: str) -> tuple[float | None, str]:
    """The threshold to label with (None: none) and its description, from ``--threshold`` and the run."""
    if isinstance(option, float):
        return option, f"score > {option:.6g} is abnormal (--threshold)"
    if scorer.threshold is not None:
        return float(scorer.threshold["value"]), scorer.threshold.get("rule", "the run's recorded threshold")
    if option == "auto":
        if scorer.from_run:
            why, fix = "the run recorded none", "rerun its sweep with --save-models --force"
        else:
            why = "a bare .keras file carries none; ganomaly_tf.train --save-model prints it and keeps it in --output"
            fix = "give a run folder kept by benchmarks.run --save-models"
        raise ConfigError(
            f"--threshold auto: {model_arg} has no recorded threshold ({why}); pass --threshold VALUE, or {fix}"
        )
    return None, "no threshold: scores only (pass --threshold VALUE, or a run folder kept with --save-models)"


def write_rows(out, paths: Sequence[Path], scores: np.ndarray, labels: list[str] | None, *, header: bool) -> None:
    """CSV rows ``path,score[,label]``; a score with 9 significant digits reads back as the same float32."""
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(["path", "score", *(["label"] if labels is not None else [])])
    for i, (path, score) in enumerate(zip(paths, scores)):
        writer.writerow([str(path), f"{score:.9g}", *([labels[i]] if labels is not None else [])])


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)

    def body() -> int:
        check_output(args.output, "--output", example="scores.csv")
        paths, skipped = find_images(args.images), []
        if args.skip_unreadable:
            paths, skipped = split_readable(paths)
            if not paths:
                raise DataError(f"{args.images[0]}: none of the {len(skipped)} image file(s) could be decoded")
        scorer = load_scorer(args.model)
        value, rule = resolve_threshold(args.threshold, scorer, args.model)
        scores = scorer.score(paths, batch_size=args.batch_size)
        labels = labels_for(scores, value)
        if args.output:
            buffer = io.StringIO()
            write_rows(buffer, paths, scores, labels, header=True)
            try:
                atomic.write_text(args.output, buffer.getvalue())
            except OSError as e:
                why = e.strerror or e
                raise ConfigError(f"--output {args.output}: cannot be written ({why}); choose another path") from None
        else:
            write_rows(sys.stdout, paths, scores, labels, header=False)
            sys.stdout.flush()
        flagged = f"{labels.count('abnormal')} abnormal; " if labels is not None else ""
        where = f" -> {args.output}" if args.output else ""
        print(f"scored {len(paths)} image(s) with {scorer.name}{where}: {flagged}{rule}", file=sys.stderr)
        for path, why in skipped:
            print(f"skipped {path}: {why}", file=sys.stderr)
        return 0

    try:
        return run_cli(p, args, body)
    except KeyboardInterrupt:
        fail(p, "interrupted; nothing was written")
    return 2  # not reached: fail exits


if __name__ == "__main__":
    from .cli import quiet_native_logs

    quiet_native_logs()
    sys.exit(main())
