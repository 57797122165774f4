"""A NumPy cache of decoded datasets, so a second run on the same files starts in seconds.

Entries are keyed by :func:`manifest.listing_key` (the files' paths, sizes and modification times,
and the decoding settings): a changed file misses the cache and is decoded again. The cache
folder is ``$GANOMALY_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganomaly_tf``, else
``~/.cache/ganomaly_tf``; deleting it is always safe. Each entry is written atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import atomic


def cache_dir() -> Path:
    if os.environ.get("GANOMALY_CACHE_DIR"):
        return Path(os.environ["GANOMALY_CACHE_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "ganomaly_tf"


Arrays = dict[str, np.ndarray]


def cached(key: str, build: Callable[[], tuple[Arrays, dict]]) -> tuple[Arrays, dict, bool]:
    """The arrays and JSON metadata stored under ``key``, or ``build()``'s, stored for next time.

    Returns ``(arrays, meta, hit)``. A cache that cannot be written (read-only home) is skipped
    silently: the data is the same either way, only the next start is slower.
    """
    folder = cache_dir()
    arrays_file, meta_file = folder / f"{key}.npz", folder / f"{key}.json"
    if arrays_file.exists() and meta_file.exists():
        try:
            meta = json.loads(meta_file.read_text())
            with np.load(arrays_file, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}, meta, True
        except (OSError, ValueError):  # a damaged entry: rebuild it
            pass
    arrays, meta = build()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(arrays_file) as tmp:
            np.savez(tmp, **arrays)
        atomic.write_json(meta_file, meta)  # written last: an entry without it is incomplete
    except OSError:
        pass
    return arrays, meta, False
