"""What a dataset read from files was made of: a manifest of (relative path, size, SHA-256).

Datasets other than MNIST and CIFAR-10 have no canonical hashes to check against; their identity
is what was read. The manifest's digest goes into every run record, so a changed, added or
removed file changes it. The cheaper *listing key* (paths, sizes and modification times, no
content read) keys the decoded-array cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the manifest's root, with forward slashes
    size: int  # bytes
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The files of a dataset, relative to ``root``, in the order they were read."""

    root: str
    entries: tuple[Entry, ...]

    @property
    def digest(self) -> str:
        """A short hash of every entry (path, size, content), independent of where ``root`` is."""
        h = hashlib.sha256()
        for e in self.entries:
            h.update(f"{e.path}\0{e.size}\0{e.sha256}\n".encode())
        return h.hexdigest()[:16]

    def to_json(self) -> dict:
        return {"root": self.root, "digest": self.digest, "files": [[e.path, e.size, e.sha256] for e in self.entries]}

    @classmethod
    def from_json(cls, d: dict) -> Manifest:
        return cls(d["root"], tuple(Entry(p, int(s), h) for p, s, h in d["files"]))


def listing_key(root: Path, paths: Iterable[Path], **settings) -> str:
    """A hash of the files' paths, sizes and modification times and of ``settings``: the cache key.

    A file changed in place changes its size or modification time, so the key; reading no
    content keeps a cache hit fast.
    """
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]
