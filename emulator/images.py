"""Synthetic frames and their two encodings: JSON ImageArray and ImageBytes (reference section 8).

The camera model returns an :class:`ImageData`; the app hands it to :func:`respond`, which picks
the encoding from the request's Accept header. Pixels are a numpy array indexed ``[x, y]`` (mono)
or ``[x, y, plane]`` (colour): in C order that is exactly the Alpaca serialisation order (the
rightmost index changes fastest), so ImageBytes is one ``tobytes`` and JSON needs no transpose.

JSON is streamed in chunks of whole image columns, so a large frame never becomes one giant
Python list or string, and the worker yields the GIL between chunks: other devices keep
answering while a big JSON image downloads.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from dataclasses import dataclass
from typing import Iterator

import falcon
import numpy as np

log = logging.getLogger(__name__)

IMAGEBYTES = "application/imagebytes"
JSON = "application/json"

#: ImageBytes metadata version 1: 11 little-endian 32-bit fields (reference section 8.7.1).
_HEADER = struct.Struct("<iiIIiiiiiii")
HEADER_SIZE = _HEADER.size  # 44

#: ImageArrayElementTypes (reference section 8.7.2).
UNKNOWN, INT16, INT32, DOUBLE, SINGLE, UINT64, BYTE, INT64, UINT16, UINT32 = range(10)

#: Transmission types tried in order, smallest first: (element type, numpy dtype, min, max).
_TRANSMISSION = (
    (BYTE, np.dtype("<u1"), 0, 255),
    (UINT16, np.dtype("<u2"), 0, 65535),
    (INT16, np.dtype("<i2"), -32768, 32767),
    (INT32, np.dtype("<i4"), -(2**31), 2**31 - 1),
)

#: Target size of one streamed JSON chunk, in pixels (a few hundred kB of text).
JSON_CHUNK_PIXELS = 65536


@dataclass(frozen=True)
class ImageData:
    """Pixels indexed ``[x, y]`` (mono) or ``[x, y, plane]`` (colour), as Alpaca orders them.

    The array is treated as immutable: the camera may hand the same one to several downloads.
    """

    pixels: np.ndarray

    def __post_init__(self) -> None:
        if self.pixels.ndim not in (2, 3):
            raise ValueError(f"an image has rank 2 or 3, got shape {self.pixels.shape}")
        if not np.issubdtype(self.pixels.dtype, np.integer):
            raise ValueError(f"ImageArray pixels are integers (Int32), got {self.pixels.dtype}")

    @property
    def rank(self) -> int:
        return int(self.pixels.ndim)


# -- synthetic star fields ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StarField:
    """Stars fixed on one sensor: position in unbinned pixels, flux in e-/s, RGB weights.

    The sky does not move between exposures, so the same stars appear in every frame of a
    camera; only the noise changes with the exposure number.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    colour: np.ndarray  # shape (n, 3), mean 1 per star
    sigma: float  # Gaussian sigma in unbinned pixels


def _seed_words(*parts: int) -> list[int]:
    """Non-negative 64-bit words for numpy's SeedSequence (any Python int seed is fine)."""
    return [p & 0xFFFFFFFFFFFFFFFF for p in parts]


def make_star_field(seed: int, device_number: int, width: int, height: int, count: int, fwhm_px: float, flux_max: float) -> StarField:
    """A deterministic star field for ``seed`` and device: same arguments, same stars."""
    rng = np.random.default_rng(_seed_words(seed, device_number, 0x5_7A25))
    x = rng.uniform(0, width, count)
    y = rng.uniform(0, height, count)
    # Many faint stars, few bright ones: a steep power law of the uniform draw.
    flux = flux_max * rng.uniform(0.0, 1.0, count) ** 4 + flux_max * 0.002
    tint = rng.uniform(-0.4, 0.4, count)  # red (+) to blue (-)
    colour = np.stack([1.0 + tint, np.ones(count), 1.0 - tint], axis=1)
    return StarField(x=x, y=y, flux=flux, colour=colour, sigma=fwhm_px / 2.3548)


