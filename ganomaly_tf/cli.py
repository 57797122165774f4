"""What every command-line tool of the suite shares: one error style, and quiet native logs.

Errors: the library raises :class:`~ganomaly_tf.errors.DataError` and
:class:`~ganomaly_tf.errors.ConfigError`; a tool turns them into one line,
``prog: error: <what> <value>: <why>; <how to fix>``, and exit code 2, without a traceback.
``--debug`` (or ``GANOMALY_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import atexit
import glob
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from .config import RunConfig
from .constants import BN_MODES, DTYPE_POLICIES, STRATEGIES
from .errors import ConfigError, DataError

#: The library errors a tool reports as a one-line usage error.
USER_ERRORS = (ConfigError, DataError)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, with its own usage errors in the one-line style too (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def documented_parser(prog: str, doc: str | None, *, epilog: str | None = None) -> ArgumentParser:
    """The parser of a tool described by its module docstring ``doc``: the first paragraph is the
    description; ``epilog`` (default: the rest of ``doc``) follows the options, as written."""
    description, _, rest = (doc or "").strip().partition("\n\n")
    return ArgumentParser(
        prog=prog,
        description=description,
        epilog=(rest or None) if epilog is None else epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer of at least ``low`` (the error names the value and the bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r}: not a whole number; give an integer of at least {low}"
            ) from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: must be at least {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


#: Options that set one :class:`RunConfig` field, shared by every tool that starts runs:
#: flag -> (field, argparse keyword arguments).
RUN_OPTIONS: dict[str, tuple[str, dict]] = {
    "--epochs": ("epochs", {"type": int, "help": "training epochs (paper: 15)"}),
    "--batch-size": ("batch_size", {"type": int, "help": "global batch size (paper: 64)"}),
    "--train-subset": ("train_subset", {"type": int, "help": "train on a seeded subset of this many normal images"}),
    "--test-subset": ("test_subset", {"type": int, "help": "score a seeded, stratified subset of the test set"}),
    "--image-size": (
        "image_size",
        {
            "type": int,
            "metavar": "S",
            "help": "resize every image to S x S, a power of two (default 32, the paper's; 64, 128, ... "
            "add a stride-2 block to each network per doubling)",
        },
    ),
    "--steps-per-execution": (
        "steps_per_execution",
        {"type": int, "metavar": "K", "help": "batches per dispatch (default 1; e.g. 50 on a GPU)"},
    ),
    "--bn-mode": (
        "bn_mode",
        {
            "choices": BN_MODES,
            "help": "BatchNorm at test time: inference (default), batch (the official code), "
            "per-image (its authors' advice)",
        },
    ),
    "--val-fraction": (
        "val_fraction",
        {
            "type": float,
            "metavar": "F",
            "help": "hold out this fraction of the training normals to select an epoch without test labels (default 0)",
        },
    ),
    "--strategy": (
        "strategy",
        {
            "choices": STRATEGIES,
            "help": "tf.distribute strategy; on jax, default and mirrored both use every local device (DataParallel)",
        },
    ),
    "--dtype-policy": (
        "dtype_policy",
        {
            "choices": DTYPE_POLICIES,
            "help": "float32 (default) or mixed_bfloat16 (bf16 compute: CPUs with AVX-512 BF16/AMX, GPUs)",
        },
    ),
    "--data-dir": (
        "data_dir",
        {"help": "folder of the MNIST/CIFAR-10 files, or the tensorflow-datasets data dir (default: see README, Data)"},
    ),
    "--skip-unreadable": (
        "skip_unreadable",
        {
            "action": "store_true",
            "help": "image folders: leave out files that cannot be decoded (each run's record lists them) "
            "instead of stopping at the first",
        },
    ),
}

#: The ``--dataset`` option's help: every source a run can read.
DATASET_HELP = (
    "mnist, cifar10, folder:PATH (an image folder: the official code's train/0.normal + test/0.normal + "
    "test/1.abnormal layout, MVTec AD, or one sub-folder per class), idx:PATH (four MNIST-format IDX files), "
    "tfds:NAME (a tensorflow-datasets image-classification dataset)"
)


def add_run_options(parser: argparse.ArgumentParser, flags: list[str], *, defaults: RunConfig | None) -> None:
    """Add the :data:`RUN_OPTIONS` ``flags`` and ``--no-determinism``; each defaults to its field's
    value in ``defaults``, or to None (``defaults=None``: a preset decides)."""
    for flag in flags:
        name, kwargs = RUN_OPTIONS[flag]
        parser.add_argument(flag, dest=name, default=getattr(defaults, name) if defaults else None, **kwargs)
    parser.add_argument("--no-determinism", action="store_true", help="allow non-deterministic ops")


def run_settings(args: argparse.Namespace, flags: list[str]) -> dict:
    """The :class:`RunConfig` fields that ``flags`` (of :func:`add_run_options`) set in ``args``."""
    settings = {RUN_OPTIONS[flag][0]: getattr(args, RUN_OPTIONS[flag][0]) for flag in flags}
    return {**settings, "deterministic": not args.no_determinism}


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors (or set GANOMALY_DEBUG=1)")


def debugging(args: argparse.Namespace | None = None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("GANOMALY_DEBUG", "") not in ("", "0")


def fail(parser: argparse.ArgumentParser, message: str) -> None:
    """Print ``prog: error: message`` (one line, no usage) and exit with status 2."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


