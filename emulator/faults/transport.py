"""Fault actions below HTTP: on the connection, on the request's or the reply's bytes, on discovery.

Each ``apply`` says what happens in terms of a few primitives that the socket layer
(:mod:`emulator.serve.sockets`) or the discovery responder offers; none of them touches a socket
itself. Durations here are wall-clock, because clients time out on real clocks.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar, Literal, Protocol

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


class RequestIn(Protocol):
    """What the socket layer offers a request-bytes action: the request, before the app reads it.

    ``params`` are the bytes that carry its parameters: the form body of a request that has one,
    else the query string. ``size`` is the whole request's length on the wire (request line,
    headers, body)."""

    params: bytes
    size: int

    def hold(self, seconds: float) -> None:
        """Give the request to the app ``seconds`` later (its bytes are still arriving). Holds no worker."""

    def replace(self, params: bytes) -> None:
        """The app reads ``params`` instead (the rest was lost on the way)."""


class ReplyOut(Protocol):
    """What the socket layer offers a response-bytes action: the app's whole answer, unsent."""

    body: bytes

    def send(self, upto: int | None = None) -> None:
        """Send the answer, declaring its full length; only ``upto`` body bytes, then close, when given."""

    def dribble(self, bytes_per_s: float) -> None:
        """Send the headers now and the body at ``bytes_per_s`` (this holds a worker, as a slow server does)."""


# -- connection -------------------------------------------------------------------------------------


Direction = Literal["downstream", "upstream"]
_DIRECTION = "downstream: on the reply (default); upstream: on the request's bytes, before the app reads them"


@register
class Latency(FaultAction):
    """Delay the request (upstream: before the app; downstream: the app answers at once and its
    answer waits); firing latency rules add up. Holds no worker while waiting."""

    kind: Literal["latency"]
    ms: float = Field(ge=0, le=3_600_000, description="Delay, wall ms")
    jitter_ms: float = Field(0, ge=0, le=3_600_000, description="Plus a seeded uniform 0..jitter_ms")
    direction: Direction = Field("downstream", description=_DIRECTION)
    stage = "connection"
    terminal = False

    def delay_s(self, rng: random.Random) -> float:
        return self.ms / 1000.0 + (rng.uniform(0, self.jitter_ms) / 1000.0 if self.jitter_ms else 0.0)

    def shape(self, plan: Any, rng: random.Random) -> None:
        if self.direction == "upstream":
            plan.latency_s += self.delay_s(rng)
        else:
            plan.reply_delay_s += self.delay_s(rng)


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


@register
class Bandwidth(FaultAction):
    """Cap the bytes per second of the reply (downstream: status line, headers and body leave at
    most this fast; holds a worker while sending, as a slow link does) or of the request
    (upstream: the app gets it when its bytes would have arrived; holds no worker). Several
    bandwidth rules: the lowest cap of each direction wins."""

    kind: Literal["bandwidth"]
    bytes_per_s: float = Field(gt=0, le=1e12, description="At most this many bytes per wall second")
    direction: Direction = Field("downstream", description=_DIRECTION)
    stage = "connection"
    terminal = False

    def shape(self, plan: Any, rng: random.Random) -> None:
        attr = "rate_up" if self.direction == "upstream" else "rate_down"
        cap = getattr(plan, attr)
        setattr(plan, attr, self.bytes_per_s if cap is None else min(cap, self.bytes_per_s))


# -- the request's or the reply's bytes ---------------------------------------------------------------


class _Directed(FaultAction):
    """A kind that acts on the reply's bytes (downstream) or on the request's (upstream)."""

    direction: Direction = Field("downstream", description=_DIRECTION)
    stage = "response-bytes"

    @property
    def acts_at(self) -> str:  # type: ignore[override]
        return "request-bytes" if self.direction == "upstream" else "response-bytes"


@register
class Truncate(_Directed):
    """Downstream: the reply's body is cut and the connection closed. Upstream: the app reads only
    the first ``fraction`` of the request's parameters (the form body; without one, the query
    string), as if the rest was lost, and answers what it got."""

    kind: Literal["truncate"]
    fraction: float = Field(0.5, ge=0, lt=1, description="Share of the body (downstream) or parameters (upstream) kept")
    outcome = "truncated"

    def apply(self, target: Any) -> None:
        if self.direction == "upstream":
            target.replace(target.params[: int(len(target.params) * self.fraction)])
        else:
            target.send(upto=int(len(target.body) * self.fraction))


@register
class SlowBody(_Directed):
    """Downstream: the headers at once, the body at ``bytes_per_s`` (holds a worker). Upstream: the
    request's parameters (the form body; without one, the query string) arrive at
    ``bytes_per_s``, so the app gets the request that much later (holds no worker)."""

    kind: Literal["slow_body"]
    bytes_per_s: float = Field(gt=0, description="Body bytes per wall second")

    def apply(self, target: Any) -> None:
        if self.direction == "upstream":
            target.hold(len(target.params) / self.bytes_per_s)
        else:
            target.dribble(self.bytes_per_s)


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
