"""The frames on the pipe between an AlpacaDevice (caller) and its DeviceServer (device process).

Every frame travels in multiprocessing's framing (a 4-byte big-endian length, or -1 and an
8-byte length above 2 GiB), so either end may read with ``Connection.recv_bytes``::

    caller -> device   request  pickle((rid, deadline, op, member, args, kwargs))
    device -> caller   reply    b"R" rid:u64 ok:u8  pickle(value, or the AlpacaDeviceError)
                       push     b"P"                pickle((what, value))       poll results
                       image    b"I" rid:u64        pickle(meta); then meta["nbytes"] raw pixel
                                                    bytes, unframed and never pickled

``rid`` matches a reply to its request; ``deadline`` is absolute ``time.monotonic()`` (one clock
for every process on the host), so the device process can skip work whose caller gave up. The
reply header is read before the value is unpickled, so a value that cannot be unpickled fails
its own call and leaves the stream in step.
"""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any, NamedTuple

PROTOCOL = pickle.HIGHEST_PROTOCOL

REPLY = b"R"[0]
PUSH = b"P"[0]
IMAGE = b"I"[0]
REPLY_HEADER = struct.Struct("!cQ?")  # b"R", request id, ok
IMAGE_HEADER = struct.Struct("!cQ")  # b"I", request id
_BIG = 1 << 16  # above this a reply is pickled behind its header in place (no concatenation copy)


class Request(NamedTuple):
    """One call to the device process, as its caller made it (and as errors keep it, like httpx's)."""

    op: str
    member: str | None = None
    args: tuple = ()
    kwargs: dict[str, Any] = {}

    def describe(self) -> str:
        return f"{self.op} {self.member}" if self.member else self.op


class MethodHandle(NamedTuple):
    """The reply to ``get`` of a method named without arguments: the caller hands back a callable
    (astra.methods.DeviceMethod) instead of calling it, as the original controller's callers expect."""

    member: str


def encode_request(rid: int, deadline: float, request: Request) -> bytes:
    """The request frame's body (pickling errors propagate: the arguments cannot be sent)."""
    return pickle.dumps((rid, deadline, *request), PROTOCOL)


def decode_request(data: Any) -> tuple[int, float, Request]:
    rid, deadline, op, member, args, kwargs = pickle.loads(data)
    return rid, deadline, Request(op, member, args, kwargs)


def frame_length(n: int) -> bytes:
    """multiprocessing's length header for a frame body of ``n`` bytes."""
    return struct.pack("!i", n) if n <= 0x7FFFFFFF else struct.pack("!iQ", -1, n)


def encode_reply(rid: int, ok: bool, value: Any) -> Any:
    """A reply frame's body; raises what pickling the value raises."""
    return _with_header(REPLY_HEADER.pack(b"R", rid, ok), value)


def encode_push(what: str, value: Any) -> Any:
    return _with_header(b"P", (what, value))


def _with_header(header: bytes, value: Any) -> Any:
    """``header`` + the pickled value as one buffer, copying a big pickle no more than once."""
    blob = pickle.dumps(value, PROTOCOL)
    if len(blob) < _BIG:
        return header + blob
    buf = io.BytesIO()
    buf.write(header)
    buf.write(memoryview(blob))
    return buf.getbuffer()


class RawImage:
    """An ImageArray read in the device process, as its raw pixel buffer (``array.array``).

    It crosses the pipe as a small header and then the pixel bytes themselves (never pickled);
    the caller rebuilds what alpyca returns: a list of rows (``array.array`` slices), or of rows
    of 3-element slices for a colour (rank 3) image.
    """

    __slots__ = ("pixels", "rank", "dim1", "dim2", "dim3")

    def __init__(self, pixels: Any, rank: int, dim1: int, dim2: int, dim3: int) -> None:
        self.pixels, self.rank, self.dim1, self.dim2, self.dim3 = pixels, rank, dim1, dim2, dim3

    def header(self, rid: int) -> tuple[bytes, memoryview]:
        """The image frame's body and the pixel bytes that follow it."""
        view = memoryview(self.pixels).cast("B")
        meta = {"typecode": self.pixels.typecode, "rank": self.rank, "dim1": self.dim1, "dim2": self.dim2,
                "dim3": self.dim3, "nbytes": view.nbytes}
        return IMAGE_HEADER.pack(b"I", rid) + pickle.dumps(meta, PROTOCOL), view


def rows_of(pixels: Any, rank: int, dim1: int, dim2: int) -> list:
    """alpyca's nested-list layout of a flat pixel array (see alpyca Camera.ImageArray)."""
    if rank == 3:
        return [[pixels[(i * dim2 + j) * 3:(i * dim2 + j) * 3 + 3] for j in range(dim2)] for i in range(dim1)]
    return [pixels[i * dim2:(i + 1) * dim2] for i in range(dim1)]
