"""ImageArray answers in their two encodings: ImageBytes and streamed JSON (reference section 8).

:func:`respond` picks the encoding from the request's Accept header. ImageBytes is one
``tobytes`` of the C-ordered pixels; JSON is streamed in chunks of whole image columns, so a large
frame never becomes one giant Python list or string, and the worker yields the GIL between
chunks: other devices keep answering while a big JSON image downloads.
"""

from __future__ import annotations

import json
import struct
from typing import Iterator

import falcon
import numpy as np

from emulator.sim.images import ImageData

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
