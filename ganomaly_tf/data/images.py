"""Image files to uint8 arrays: listing, decoding (Pillow) and one size and channel count for all.

Every image is decoded from the bytes that were hashed (:mod:`manifest`), so what was read is
what was identified. An unreadable or corrupt file is a :class:`DataError` naming it, unless the
caller asks to skip such files, and then it is returned in the list of what was skipped.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .manifest import Entry, Manifest

#: File name endings read as images (case-insensitive); other files in an image folder are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Pillow modes read as one channel; every other mode is read as RGB.
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: str | Path) -> list[Path]:
    """The image files under ``folder`` (its sub-folders included), sorted by path."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_image(p))


@dataclass(frozen=True)
class Decoded:
    """Images read from files: ``images`` uint8 (n, size, size, channels) in the order of ``paths``
    (skipped files left out); ``skipped`` the files that could not be read, each with the reason;
    ``manifest`` what was read (every file, the skipped ones included)."""

    images: np.ndarray
    paths: tuple[Path, ...]
    manifest: Manifest
    skipped: tuple[tuple[Path, str], ...] = ()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e}); check the path and its permissions") from None


class UnreadableImage(DataError):
    """A file Pillow cannot decode; ``reason`` says why, without the file's name or the fix."""

    def __init__(self, path: Path, why: object):
        self.reason = f"not a readable image ({why})"
        super().__init__(f"{path}: {self.reason}; replace or delete the file, or pass --skip-unreadable")


def _open(path: Path, data: bytes, *, load: bool):
    from PIL import Image, UnidentifiedImageError  # deferred: only image files need Pillow

    try:
        image = Image.open(io.BytesIO(data))
        if load:
            image.load()
        return image
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        # Pillow names the in-memory buffer, not the file: say what it means instead.
        why = "not an image format Pillow reads, or a corrupt file" if isinstance(e, UnidentifiedImageError) else e
        raise UnreadableImage(path, why) from None


def decode(
    paths: Sequence[str | Path],
    *,
    root: str | Path | None = None,
    size: int | None = None,
    channels: int | None = None,
    skip_unreadable: bool = False,
) -> Decoded:
    """Decode image files into one uint8 array, and list what was read.

    Parameters
    ----------
    root : the folder the manifest's paths are relative to; None: paths as given.
    size : resize every image to ``size`` x ``size`` (bilinear, aspect ratio not kept). None keeps
        the images' own size, which must then be one square size for all.
    channels : 1 (greyscale) or 3 (RGB); None: 1 when every image is greyscale, else 3.
    skip_unreadable : leave out files Pillow cannot decode (listed in ``skipped``) instead of
        raising :class:`DataError`.

    Files are read twice, a header pass (sizes, modes, hashes) and a decoding pass, so no more
    than one decoded image at a time is held besides the output array.
    """
    from PIL import Image

    paths = [Path(p) for p in paths]
    root = Path(root) if root is not None else None
    entries, headers, skipped = [], {}, {}
    for p in paths:
        data = _read(p)
        digest = hashlib.sha256(data).hexdigest()
        entries.append(Entry(p.relative_to(root).as_posix() if root else str(p), len(data), digest))
        try:
            im = _open(p, data, load=False)
            headers[p] = (im.size, im.mode, digest)
        except UnreadableImage as e:
            if not skip_unreadable:
                raise
            skipped[p] = e.reason
    if not headers:
        where = paths[0] if paths else root
        raise DataError(f"{where}: no readable image among {len(paths)} file(s); check the folder")
    if channels is None:
        channels = 1 if all(mode in GREY_MODES for _, mode, _ in headers.values()) else 3
    if size is None:
        size = _common_size(headers)
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(headers), size, size, channels), np.uint8)
    kept = []
    for p in headers:
        data = _read(p)
        if hashlib.sha256(data).hexdigest() != headers[p][2]:
            raise DataError(f"{p}: changed while it was being read; run again once the folder is no longer written to")
        try:
            im = _open(p, data, load=True).convert(mode)
        except UnreadableImage as e:
            if not skip_unreadable:
                raise
            skipped[p] = e.reason
            continue
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        out[len(kept)] = np.asarray(im, np.uint8).reshape(size, size, channels)
        kept.append(p)
    manifest = Manifest(str(root) if root else "", tuple(entries))
    return Decoded(out[: len(kept)], tuple(kept), manifest, tuple((p, skipped[p]) for p in paths if p in skipped))


def conform(image: np.ndarray, *, size: int | None, channels: int) -> np.ndarray:
    """One decoded uint8 image, (h, w) or (h, w, c), as (size, size, channels): converted, and resized
    (bilinear) when ``size`` is given and differs; None keeps its size."""
    from PIL import Image

    a = np.asarray(image, np.uint8)
    a = a[..., 0] if a.ndim == 3 and a.shape[-1] == 1 else a
    if a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]  # RGBA: drop alpha, as Pillow's RGB conversion does
    im = Image.fromarray(a).convert("L" if channels == 1 else "RGB")
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, np.uint8).reshape(im.size[1], im.size[0], channels)


def _common_size(headers: dict) -> int:
    """The one square size of all images, or a :class:`DataError` naming two files that differ."""
    paths = list(headers)
    first = headers[paths[0]][0]
    other = next((p for p in paths if headers[p][0] != first), None)
    if other is not None:
        raise DataError(
            f"{other}: {_wh(headers[other][0])}, but {paths[0]} is {_wh(first)}: the images have mixed sizes; "
            "pass --image-size S (e.g. 64) to resize every image to S x S"
        )
    if first[0] != first[1]:
        raise DataError(f"{paths[0]}: {_wh(first)} is not square; pass --image-size S to resize every image to S x S")
    return first[0]


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]} x {size[1]} pixels"


def read_images(paths: Sequence[str | Path], *, size: int | None = None, channels: int | None = None) -> np.ndarray:
    """Read image files into uint8 (n, size, size, channels); see :func:`decode` for the options."""
    return decode(paths, size=size, channels=channels).images