@dataclass(frozen=True)
class FrameSpec:
    """What one exposure saw: subframe (binned pixels), exposure and sensor response."""

    start_x: int
    start_y: int
    num_x: int
    num_y: int
    bin_x: int
    bin_y: int
    duration: float
    light: bool
    planes: int = 1  # 3 for a colour (Rank 3) sensor
    bayer: tuple[float, float, float, float] | None = None  # RGGB response at (0,0),(1,0),(0,1),(1,1)
    bayer_offset: tuple[int, int] = (0, 0)
    sky_rate: float = 20.0  # e-/s per unbinned pixel
    dark_rate: float = 0.1  # e-/s per unbinned pixel
    bias_adu: float = 1000.0
    read_noise_adu: float = 8.0
    electrons_per_adu: float = 1.0
    max_adu: int = 65535


_PLANE_SKY = np.array([1.0, 0.9, 0.7])  # a slightly red night sky


def _pixel_profile(centre: float, sigma: float, first: int, last: int) -> np.ndarray:
    """A unit Gaussian integrated over pixels ``first..last-1`` (flux is conserved when undersampled)."""
    scale = 1.0 / (math.sqrt(2.0) * sigma)
    edges = [math.erf((edge - centre) * scale) for edge in range(first, last + 1)]
    return 0.5 * np.diff(np.asarray(edges))


def render_frame(stars: StarField, spec: FrameSpec, rng: np.random.Generator) -> np.ndarray:
    """Render one exposure as Int32 ADU, indexed ``[x, y]`` or ``[x, y, plane]``.

    Electrons from sky, stars and dark current, shot and read noise (one Gaussian draw with the
    combined variance, far cheaper than Poisson and indistinguishable at these levels), offset
    by the bias and clipped to ``0..max_adu``.
    """
    nx, ny, planes = spec.num_x, spec.num_y, spec.planes
    shape = (nx, ny) if planes == 1 else (nx, ny, planes)
    binned_area = spec.bin_x * spec.bin_y
    electrons = np.full(shape, spec.dark_rate * spec.duration * binned_area, dtype=np.float64)
    if spec.light and nx > 0 and ny > 0:
        sky = spec.sky_rate * spec.duration * binned_area
        electrons += sky if planes == 1 else sky * _PLANE_SKY[:planes]
        sx, sy = stars.sigma / spec.bin_x, stars.sigma / spec.bin_y
        reach_x, reach_y = 4.0 * sx + 1.0, 4.0 * sy + 1.0
        cx_all = stars.x / spec.bin_x - spec.start_x
        cy_all = stars.y / spec.bin_y - spec.start_y
        visible = (cx_all > -reach_x) & (cx_all < nx + reach_x) & (cy_all > -reach_y) & (cy_all < ny + reach_y)
        for i in np.flatnonzero(visible):
            cx, cy = float(cx_all[i]), float(cy_all[i])
            x0, x1 = max(0, int(cx - reach_x)), min(nx, int(cx + reach_x) + 1)
            y0, y1 = max(0, int(cy - reach_y)), min(ny, int(cy + reach_y) + 1)
            if x0 >= x1 or y0 >= y1:
                continue
            psf = np.outer(_pixel_profile(cx, sx, x0, x1), _pixel_profile(cy, sy, y0, y1))
            total = float(stars.flux[i]) * spec.duration
            if planes == 1:
                electrons[x0:x1, y0:y1] += total * psf
            else:
                electrons[x0:x1, y0:y1, :] += (total * psf)[:, :, None] * stars.colour[i, :planes]
    if spec.bayer is not None and planes == 1 and spec.bin_x == 1 and spec.bin_y == 1:
        px = (np.arange(nx) + spec.start_x + spec.bayer_offset[0]) % 2
        py = (np.arange(ny) + spec.start_y + spec.bayer_offset[1]) % 2
        response = np.asarray(spec.bayer).reshape(2, 2)  # [x % 2, y % 2]
        electrons *= response[px[:, None], py[None, :]]
    gain = spec.electrons_per_adu
    signal_adu = electrons / gain
    noise_sigma = np.sqrt(electrons / (gain * gain) + spec.read_noise_adu**2)
    adu = spec.bias_adu + signal_adu + noise_sigma * rng.standard_normal(shape)
    np.clip(np.rint(adu, out=adu), 0, spec.max_adu, out=adu)
    return adu.astype(np.int32)


