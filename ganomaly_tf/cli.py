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
import os
import sys
import threading
from collections.abc import Callable

from .errors import ConfigError, DataError

#: The library errors a tool reports as a one-line usage error.
USER_ERRORS = (ConfigError, DataError)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, with its own usage errors in the one-line style too (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


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


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors (or set GANOMALY_DEBUG=1)")


def debugging(args: argparse.Namespace | None = None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("GANOMALY_DEBUG", "") not in ("", "0")


def fail(parser: argparse.ArgumentParser, message: str) -> None:
    """Print ``prog: error: message`` (one line, no usage) and exit with status 2."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


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


def quiet_native_logs() -> None:
    """Leave TensorFlow's known start-up lines (:data:`NOISE`, and :data:`CUDA_NOISE` on machines
    without a GPU) out of this process's stderr; everything else passes through unchanged.

    Those lines come from C++ before any Python logging setting applies, so the filter sits on
    file descriptor 2 itself: a pipe read by a thread that forwards every other line. Processes
    started from here (``--jobs N`` workers) write into the same filter. ``--debug`` or
    ``GANOMALY_DEBUG=1`` turns it off. Called by the command-line tools at start, never by the library.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get(_FILTERED) or debugging():
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
