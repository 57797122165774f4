"""Images to model inputs: 32x32, [-1, 1], float32, NHWC. NumPy only.

Bilinear resizing uses half-pixel centres (as ``tf.image.resize`` and PIL do when
upsampling), applied as two small interpolation matrices, so every backend gets the same
arrays. The official code normalised MNIST with mean 0.1307 / std 0.3081, which does not
match the decoder's tanh range; we scale every dataset to [-1, 1].
"""

from __future__ import annotations

import numpy as np


def _interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of half-pixel-centre linear interpolation."""
    centres = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    centres = np.clip(centres, 0, n_in - 1)
    lo = np.floor(centres).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = centres - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def resize_bilinear(images: np.ndarray, size: int) -> np.ndarray:
    """Resize (n, h, w, c) images to (n, size, size, c), bilinear, float32."""
    n, h, w, c = images.shape
    x = images.astype(np.float32)
    if (h, w) == (size, size):
        return x
    rows = _interpolation_matrix(h, size).astype(np.float32)
    cols = _interpolation_matrix(w, size).astype(np.float32)
    return np.einsum("ih,nhwc,jw->nijc", rows, x, cols, optimize=True).astype(np.float32)


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Make (n, h, w) or (n, h, w, c) images have ``channels`` (1 or 3) channels."""
    if images.ndim == 3:
        images = images[..., None]
    c = images.shape[-1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return np.repeat(images, 3, axis=-1)
    if c == 3 and channels == 1:
        # ITU-R BT.601 luma, the usual RGB-to-grey conversion.
        grey = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return grey[..., None]
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels; use 1 or 3")


def preprocess(images: np.ndarray, *, size: int = 32, channels: int | None = None, chunk: int = 8192) -> np.ndarray:
    """uint8 images -> float32 (n, size, size, channels) in [-1, 1]."""
    if images.ndim == 3:
        images = images[..., None]
    channels = channels or images.shape[-1]
    out = np.empty((len(images), size, size, channels), np.float32)
    for start in range(0, len(images), chunk):
        part = to_channels(images[start : start + chunk], channels)
        out[start : start + chunk] = resize_bilinear(part, size) / 127.5 - 1.0
    np.clip(out, -1.0, 1.0, out=out)
    return out
