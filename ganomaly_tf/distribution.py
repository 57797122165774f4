"""The choice of tf.distribute strategy. TensorFlow backend only.

``default``: one device. ``mirrored``: all local devices (GPUs, or logical CPU devices),
synchronous data parallelism. ``multi-worker``: ``MultiWorkerMirroredStrategy``, configured
by the ``TF_CONFIG`` environment variable of each worker process, e.g. for two workers on
one host::

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]},
                "task": {"type": "worker", "index": 0}}'

Build and compile the model inside ``strategy.scope()``; the batch size given to the input
pipeline is the global batch, split across replicas.
"""

from __future__ import annotations

import json
import os

from .constants import STRATEGIES

_created: dict = {}


def get_strategy(name: str = "default"):
    """The strategy ``name``, one instance per process: a second MirroredStrategy in the same
    process reuses the first one's collective instance keys, and its all-reduces then fail with
    "Shape mismatch in the collective instance" once the model differs."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name in _created:
        return _created[name]
    if name == "mirrored":
        return _created.setdefault(name, tf.distribute.MirroredStrategy())
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "strategy 'multi-worker' needs the TF_CONFIG environment variable; see ganomaly_tf.distribution"
            )
        json.loads(os.environ["TF_CONFIG"])  # fail early on malformed JSON
        return _created.setdefault(name, tf.distribute.MultiWorkerMirroredStrategy())
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def split_logical_cpus(n: int = 2) -> None:
    """Expose the CPU as ``n`` logical devices (before TensorFlow initialises), for tests."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
