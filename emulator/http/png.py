"""PNG encoding of an image array, with nothing but zlib and struct (no imaging dependency).

The panel's camera preview and the README's frame picture show a simulated frame to a person, so
by default the pixels are stretched: the 0.5th..99.5th percentile range spans 0..255 with a gentle
asinh curve, which shows faint stars next to bright ones. ``stretch=False`` keeps the values: 8-bit
for uint8 arrays, else 16-bit (clipped to 0..65535).

Arrays are (rows, columns) as a picture is read, grey, or (rows, columns, 3) colour; an Alpaca
ImageArray is (x, y[, plane]) and must be transposed first (:func:`from_imagearray`).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_GREY, _RGB = 0, 2


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def stretch_to_8bit(pixels: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Percentile range to 0..255 with an asinh curve; a flat image becomes mid grey."""
    values = np.asarray(pixels, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, [low, high])
    if not hi > lo:
        return np.full(values.shape, 128, dtype=np.uint8)
    scaled = np.clip((np.nan_to_num(values, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    softness = 10.0
    curved = np.arcsinh(scaled * softness) / np.arcsinh(softness)
    return np.round(curved * 255.0).astype(np.uint8)


def encode_png(array2d: np.ndarray, stretch: bool = True) -> bytes:
    """The PNG file of ``array2d``: (rows, columns) grey or (rows, columns, 3) colour."""
    pixels = np.asarray(array2d)
    if pixels.ndim == 2:
        colour = _GREY
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        colour = _RGB
    else:
        raise ValueError(f"encode_png takes a (rows, columns) or (rows, columns, 3) array, got shape {pixels.shape}")
    rows, cols = pixels.shape[:2]
    if rows == 0 or cols == 0:
        raise ValueError(f"encode_png needs at least one pixel, got shape {pixels.shape}")
    if stretch:
        samples = stretch_to_8bit(pixels)
    elif pixels.dtype == np.uint8:
        samples = pixels
    else:
        samples = np.clip(np.nan_to_num(pixels.astype(np.float64)), 0, 65535).round().astype(">u2")
    depth = 8 if samples.dtype == np.uint8 else 16
    scanlines = np.ascontiguousarray(samples).reshape(rows, -1).view(np.uint8).reshape(rows, -1)
    raw = np.hstack([np.zeros((rows, 1), dtype=np.uint8), scanlines]).tobytes()  # filter type 0 per row
    header = struct.pack(">IIBBBBB", cols, rows, depth, colour, 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def from_imagearray(pixels: np.ndarray) -> np.ndarray:
    """An Alpaca ImageArray, (x, y) or (x, y, planes), as a picture's (rows, columns[, planes])."""
    pixels = np.asarray(pixels)
    return pixels.T if pixels.ndim == 2 else pixels.transpose(1, 0, *range(2, pixels.ndim))
