"""Shared fixtures: the real MNIST and CIFAR-10 files (see ../shared/data/README.md)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never download: a missing file is an error, not a silent fetch.
os.environ.setdefault("GANOMALY_OFFLINE", "1")

from ganomaly_tf.data import load_dataset  # noqa: E402  (after the environment is set)


@pytest.fixture(scope="session", autouse=True)
def _decoded_data_cache(tmp_path_factory):
    """Image folders and TFDS datasets are cached once decoded: in the test session's own folder."""
    os.environ["GANOMALY_CACHE_DIR"] = str(tmp_path_factory.mktemp("decoded-cache"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The folder with the real datasets: $GANOMALY_DATA_DIR, else ../shared/data from the repository root."""
    env = os.environ.get("GANOMALY_DATA_DIR")
    path = Path(env).expanduser() if env else Path(__file__).parents[2] / "shared" / "data"
    if not path.is_dir():
        pytest.fail(
            f"real data folder {path} not found: the tests need the canonical MNIST and CIFAR-10 files. "
            "Set GANOMALY_DATA_DIR to the folder holding mnist/ and cifar10/ (see ../shared/data/README.md).",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def mnist(data_dir):
    return load_dataset("mnist", data_dir)


@pytest.fixture(scope="session")
def cifar10(data_dir):
    return load_dataset("cifar10", data_dir)