def check_output(path: str | None, option: str, *, example: str) -> None:
    """:class:`ConfigError` before any work if the file ``option`` names cannot be written there."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{option} {path}: a folder; give a file path, e.g. {target / example}")
    if not target.parent.is_dir():
        raise ConfigError(f"{option} {path}: folder {target.parent} does not exist; create it or choose another path")


def run_cli(parser: argparse.ArgumentParser, args: argparse.Namespace, body: Callable[[], int]) -> int:
    """``body()``'s result; the library's errors (and bad options' ValueErrors) go to :func:`fail`."""
    try:
        return body()
    except (*USER_ERRORS, ValueError) as e:
        if debugging(args):
            raise
        fail(parser, str(e))
    return 2  # not reached: fail exits


#: Lines TensorFlow's C++ side prints on every start or at its first ``tf.data`` map, whatever
#: ``TF_CPP_MIN_LOG_LEVEL`` says; none of them is about this program.
NOISE = (
    b"All log messages before absl::InitializeLog() is called",
    b"oneDNN custom operations are on",
    b"This TensorFlow binary is optimized to use available CPU instructions",
    b"NodeDef mentions attribute use_unbounded_threadpool",
)
#: CUDA probing on a machine without a GPU; kept where a GPU device exists.
CUDA_NOISE = (
    b"Could not find cuda drivers",
    b"failed call to cuInit",
    b"Unable to register cuDNN factory",
    b"Unable to register cuFFT factory",
    b"Unable to register cuBLAS factory",
    b"computation placer already registered",
)
_FILTERED = "GANOMALY_STDERR_FILTERED"


#: TensorFlow's warning when several traced functions of one kind were traced recently. A sweep
#: builds a new model for every run, and each new model's predict function is traced once, so the
#: warning fires every few runs of a sweep although nothing is traced more than it must be.
RETRACING = "triggered tf.function retracing"


def _not_a_retracing_warning(record: logging.LogRecord) -> bool:
    return RETRACING not in record.getMessage()


def quiet_native_logs() -> None:
    """Leave TensorFlow's known start-up lines (:data:`NOISE`, and :data:`CUDA_NOISE` on machines
    without a GPU) and its :data:`RETRACING` warning out of this process's stderr; everything else
    passes through unchanged.

    The start-up lines come from C++ before any Python logging setting applies, so their filter sits
    on file descriptor 2 itself: a pipe read by a thread that forwards every other line. Processes
    started from here (``--jobs N`` workers) write into the same pipe. The warning is Python logging:
    each process filters it on the ``tensorflow`` logger (workers call this too). ``--debug`` or
    ``GANOMALY_DEBUG=1`` turns it off. Called by the command-line tools at start, never by the library.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if debugging():
        return
    logging.getLogger("tensorflow").addFilter(_not_a_retracing_warning)
    if os.environ.get(_FILTERED):
        return
    os.environ[_FILTERED] = "1"
    patterns = NOISE + (() if glob.glob("/dev/nvidia[0-9]*") else CUDA_NOISE)
    sys.stderr.flush()
    read, write = os.pipe()
    forward, restore = os.dup(2), os.dup(2)
    os.dup2(write, 2)
    os.close(write)

    def pump() -> None:
        with os.fdopen(read, "rb") as source, os.fdopen(forward, "wb", buffering=0) as target:
            for line in source:
                if not any(p in line for p in patterns):
                    target.write(line)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()

    def drain() -> None:  # at exit: close this process's end of the pipe, let the thread finish
        sys.stderr.flush()
        os.dup2(restore, 2)
        thread.join(timeout=5)

    atexit.register(drain)
