"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the suite writes that another process (a resumed run, a report, a second runner)
may read goes through here. The new content is written beside the target under a hidden
temporary name and renamed over it; a rename within one folder is atomic on POSIX.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; renamed over ``path`` when the block succeeds.

    The temporary name is unique to the call, so two processes writing one file (two runners of a
    sweep rebuilding its summary) never rename each other's half-written file; it keeps the
    target's suffix (``.x.tmp-<pid>-<hex>.npy`` for ``x.npy``), so writers that choose a format
    by suffix (pandas, NumPy, matplotlib) write the right one.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj) -> Path:
    """Write ``obj`` as indented JSON atomically (NumPy scalars and arrays allowed); returns ``path``."""
    return write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
