"""Fault actions below HTTP: on the connection, on the reply's bytes, on discovery datagrams.

Each ``apply`` says what happens in terms of a few primitives that the socket layer
(:mod:`emulator.serve.sockets`) or the discovery responder offers; none of them touches a socket
itself. Durations here are wall-clock, because clients time out on real clocks.
"""

from __future__ import annotations

import random
from typing import ClassVar, Literal, Protocol

from pydantic import Field

from emulator.faults.actions import FaultAction, register


class Connection(Protocol):
    """What the socket layer offers a connection-stage action, for one request, before the app.

    Each call that ends the request logs it first, so a client that saw the outcome finds it.
    """

    def hang(self, max_s: float) -> None:
        """Never answer; close after ``max_s`` unless the client leaves first. Holds no worker."""

    def close(self, reset: bool) -> None:
        """Close without an answer: a FIN, or a TCP RST when ``reset``."""

    def call_device(self) -> None:
        """Run the request through the app (the device acts), keeping nothing of its answer."""

    def outage(self, duration_s: float, close_open: bool) -> None:
        """Stop listening for ``duration_s`` (same port afterwards); close open connections too
        when ``close_open``. The tripping request is closed unanswered."""


class ReplyOut(Protocol):
    """What the socket layer offers a response-bytes action: the app's whole answer, unsent."""

    body: bytes

    def send(self, upto: int | None = None) -> None:
        """Send the answer, declaring its full length; only ``upto`` body bytes, then close, when given."""

    def dribble(self, bytes_per_s: float) -> None:
        """Send the headers now and the body at ``bytes_per_s`` (this holds a worker, as a slow server does)."""


# -- connection -------------------------------------------------------------------------------------


@register
class Latency(FaultAction):
    """Delay the request; every firing latency rule adds its delay. Holds no worker while waiting."""

    kind: Literal["latency"]
    ms: float = Field(ge=0, le=3_600_000, description="Delay before the request is handled, wall ms")
    jitter_ms: float = Field(0, ge=0, le=3_600_000, description="Plus a seeded uniform 0..jitter_ms")
    stage = "connection"
    terminal = False

    def delay_s(self, rng: random.Random) -> float:
        return self.ms / 1000.0 + (rng.uniform(0, self.jitter_ms) / 1000.0 if self.jitter_ms else 0.0)


@register
class Hang(FaultAction):
    kind: Literal["hang"]
    max_s: float = Field(120, gt=0, le=86400, description="Close the connection after this many wall s")
    stage = "connection"
    outcome = "hung"

    def apply(self, conn: Connection) -> None:
        conn.hang(self.max_s)


class _Cut(FaultAction):
    """Close the connection without an answer, before or after the device acted."""

    phase: Literal["request", "response"] = Field("request", description="Before or after the device acts")
    stage = "connection"
    rst: ClassVar[bool] = False

    def apply(self, conn: Connection) -> None:
        if self.phase == "response":
            conn.call_device()
        conn.close(reset=self.rst)


@register
class Drop(_Cut):
    kind: Literal["drop"]
    outcome = "dropped"


@register
class Reset(_Cut):
    """As drop, with a TCP RST instead of a FIN."""

    kind: Literal["reset"]
    outcome = "reset"
    rst = True


class _Outage(FaultAction):
    """No listening socket for a while; the same port afterwards.

    A window that ends by itself: the rule fires once unless its trigger says it repeats, and
    not while its own window is open, so the first request after the re-listen is answered."""

    stage = "connection"
    close_open: ClassVar[bool] = False
    repeats = False

    def hold_s(self) -> float:
        return self.duration_s  # type: ignore[attr-defined]

    def apply(self, conn: Connection) -> None:
        conn.outage(self.duration_s, close_open=self.close_open)  # type: ignore[attr-defined]


@register
class Refuse(_Outage):
    kind: Literal["refuse"]
    duration_s: float = Field(gt=0, le=86400, description="Wall s without a listening socket")
    outcome = "refused"


@register
class Down(_Outage):
    """As refuse, and the open keep-alive connections are closed too."""

    kind: Literal["down"]
    duration_s: float = Field(gt=0, le=86400, description="Wall s down; open connections are closed too")
    outcome = "down"
    close_open = True


# -- the reply's bytes ------------------------------------------------------------------------------


@register
class Truncate(FaultAction):
    kind: Literal["truncate"]
    fraction: float = Field(0.5, ge=0, lt=1, description="Share of the body sent before the close")
    stage = "response-bytes"
    outcome = "truncated"

    def apply(self, out: ReplyOut) -> None:
        out.send(upto=int(len(out.body) * self.fraction))


@register
class SlowBody(FaultAction):
    kind: Literal["slow_body"]
    bytes_per_s: float = Field(gt=0, description="Body bytes sent per wall second")
    stage = "response-bytes"

    def apply(self, out: ReplyOut) -> None:
        out.dribble(self.bytes_per_s)


# -- discovery datagrams ----------------------------------------------------------------------------


@register
class DiscoveryGarbage(FaultAction):
    kind: Literal["discovery_garbage"]
    payload: str = Field('{"AlpacaPort": "eleven', description="The malformed reply")
    stage = "datagram"
    outcome = "garbage"

    def apply(self, reply: bytes | None) -> bytes | None:
        return self.payload.encode()


@register
class DiscoverySilent(FaultAction):
    kind: Literal["discovery_silent"]
    stage = "datagram"
    outcome = "silent"

    def apply(self, reply: bytes | None) -> bytes | None:
        return None
