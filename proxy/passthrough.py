"""The proxy's fast path: a request no fault rule can touch, forwarded by waitress's loop thread.

    client ─> loop thread: parse (waitress), log entry ─> Link (non-blocking, pooled) ─> upstream
    client <─ loop thread: status line + headers (waitress's own) + body, one send <─┘

Why. Through a worker thread, every forwarded request costs two thread hand-offs in the proxy
(loop -> worker, then the worker's wake-up on the trigger pipe back to the loop) besides the
two process wake-ups that any hop costs; on this kind of machine (a VM whose idle CPUs halt) a
hand-off costs 50-100 us, and the proxy added about 1.3-1.4x a direct read. Here the loop
thread that parsed the request also sends it upstream and, when the upstream's answer has come
whole, writes it to the client: no worker, no trigger, and the upstream's socket is one more
entry in the same select() (``bench/README.md``, "Proxy").

It takes a request only when nothing else is needed: no fault rule exists, nothing is recorded,
the path is not the control API's or the web panel's (``/``), the request is well formed, the
upstream is an IP address (a name would need a resolver call that could block the loop) and
nothing of the connection's earlier answers is still unsent. Everything else goes to the worker path
(:class:`proxy.forward.Forwarder`) unchanged. Both paths frame the answer with the same
:class:`~proxy.upstream.AnswerReader`, send the same parts of the request
(:mod:`proxy.messages`), build the client's answer head with waitress's own task, log the same
traffic entry, and fail the same way (:class:`~proxy.upstream.UpstreamFailure` kinds: the
client's connection reset, or closed after the upstream timeout).

Loop thread only: every method here runs on waitress's loop thread, which owns the sockets.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import sys
import time
from typing import Any

from waitress.channel import ClientDisconnected

from emulator.http.protocol import error_number_of
from emulator.serve.sockets import FaultLayer
from proxy.messages import answer_headers, parser_parts
from proxy.upstream import AnswerReader, ProtocolError, Upstream, request_bytes

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/emulator/"
#: The one path outside CONTROL_PREFIX the proxy answers itself, to GET only (the web panel;
#: any other method on it is forwarded); left to the worker path, which knows the method.
PANEL_ROOT = "/"
_LINGER_RST = struct.pack("ii", 1, 0)
_IN_PROGRESS = (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY)


def ip_address(host: str) -> tuple[int, tuple] | None:
    """(family, sockaddr) for an IP literal; None for a host name."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return family, (host, 0)
    return None


class _Exchange:
    """One request in flight on a link."""

    __slots__ = ("channel", "request", "ctx", "deadline")

    def __init__(self, channel: Any, request: Any, ctx: Any, deadline: float) -> None:
        self.channel = channel
        self.request = request
        self.ctx = ctx
        self.deadline = deadline