def exposure_rng(seed: int, device_number: int, exposure_number: int) -> np.random.Generator:
    """The noise generator of one exposure: same seed, device and exposure number, same noise."""
    return np.random.default_rng(_seed_words(seed, device_number, exposure_number))


def wants_imagebytes(accept: str | None) -> bool:
    """True when the client's Accept header lists application/imagebytes (section 8.5.1)."""
    return bool(accept) and IMAGEBYTES in accept.lower()


def transmission_type(pixels: np.ndarray) -> tuple[int, np.dtype]:
    """The smallest ImageBytes element type that holds every value, as the reference suggests.

    Int32 images of 16-bit sensors then travel as UInt16: half the bytes on the wire.
    """
    if pixels.size == 0:
        return INT32, np.dtype("<i4")
    low, high = int(pixels.min()), int(pixels.max())
    for code, dtype, lo, hi in _TRANSMISSION:
        if lo <= low and high <= hi:
            return code, dtype
    raise ValueError(f"pixel values {low}..{high} do not fit in Int32")


def imagebytes_header(
    error_number: int, client_tx: int, server_tx: int, image_type: int, transmission: int, shape: tuple[int, ...]
) -> bytes:
    """The 44-byte metadata block of section 8.7.1 (version 1, data right after the header)."""
    dims = list(shape) + [0] * (3 - len(shape))
    rank = len(shape) if shape else 0
    return _HEADER.pack(1, error_number, client_tx, server_tx, HEADER_SIZE, image_type, transmission, rank, *dims)


def imagebytes(image: ImageData, client_tx: int, server_tx: int) -> bytes:
    """An ImageBytes body: header, then the pixels little-endian in Alpaca (C) order."""
    code, dtype = transmission_type(image.pixels)
    header = imagebytes_header(0, client_tx, server_tx, INT32, code, image.pixels.shape)
    return header + np.ascontiguousarray(image.pixels, dtype=dtype).tobytes(order="C")


def imagebytes_error(number: int, message: str, client_tx: int, server_tx: int) -> bytes:
    """An ImageBytes error body (section 8.6.2): header with ErrorNumber, then the UTF-8 message."""
    return imagebytes_header(number, client_tx, server_tx, UNKNOWN, UNKNOWN, ()) + message.encode("utf-8")


def json_chunks(image: ImageData, client_tx: int, server_tx: int, chunk_pixels: int = JSON_CHUNK_PIXELS) -> Iterator[bytes]:
    """The JSON ImageArray response, piece by piece.

    Key order puts ``Type`` and ``Rank`` first, as the spec's regular expression for peeking at
    them expects. Each chunk is a run of whole ``[x]`` columns encoded by the C JSON encoder.
    """
    pixels = image.pixels
    yield b'{"Type":2,"Rank":%d,"Value":[' % image.rank
    width = pixels.shape[0]
    per_column = max(1, pixels[0].size if width else 1)
    step = max(1, chunk_pixels // per_column)
    for start in range(0, width, step):
        block = pixels[start : start + step].tolist()
        text = json.dumps(block, separators=(",", ":"))[1:-1]  # drop the block's own brackets
        yield (text if start == 0 else "," + text).encode()
    tail = {"ClientTransactionID": client_tx, "ServerTransactionID": server_tx, "ErrorNumber": 0, "ErrorMessage": ""}
    yield b"]," + json.dumps(tail, separators=(",", ":"))[1:].encode()


def json_body(image: ImageData, client_tx: int, server_tx: int) -> bytes:
    """The whole JSON response at once (for tests and small frames)."""
    return b"".join(json_chunks(image, client_tx, server_tx))


def respond(req: falcon.Request, resp: falcon.Response, image: ImageData, client_tx: int, server_tx: int) -> None:
    """Answer an ImageArray GET: ImageBytes when the client asks for it, else streamed JSON."""
    if wants_imagebytes(req.get_header("Accept")):
        resp.content_type = IMAGEBYTES
        resp.data = imagebytes(image, client_tx, server_tx)
        return
    resp.content_type = JSON
    resp.stream = json_chunks(image, client_tx, server_tx)
