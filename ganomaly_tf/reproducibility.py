"""Seeding, determinism, and the environment record of a run."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and the Keras backend; turn on TF op determinism if asked.

    Determinism is process-wide and cannot be switched off again in the same process.
    """
    import keras

    keras.utils.set_random_seed(seed)
    if deterministic and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def set_threads(threads: int | None, *, strict: bool = True) -> None:
    """Give TensorFlow ``threads`` intra-op and inter-op threads (None: its default, every core).

    TensorFlow fixes its thread pools when it first runs an op, so this must come first in a
    process; a different count later is an error (``strict``), or keeps the running pools.
    """
    if threads is None:
        return
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"threads={threads}: a thread count is a TensorFlow setting; leave it unset on JAX")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        if not strict:
            return
        raise ValueError(
            f"threads={threads}: TensorFlow's thread pools already run with "
            f"{tf.config.threading.get_intra_op_parallelism_threads() or 'the default'} threads in this process; "
            "start a new process for another count (benchmarks.run --jobs does)"
        ) from None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, if it is a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(replicas: int = 1, deterministic: bool = True) -> dict:
    """Versions, device and execution mode, for the run record."""
    import keras
    import numpy

    env = {
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "dtype_policy": keras.config.dtype_policy().name,
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "replicas": replicas,
        "deterministic": deterministic,
        "git_commit": git_commit(),
    }
    if env["backend"] == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        env["tensorflow"] = tf.__version__
        env["device"] = gpus[0].name if gpus else "CPU"
        env["intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        env["inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    else:
        import jax

        env["jax"] = jax.__version__
        env["device"] = str(jax.devices()[0])
    return env
