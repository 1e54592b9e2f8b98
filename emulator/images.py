"""Synthetic frames and their two encodings: JSON ImageArray and ImageBytes (reference section 8).

The camera model returns an :class:`ImageData`; the app hands it to :func:`respond`, which picks
the encoding from the request's Accept header.
"""

from __future__ import annotations

from dataclasses import dataclass

import falcon
import numpy as np

IMAGEBYTES = "application/imagebytes"


@dataclass(frozen=True)
class ImageData:
    """Pixels indexed ``[x, y]`` (mono) or ``[x, y, plane]`` (colour), as Alpaca orders them."""

    pixels: np.ndarray


def wants_imagebytes(accept: str | None) -> bool:
    return bool(accept) and IMAGEBYTES in accept.lower()


def imagebytes_error(number: int, message: str, client_tx: int, server_tx: int) -> bytes:
    raise NotImplementedError  # filled in with the camera


def respond(req: falcon.Request, resp: falcon.Response, image: ImageData, client_tx: int, server_tx: int) -> None:
    raise NotImplementedError  # filled in with the camera