class Link:
    """One keep-alive connection to the upstream, an entry of waitress's socket map.

    Idle in the pool it stays readable, so an upstream that closes it is noticed (and the link
    dropped) by the loop, not by the next request."""

    accepting = False  # what waitress's select loop asks every map entry

    def __init__(self, owner: "Passthrough", family: int, addr: tuple) -> None:
        self.owner = owner
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setblocking(False)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.fd = self.socket.fileno()
        self.out = b""
        self.exchange: _Exchange | None = None
        self.reader: AnswerReader | None = None
        self.error: OSError | None = None  # a failure noticed outside the loop's handlers, raised by the next one
        code = self.socket.connect_ex(addr)
        self.connecting = code != 0
        if code not in _IN_PROGRESS:
            self.error = OSError(code, os.strerror(code))
        owner.map[self.fd] = self

    # -- what the select loop calls -------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return bool(self.connecting or self.out or self.error)

    def handle_read_event(self) -> None:
        if self.error is not None or self.connecting:
            self._connected()
        data = self.socket.recv(65536)
        exchange = self.exchange
        if exchange is None:  # idle: the upstream closed it, or spoke out of turn
            self.close()
            return
        exchange.deadline = time.monotonic() + self.owner.timeout_s
        if self.reader.feed(data):
            self.owner.answered(self)

    def handle_write_event(self) -> None:
        if self.error is not None or self.connecting:
            self._connected()
        if self.out:
            sent = self.socket.send(self.out)
            self.out = self.out[sent:]

    def handle_expt_event(self) -> None:
        self._connected()
        raise ConnectionResetError("exceptional condition on the upstream connection")

    def handle_close(self) -> None:
        self.fail(ConnectionResetError("the upstream closed the connection"))

    def handle_error(self) -> None:
        self.fail(sys.exc_info()[1] or ConnectionResetError("upstream connection error"))

    def _connected(self) -> None:
        error = self.error
        if error is None:
            code = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code in (errno.EINPROGRESS, errno.EALREADY):
                return
            error = OSError(code, os.strerror(code)) if code else None
        if error is not None:
            raise error
        self.connecting = False

    # -- requests -------------------------------------------------------------------------------

    def send(self, exchange: _Exchange, data: bytes) -> None:
        self.exchange = exchange
        self.reader = AnswerReader(exchange.request.command.upper())
        self.out = data
        if not self.connecting and self.error is None:
            try:
                sent = self.socket.send(data)
            except BlockingIOError:
                return
            except OSError as exc:  # handled by the loop's next turn, never inside waitress's received()
                self.error = exc
                return
            self.out = data[sent:]

    def fail(self, exc: BaseException) -> None:
        """The link is dead: close it, and fail the request it carried (if any)."""
        exchange, connecting = self.exchange, self.connecting
        self.exchange = None
        self.close()
        if exchange is not None:
            self.owner.failed(exchange, _kind(exc, connecting), f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self.owner.forget(self)
        try:
            self.socket.close()
        except OSError:
            pass

    def alive(self) -> bool:
        """An idle link the upstream has not closed (nor spoken on) since its last answer: not
        readable. (The loop notices a close too, but maybe in the same turn that brought the request.)"""
        try:
            return not select.select([self.fd], [], [], 0)[0]
        except (OSError, ValueError):
            return False


def _kind(exc: BaseException, connecting: bool) -> str:
    """The :class:`~proxy.upstream.UpstreamFailure` kind of a link's failure, as the blocking client names it."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if connecting and isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionError, ValueError, ProtocolError)):
        return "reset"
    return "unreachable"


class Passthrough:
    """Takes the requests it can forward itself (see the module docstring); loop thread only."""

    def __init__(self, server: Any, upstream: Upstream, layer: FaultLayer) -> None:
        self.server = server
        self.map = server._map
        self.layer = layer
        self.faults = layer.faults
        self.timeout_s = upstream.timeout_s
        self.host_header = upstream.host_header
        found = ip_address(upstream.host)
        self.address = (found[0], (upstream.host, upstream.port) + found[1][2:]) if found else None
        self._idle: list[Link] = []
        self._busy: set[Link] = set()
        self._timer_due = False

    # -- taking a request -----------------------------------------------------------------------

    def take(self, channel: Any) -> bool:
        """Forward the channel's first request here, or say False for the worker path."""
        if self.address is None or channel.total_outbufs_len or not channel.requests or len(self.faults):
            return False
        request = channel.requests[0]
        path = request.path or ""
        if request.error or request.fault_ctx is not None or path.startswith(CONTROL_PREFIX) or path == PANEL_ROOT:
            return False
        ctx = self.layer.begin(channel, request)
        if ctx is None:
            return False
        if ctx.plan is not None:  # a rule came meanwhile: the worker path carries it out
            request.fault_ctx = ctx
            if ctx.plan.latency_s > 0:
                self.layer.scheduler.call_later(ctx.plan.latency_s, channel._resume)
                return True
            return False
        method, uri, headers, body = parser_parts(request)
        link = self._link()
        exchange = _Exchange(channel, request, ctx, time.monotonic() + self.timeout_s)
        self._busy.add(link)
        link.send(exchange, request_bytes(method, uri, self.host_header, headers, body))
        if not self._timer_due:
            self._timer_due = True
            self.layer.scheduler.call_later(self.timeout_s, lambda: self.layer.on_loop(self._expire))
        return True

    def _link(self) -> Link:
        idle = self._idle
        while idle:
            link = idle.pop()
            if link.alive():
                return link
            link.close()
        return Link(self, *self.address)

    def forget(self, link: Link) -> None:
        self.map.pop(link.fd, None)
        self._busy.discard(link)
        if link in self._idle:
            self._idle.remove(link)

    # -- the answer, or none --------------------------------------------------------------------

    def answered(self, link: Link) -> None:
        exchange, reader = link.exchange, link.reader
        link.exchange = link.reader = None
        self._busy.discard(link)
        if reader.keep and not reader.leftover:
            self._idle.append(link)
        else:
            link.close()
        self._reply(exchange, reader.answer)

    def _reply(self, exchange: _Exchange, answer: Any) -> None:
        """What :class:`~emulator.serve.sockets.FaultTask` and waitress's channel do with the
        worker path's answer, done here: log, head, body, then the connection's next request."""
        channel, request, ctx = exchange.channel, exchange.request, exchange.ctx
        body = answer.body
        headers = answer_headers(answer)
        headers.append(("Content-Length", str(len(body))))
        task = channel.task_class(channel, request)
        task.start()
        task.status = f"{answer.status} {answer.reason}"
        task.response_headers = headers
        task.content_length = len(body)
        task.complete = True
        entry = ctx.entry
        if not entry.answered(task.status, body):
            entry.error_number = error_number_of(body, next((v for k, v in headers if k.lower() == "content-type"), ""))
        self.layer.finish(ctx)  # logged before the client can see the answer
        try:
            head = task.build_response_header()
            task.wrote_header = True
            channel.write_soon(head + body if body and task.has_body else head)
        except ClientDisconnected:
            task.close_on_finish = True
        except OSError:
            task.close_on_finish = True
        self._next(channel, request, task.close_on_finish)

    def _next(self, channel: Any, request: Any, close: bool) -> None:
        """The end of waitress's ``HTTPChannel.service`` for one request, on the loop thread."""
        more = False
        if close:
            with channel.requests_lock:
                channel.close_when_flushed = True
                for r in channel.requests:
                    r.close()
                channel.requests = []
        else:
            if channel.current_outbuf_count > 0:  # the next request gets a buffer of its own
                channel.current_outbuf_count = channel.adj.outbuf_high_watermark
            request.close()
            with channel.requests_lock:
                if channel.requests:
                    channel.requests.pop(0)
                more = bool(channel.connected and channel.requests)
                if (not more and channel.connected and channel.request is not None and channel.request.expect_continue
                        and channel.request.headers_finished and not channel.sent_continue):
                    channel.send_continue()
        channel.last_activity = time.time()
        if more:
            self.server.add_task(channel)

    def failed(self, exchange: _Exchange, kind: str, detail: str) -> None:
        """No whole answer: the client's connection shows it as :class:`proxy.forward.ProxyTask` does."""
        channel, request, ctx = exchange.channel, exchange.request, exchange.ctx
        log.info("%s %s: upstream %s: %s", request.command, request.path, kind, detail)
        ctx.entry.outcome = f"upstream-{kind}"
        ctx.entry.status = None
        self.layer.finish(ctx)
        with channel.requests_lock:
            for r in channel.requests:
                r.close()
            channel.requests = []
        if channel.socket is None or not channel.connected:
            return
        if kind != "timeout":
            try:  # closed with a RST
                channel.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            except OSError:
                pass
        channel.handle_close()

    def _expire(self) -> None:
        """The upstream timeout: links silent for ``timeout_s`` fail their request (timer, on the loop)."""
        now = time.monotonic()
        later = []
        for link in list(self._busy):
            exchange = link.exchange
            if exchange is None:
                continue
            if exchange.deadline <= now:
                link.fail(TimeoutError(f"no answer within {self.timeout_s:g} s"))
            else:
                later.append(exchange.deadline)
        self._timer_due = bool(later)
        if later:
            self.layer.scheduler.call_later(min(later) - now, lambda: self.layer.on_loop(self._expire))
