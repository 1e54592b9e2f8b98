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
import re
import select
import socket
import struct
import sys
import time
from collections import deque
from typing import Any

from waitress.buffers import OverflowableBuffer
from waitress.channel import ClientDisconnected
from waitress.receiver import FixedStreamReceiver
from waitress.utilities import build_http_date

from emulator.http.protocol import error_number_of
from emulator.serve.sockets import FaultLayer
from proxy.messages import answer_headers, header_name, parser_parts
from proxy.upstream import AnswerReader, ProtocolError, Upstream, request_bytes

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/emulator/"
_CONTROL_PREFIX_BYTES = CONTROL_PREFIX.encode()
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


#: A request line the quick parser takes: GET, HEAD or PUT, an origin-form URI with nothing to
#: unquote, HTTP/1.1. Anything else is waitress's to parse.
_REQUEST_LINE = re.compile(rb"(GET|HEAD|PUT) (/[!-~]*) HTTP/1\.1")
#: One header line: a token name (no "_": waitress drops those), a value of visible ASCII.
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^`|~0-9A-Za-z]+):[ \t]*([ -~\t]*?)[ \t]*")
_BLOCKS_MAX = 64


class QuickParser:
    """Parses the one simple request a read brought, as waitress's parser would, but cheaply.

    waitress's parser costs about a third of the proxy's own CPU per forwarded read (a regex
    and a caught KeyError per header line, ``urlsplit`` and an unquote per URI). A client
    sends the same header block with every request, so the block is parsed once and its
    waitress-style header dict and the header lines that go upstream are kept (a few blocks,
    bounded). It takes only a read that is exactly one GET or HEAD request without a body, or
    one PUT with its whole body (a form, as Alpaca clients send): HTTP/1.1, an origin-form URI
    without ``%`` or ``#``, every header line plain, none repeated, no Transfer-Encoding or
    Expect. Anything else, or the control API, returns None and waitress parses it as always."""

    def __init__(self) -> None:
        self._blocks: dict[bytes, tuple[dict[str, str], str] | None] = {}
        self._const: dict[str, Any] | None = None

    def parse(self, channel: Any, data: bytes) -> tuple[Any, str, bytes] | None:
        """A waitress request for ``data``, its end-to-end header lines (a PUT's own
        Content-Length line last) and its body; or None."""
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return None
        at = data.find(b"\r\n")
        line = _REQUEST_LINE.fullmatch(data, 0, at)
        if line is None:
            return None
        uri = line.group(2)
        if b"%" in uri or b"#" in uri or uri[:2] == b"//" or uri.startswith(_CONTROL_PREFIX_BYTES):
            return None
        block = data[at + 2 : end]
        known = self._blocks.get(block, False)
        if known is False:
            known = self._block(block)
            if len(self._blocks) >= _BLOCKS_MAX:
                self._blocks.clear()
            self._blocks[block] = known
        if known is None:
            return None
        headers, forwarded = known
        length = len(data) - end - 4
        if str(length) != headers.get("CONTENT_LENGTH", "0"):
            return None  # a body that is not exactly the rest of this read (or one a GET should not have)
        command = line.group(1).decode("latin-1")
        if (command == "PUT") != (length > 0):
            return None
        request = channel.parser_class(channel.adj)
        request_uri = uri.decode("latin-1")
        path, _, query = request_uri.partition("?")
        fields = request.__dict__
        fields.update(self._constant(channel.adj))  # what waitress's parser sets alike for all of these
        fields.update(first_line=data[:at], headers=dict(headers), command=command, request_uri=request_uri, path=path, query=query)
        body = b""
        if length:
            body = data[end + 4 :]
            request.content_length = length
            request.body_rcv = FixedStreamReceiver(length, OverflowableBuffer(channel.adj.inbuf_overflow))
            request.body_rcv.received(body)
            forwarded = f"{forwarded}Content-Length: {length}\r\n"
        return request, forwarded, body

    def _constant(self, adj: Any) -> dict[str, Any]:
        const = self._const
        if const is None or const["adj"] is not adj:
            const = self._const = {"adj": adj, "version": "1.1", "proxy_scheme": "", "proxy_netloc": "", "fragment": "",
                                   "url_scheme": adj.url_scheme, "headers_finished": True, "completed": True}
        return const

    @staticmethod
    def _block(block: bytes) -> tuple[dict[str, str], str] | None:
        headers: dict[str, str] = {}
        forwarded: dict[str, str] = {}
        for line in block.split(b"\r\n") if block else ():
            m = _HEADER_LINE.fullmatch(line)  # an empty line too: the head ended before the read did
            if m is None:
                return None
            key = m.group(1).upper().replace(b"-", b"_").decode("latin-1")
            value = m.group(2).decode("latin-1")
            if key in headers or key in ("TRANSFER_ENCODING", "EXPECT") or (key == "CONTENT_LENGTH" and not value.isdigit()):
                return None
            headers[key] = value
            name = header_name(key)
            if name is not None and value != "":
                forwarded[name] = value
        return headers, "".join(f"{k}: {v}\r\n" for k, v in forwarded.items())


class Heads:
    """Answer heads exactly as waitress's ``build_response_header`` writes them for an HTTP/1.1
    answer with a body and a Content-Length to a keep-alive client: the status line, the
    headers sorted by name (names capitalised per ``-``-part, same names in their order), its
    Server and Date.

    An upstream answers with the same few heads again and again, so each (status, headers) gets
    a template, made once, with two holes: the Content-Length and the Date (a string made once
    a second). Bounded: the templates are dropped when there are too many."""

    _MAX = 256

    def __init__(self, ident: str) -> None:
        self.ident = ident
        self._templates: dict[tuple, tuple[str, ...]] = {}
        self._second = -1
        self._date = ""

    def head(self, status: str, headers: list[tuple[str, str]], length: int) -> bytes:
        key = (status, *headers)
        parts = self._templates.get(key)
        if parts is None:
            parts = self._template(status, headers)
        now = time.time()
        if int(now) != self._second:
            self._second, self._date = int(now), build_http_date(now)
        if parts[0] == "L":  # Content-Length's hole comes first
            return (parts[1] + str(length) + parts[2] + self._date + parts[3]).encode("latin-1")
        return (parts[1] + self._date + parts[2] + str(length) + parts[3]).encode("latin-1")

    def _template(self, status: str, headers: list[tuple[str, str]]) -> tuple[str, ...]:
        lines = [("-".join(x.capitalize() for x in name.split("-")), value) for name, value in headers]
        lines.append(("Content-Length", "\0L"))
        if self.ident:
            lines.append(("Server", self.ident))
        lines.append(("Date", "\0D"))
        lines.sort(key=_name)
        text = "HTTP/1.1 " + status + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in lines) + "\r\n"
        first, second = ("\0L", "\0D") if text.index("\0L") < text.index("\0D") else ("\0D", "\0L")
        a, rest = text.split(first, 1)
        b, c = rest.split(second, 1)
        parts = (first[1], a, b, c)
        if len(self._templates) >= self._MAX:
            self._templates.clear()
        self._templates[(status, *headers)] = parts
        return parts


def _name(header: tuple[str, str]) -> str:
    return header[0]


class _Exchange:
    """One request in flight on a link."""

    __slots__ = ("channel", "request", "ctx", "deadline", "data", "idempotent")

    def __init__(self, channel: Any, request: Any, ctx: Any, deadline: float, data: bytes) -> None:
        self.channel = channel
        self.request = request
        self.ctx = ctx
        self.deadline = deadline
        self.data = data
        self.idempotent = request.command.upper() in ("GET", "HEAD")


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
        self.reused = False  # it has carried an answer before (so the upstream may have closed it meanwhile)
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
        """The link is dead: close it, and fail the request it carried (if any). A GET or HEAD
        on a kept connection the upstream closed before answering a byte goes again on a new
        one (the close crossed the request: an idle upstream connection ending is no failure)."""
        exchange, connecting, reader = self.exchange, self.connecting, self.reader
        self.exchange = None
        self.close()
        if exchange is None:
            return
        if (self.reused and exchange.idempotent and isinstance(exc, ConnectionError) and reader is not None
                and reader.answer is None and not reader.buf):
            self.owner.resend(exchange)
            return
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

    def __init__(self, server: Any, upstream: Upstream, layer: FaultLayer, max_links: int = 8) -> None:
        """``max_links``: at most this many connections to the upstream at once (a small device
        may take only a few); more requests wait, in order, for one to be free."""
        self.server = server
        self.max_links = max(1, max_links)
        self.map = server._map
        self.layer = layer
        self.faults = layer.faults
        self.timeout_s = upstream.timeout_s
        self.host_header = upstream.host_header
        found = ip_address(upstream.host)
        self.address = (found[0], (upstream.host, upstream.port) + found[1][2:]) if found else None
        self._idle: list[Link] = []
        self._busy: set[Link] = set()
        self._waiting: deque[_Exchange] = deque()
        self._timer_due = False
        self.parser = QuickParser()
        self.heads = Heads(server.adj.ident)
        self.forwarded = 0  # requests this path took (diagnostics, tests)

    # -- taking a request -----------------------------------------------------------------------

    def ready(self, channel: Any) -> bool:
        """Whether a request on ``channel`` could be taken now (the conditions that do not
        depend on the request itself)."""
        return self.address is not None and not channel.total_outbufs_len and not len(self.faults)

    def received(self, channel: Any, data: bytes) -> bool:
        """A read of the channel's that is one simple request: parsed here and taken (or given to
        a worker); False when waitress is to parse it."""
        if channel.request is not None or channel.requests or not self.ready(channel):
            return False
        parsed = self.parser.parse(channel, data)
        if parsed is None:
            return False
        request, forwarded, body = parsed
        with channel.requests_lock:
            channel.requests.append(request)
        if not self.take(channel, forwarded, body, ready=True):
            self.server.to_worker(channel)
        return True

    def take(self, channel: Any, forwarded: str | None = None, body: bytes = b"", ready: bool = False) -> bool:
        """Forward the channel's first request here, or say False for the worker path.
        ``forwarded`` and ``body``: its end-to-end header lines and body, when the quick parser
        has them; ``ready``: the caller has just checked :meth:`ready`."""
        if not channel.requests or not (ready or self.ready(channel)):
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
        if forwarded is not None:
            data = f"{request.command} {request.request_uri} HTTP/1.1\r\n{self.host_header}{forwarded}\r\n".encode("latin-1") + body
        else:
            method, uri, headers, body = parser_parts(request)
            data = request_bytes(method, uri, self.host_header, headers, body)
        self.forwarded += 1
        self._start(_Exchange(channel, request, ctx, time.monotonic() + self.timeout_s, data))
        if not self._timer_due:
            self._timer_due = True
            self.layer.scheduler.call_later(self.timeout_s, lambda: self.layer.on_loop(self._expire))
        return True

    def _start(self, exchange: _Exchange) -> None:
        if len(self._busy) >= self.max_links and not self._idle:
            self._waiting.append(exchange)
            return
        link = self._link(exchange.idempotent)
        self._busy.add(link)
        link.send(exchange, exchange.data)

    def _release(self) -> None:
        """Start the requests that waited for a link, as links are free."""
        waiting = self._waiting
        while waiting and (self._idle or len(self._busy) < self.max_links):
            self._start(waiting.popleft())

    def _link(self, idempotent: bool) -> Link:
        """A pooled link (for a GET or HEAD unchecked: :meth:`Link.fail` sends it again if the
        upstream had closed it), else a new one."""
        idle = self._idle
        while idle:
            link = idle.pop()
            if idempotent or link.alive():
                return link
            link.close()
        return Link(self, *self.address)

    def resend(self, exchange: _Exchange) -> None:
        link = Link(self, *self.address)
        self._busy.add(link)
        link.send(exchange, exchange.data)

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
            link.reused = True
            self._idle.append(link)
        else:
            link.close()
        try:
            self._reply(exchange, reader.answer)
        except Exception:  # a bug here must not leave the client waiting: it sees its connection closed
            log.exception("forwarding %s %s failed", exchange.request.command, exchange.request.path)
            exchange.ctx.entry.outcome = "closed"
            self.layer.finish(exchange.ctx)
            self._next(exchange.channel, exchange.request, True)
        if self._waiting:
            self._release()

    def _reply(self, exchange: _Exchange, answer: Any) -> None:
        """What :class:`~emulator.serve.sockets.FaultTask` and waitress's channel do with the
        worker path's answer, done here: log, head, body, then the connection's next request."""
        channel, request, ctx = exchange.channel, exchange.request, exchange.ctx
        body = answer.body
        headers = answer_headers(answer)
        status = f"{answer.status} {answer.reason}"
        entry = ctx.entry
        if not entry.answered(status, body):
            entry.error_number = error_number_of(body, next((v for k, v in headers if k.lower() == "content-type"), ""))
        self.layer.finish(ctx)  # logged before the client can see the answer
        close = False
        if (answer.status >= 200 and answer.status not in (204, 304) and request.version == "1.1"
                and request.headers.get("CONNECTION", "").lower() != "close"):
            data = self.heads.head(status, headers, len(body))
            if body:
                data += body
        else:  # waitress's task builds what it builds for the rarer cases (and says whether to close)
            headers.append(("Content-Length", str(len(body))))
            task = channel.task_class(channel, request)
            task.start()
            task.status, task.response_headers, task.content_length, task.complete = status, headers, len(body), True
            data = task.build_response_header()
            if body and task.has_body:
                data += body
            close = task.close_on_finish
        if not self._send(channel, data):
            close = True
        self._next(channel, request, close)

    @staticmethod
    def _send(channel: Any, data: bytes) -> bool:
        """Send on the client's socket now (nothing else of the channel's waits to go out), the
        rest through waitress's buffers; False when the client has gone."""
        if not channel.connected or channel.socket is None:
            return False
        try:
            sent = channel.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            channel.will_close = True
            return False
        if sent < len(data):
            try:
                channel.write_soon(data[sent:])
            except ClientDisconnected:
                return False
        return True

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
        if self._waiting:
            self._release()
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
        for exchange in [e for e in self._waiting if e.deadline <= now]:  # no link came free in time
            self._waiting.remove(exchange)
            self.failed(exchange, "timeout", f"no connection to the upstream free within {self.timeout_s:g} s")
        later += [e.deadline for e in self._waiting]
        self._timer_due = bool(later)
        if later:
            self.layer.scheduler.call_later(min(later) - now, lambda: self.layer.on_loop(self._expire))
