"""The layer below HTTP: fault stages that need the socket, inside waitress, and the traffic log.

    connection ─> FaultChannel.service: log entry, Plan
                    ├─ upstream wait (latency, bandwidth, request-bytes: slow_body/truncate upstream):
                    │    a timer puts it back, no worker held
                    ├─ connection stage: hang, drop, reset, refuse, down
                    ├─ downstream latency: the app answers now, a timer sends the held answer later
                    └─ FaultTask ─> app (+ fault middleware) ─> write
                         └─ response-bytes stage (truncate, slow_body), paced by a downstream bandwidth cap

Why inside waitress and not a proxy in front of it. A proxy (asyncio or threads) would copy
every byte twice and add a hop to every request, which the performance budget (server CPU per
request within 1.3x of bare Falcon + waitress, nothing measurable for an empty rule list) does
not allow. Waitress already owns the sockets in one asyncore loop thread; subclassing its
channel (one per connection) and task (one per request) gives the same control with no extra
hop. This layer evaluates each request's plan once, as it arrives, carries out the stages that
need the socket, and hands the plan to the app in the WSGI environ for the fault middleware
(:mod:`emulator.faults.middleware`), which carries out the HTTP-level ones. It never builds an
Alpaca answer itself. With no rules, the only extra work is one dict lookup and appending one
traffic entry.

The waitress internals this relies on are listed, and checked before the first server starts, in
:mod:`emulator.serve.waitress_check`; add any new one there.

Threading rules this module keeps:

- Socket state (close, SO_LINGER, the listening socket) changes only on the loop thread; worker
  and timer threads hand it thunks through ``server.trigger.pull_trigger``.
- Latency and hang never hold a worker thread: a delayed request (or a held answer) is put back
  on the task queue by a timer; a hung request is taken off the channel, whose socket stays open
  (its input is discarded) until the client leaves or ``max_s`` passes. Paced sending (slow_body,
  a downstream bandwidth cap) holds its worker, as a slow server does.
- One :class:`~emulator.serve.scheduler.Scheduler` thread per emulator, started on first use,
  runs all timers; it and every timer are gone after :meth:`FaultLayer.stop`.
"""

from __future__ import annotations

import io
import logging
import socket
import struct
import threading
import time
from typing import Any, Callable

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import WSGITask

from emulator.faults.engine import DISCOVERY_INFO, NOT_NOTED, FaultSet, Plan
from emulator.faults.middleware import PLAN_KEY
from emulator.http.protocol import error_number_of
from emulator.serve.scheduler import Scheduler
from emulator.serve.traffic import TrafficEntry, TrafficLog

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/emulator/"
# The overridden waitress methods, called directly rather than through super() on every request.
_wsgi_execute = WSGITask.execute
_wsgi_write = WSGITask.write
_wsgi_finish = WSGITask.finish
_wsgi_environment = WSGITask.get_environment
_http_received = HTTPChannel.received
_http_service = HTTPChannel.service
_LINGER_RST = struct.pack("ii", 1, 0)
#: An answer whose whole body comes in one write of at most this many bytes leaves with its head in
#: one send(); a larger body (an ImageArray) goes as waitress sends it, not copied.
ONE_SEND_MAX = 16384


class _Ctx:
    """Per-request state, kept on the waitress request object between its service passes."""

    __slots__ = ("plan", "entry", "t0", "done", "reply", "cut")

    def __init__(self, plan: Plan | None, entry: TrafficEntry, t0: float) -> None:
        self.plan = plan
        self.entry = entry
        self.t0 = t0
        self.done = False
        self.reply: Any = None  # the app's answer (status, headers, body), or what it raised, while held
        self.cut: bytes | None = None  # the parameters the app reads instead (upstream truncate)


class _RequestIn:
    """The :class:`~emulator.faults.transport.RequestIn` of one request: its parameters' bytes and
    its size on the wire, before the app reads them."""

    __slots__ = ("request", "ctx", "has_body", "params", "held")

    def __init__(self, request: Any, ctx: _Ctx) -> None:
        self.request = request
        self.ctx = ctx
        self.has_body = request.body_rcv is not None and request.content_length > 0
        if self.has_body:
            stream = request.get_body_stream()
            pos = stream.tell()
            self.params = stream.read()
            stream.seek(pos)
        else:
            self.params = (request.query or "").encode("latin-1")
        self.held = 0.0

    @property
    def size(self) -> int:
        request = self.request
        head = len(getattr(request, "first_line", b"")) + 4 + sum(len(k) + len(v) + 4 for k, v in request.headers.items())
        return head + (request.content_length if self.has_body else 0)

    def hold(self, seconds: float) -> None:
        self.held += seconds

    def replace(self, params: bytes) -> None:
        self.ctx.cut = params


class FaultLayer:
    """Everything a served emulator needs below the app: rules, traffic log, timers, outages."""

    def __init__(self, faults: FaultSet, traffic: TrafficLog, clock: Any) -> None:
        self.faults = faults
        self.traffic = traffic
        self.clock = clock
        self.server: "FaultServer | None" = None
        self.scheduler = Scheduler("fault-timers")
        self.stopping = threading.Event()
        self._outage_until = 0.0
        self._listening = True

    def attach(self, server: "FaultServer") -> None:
        self.server = server
        self.scheduler.name = f"fault-timers:{server.effective_port}"
        self.faults.watch(self._rules_changed)  # until stop(): a removed rule ends its outage

    def stop(self) -> None:
        """Cancel every timer and wake every dribbling response, before the server closes."""
        self.stopping.set()
        self.faults.unwatch(self._rules_changed)
        self.scheduler.stop()

    def on_loop(self, thunk: Callable[[], None]) -> None:
        """Run ``thunk`` on the waitress loop thread, the only one that touches sockets."""
        server = self.server
        if server is None or self.stopping.is_set():
            return
        try:
            server.trigger.pull_trigger(thunk)
        except (OSError, ValueError):  # the loop is gone: nothing left to do
            pass

    # -- requests ---------------------------------------------------------------------------------

    def begin(self, channel: HTTPChannel, request: Any) -> _Ctx | None:
        """Log and decide one HTTP request; None for the control API (never faulted).

        Runs for every request, so it only gathers what is at hand: the path is classified and
        the parameters parsed when the log is read or a firing rule needs them, not here."""
        path = request.path or ""
        if path.startswith(CONTROL_PREFIX):
            return None
        verb = request.command.upper()
        raw: str | bytes = request.query or ""
        if verb == "PUT" and request.body_rcv is not None:
            stream = request.get_body_stream()
            pos = stream.tell()
            raw = stream.read()
            stream.seek(pos)
        entry = TrafficEntry(time.time(), self.clock.now(), channel.addr, verb, path, params=raw)
        plan = self.faults.evaluate_request(verb, path)
        if plan is not None:
            entry.rules = plan.fired
            entry.shadowed = plan.shadowed
        return _Ctx(plan, entry, time.monotonic())

    def finish(self, ctx: _Ctx) -> None:
        """Log the request, once: called as its answer starts out, or before its connection closes,
        so a client that has seen the outcome always finds the entry."""
        if ctx.done:
            return
        ctx.done = True
        entry = ctx.entry
        entry.duration_s = time.monotonic() - ctx.t0
        if entry.outcome == "answered" and entry._status is None:
            entry.outcome = "unanswered"
        self.traffic.record(entry)

    def record_bad_http(self, channel: HTTPChannel, request: Any) -> None:
        """A request waitress itself rejected (malformed HTTP): logged with its status."""
        code = getattr(request.error, "code", None)
        # a request line that could not be parsed leaves command and path unset
        verb, path = (getattr(request, "command", None) or "").upper(), getattr(request, "path", None) or ""
        self.traffic.record(TrafficEntry(time.time(), self.clock.now(), channel.addr, verb, path, None, None, None, status=code))

    # -- discovery ----------------------------------------------------------------------------------

    def discovery_hook(self, data: bytes, addr: tuple, reply: bytes | None) -> bytes | None:
        """The discovery responder's fault seam: log the datagram, let a datagram action change the reply."""
        if reply is None:
            return None  # not a discovery request: ignored, as a real device does
        entry = TrafficEntry(time.time(), self.clock.now(), f"{addr[0]}:{addr[1]}", "UDP", "", "discovery", None, None, {})
        plan = self.faults.evaluate(DISCOVERY_INFO)
        if plan is not None:
            entry.rules = plan.fired
            entry.shadowed = plan.shadowed
            action = plan.at("datagram")
            if action is not None:
                reply = action.apply(reply)
                entry.outcome = action.outcome or entry.outcome
        self.traffic.record(entry)
        return reply

    # -- outages (loop thread only) -----------------------------------------------------------------

    def outage(self, duration_s: float, close_open: bool, then: Callable[[], None] | None = None) -> None:
        """Stop listening for ``duration_s``; with ``close_open`` close every open connection too.

        ``then`` runs right after, in the same loop turn: the tripping connection is closed only
        once the listener is gone, so its client cannot reconnect in between.
        """

        def begin() -> None:
            self._outage_begin(duration_s, close_open)
            if then is not None:
                then()

        self.on_loop(begin)

    def _outage_begin(self, duration_s: float, close_open: bool) -> None:
        server = self.server
        if server is None or server.socket is None:
            return
        until = time.monotonic() + duration_s
        self._outage_until = max(self._outage_until, until)
        if self._listening:
            self._listening = False
            host, port = server.socket.getsockname()[:2]
            server.accepting = False
            server.del_channel()
            server.socket.close()  # queued connections get RST; new ones ECONNREFUSED
            fresh = socket.socket(server.family, socket.SOCK_STREAM)
            fresh.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                fresh.bind((host, port))  # hold the port, not listening, until the outage ends
            except OSError as exc:  # pragma: no cover - someone took the port in that microsecond
                log.error("could not keep port %s during the outage: %s", port, exc)
            server._outage_addr = (host, port)
            server.set_socket(fresh)
            log.info("not accepting connections on port %s for %.3fs", port, duration_s)
        if close_open:
            for channel in list(server.active_channels.values()):
                try:
                    channel.handle_close()
                except OSError:
                    pass
        self.scheduler.call_later(until - time.monotonic(), lambda: self.on_loop(self._outage_end))

    def _rules_changed(self) -> None:
        """A rule was removed, changed or switched off: an outage whose rule is gone ends now."""
        if not self._listening:
            self.on_loop(self._outage_recheck)

    def _outage_recheck(self) -> None:
        if self._listening:
            return
        until = self.faults.outage_until()  # the windows of the outage rules still there
        if until >= self._outage_until - 0.25:  # (a rule's window starts a moment before its outage)
            return
        self._outage_until = until
        if until <= time.monotonic():
            log.info("the rule of the outage is gone: accepting connections again")
            self._outage_end()
        else:
            self.scheduler.call_later(until - time.monotonic(), lambda: self.on_loop(self._outage_end))

    def _outage_end(self) -> None:
        server = self.server
        if server is None or self._listening or server.socket is None:
            return
        if time.monotonic() < self._outage_until - 0.001:
            return  # a longer outage began meanwhile; its own timer ends it
        try:
            if server.socket.getsockname()[1] != server._outage_addr[1]:  # bind failed: try again
                server.socket.bind(server._outage_addr)  # still unbound, so it may be bound now
            server.socket.listen(server.adj.backlog)
        except OSError as exc:
            log.error("could not listen again on port %s: %s; retrying in 1 s", server._outage_addr[1], exc)
            self.scheduler.call_later(1.0, lambda: self.on_loop(self._outage_end))
            return
        server.accepting = True
        self._listening = True
        log.info("accepting connections on port %s again", server._outage_addr[1])


class FaultTask(WSGITask):
    """A request task: the app's answer as it comes, or whole, for a response-bytes action to send.

    As the :class:`~emulator.faults.transport.ReplyOut` of that action, it has the app's
    answer in ``body`` and sends it with :meth:`send` or :meth:`dribble`.
    """

    discard = False  # the device acts, the answer is kept from the client (drop/reset, phase response)
    _ctx: _Ctx | None = None  # set while the traffic entry still waits for this answer
    _sniff = False  # the answer goes out as the app writes it: take status and ErrorNumber from that
    body = b""

    _rate: float | None = None  # the reply's bytes per second (a downstream bandwidth cap)

    def get_environment(self) -> dict:
        env = _wsgi_environment(self)
        ctx: _Ctx | None = self.request.fault_ctx
        if ctx is not None and ctx.plan is not None:
            if ctx.plan.in_app:
                env[PLAN_KEY] = ctx.plan
            if ctx.cut is not None:
                _cut_parameters(env, ctx.cut)
        return env

    def execute(self) -> None:
        ctx: _Ctx | None = self.request.fault_ctx
        plan = ctx.plan if ctx is not None else None
        if self.discard or (plan is not None and plan.holds_reply):
            reply = ctx.reply if not self.discard else None
            if reply is None:
                reply = self._call_app()
            elif isinstance(reply, BaseException):
                raise reply  # the app failed while its answer was to be held: as if it failed now
            self._status, self._headers, self.body = reply
            entry = ctx.entry
            entry.status = _status_code(self._status)
            noted = plan.error_number if plan is not None else NOT_NOTED
            entry.error_number = noted if noted is not NOT_NOTED else _error_number(self._headers, self.body)
            if not self.discard:
                self._ctx = ctx
                self._rate = plan.rate_down
                action = plan.at("response-bytes")
                if action is not None:
                    entry.outcome = action.outcome or entry.outcome
                    action.apply(self)
                else:
                    self.send()
            return
        self._ctx = ctx
        self._sniff = True
        _wsgi_execute(self)

    def take_answer(self) -> Any:
        """Run the app now and keep its answer, or the exception it raised (for a held reply)."""
        try:
            return self._call_app()
        except Exception as exc:  # noqa: BLE001 - raised again when the answer is due
            return exc

    def finish(self) -> None:
        if not self.discard:
            _wsgi_finish(self)

    def write(self, data: bytes) -> None:
        ctx = self._ctx
        if ctx is not None:  # the answer starts out: log the request now, before the client can see it
            self._ctx = None
            if self._sniff:
                entry = ctx.entry
                noted = ctx.plan.error_number if ctx.plan is not None else NOT_NOTED
                if noted is not NOT_NOTED:  # the app's own ErrorNumber, before a fault changed its reply
                    entry.status = self.status
                    entry.error_number = noted
                elif not entry.answered(self.status, data):
                    entry.error_number = _error_number(self.response_headers, data)
            self.channel.server.layer.finish(ctx)
        if (
            not self.wrote_header
            and data
            and len(data) == self.content_length
            and len(data) <= ONE_SEND_MAX
            and self.complete
            and self.has_body
        ):
            # waitress's send_bytes is 1, so its write() flushes the head in one send() and the body
            # in another, and the client often reads them apart; the whole answer is here, so both
            # go in one. (A streamed answer, a bodiless one, or the head alone before a paced body
            # (slow_body, bandwidth) takes waitress's path.)
            head = self.build_response_header()
            self.wrote_header = True
            self.content_bytes_written += len(data)
            self.channel.write_soon(head + data)
            return
        _wsgi_write(self, data)

    # -- the ReplyOut of a response-bytes action -----------------------------------------------------

    def send(self, upto: int | None = None) -> None:
        self._prepare(len(self.body))
        body = self.body
        if upto is not None:
            self.close_on_finish = True
            body = body[:upto]
        if self._rate is not None:
            self._paced(body, self._rate, self._head_size() / self._rate)
        else:
            self.write(body)

    def dribble(self, bytes_per_s: float) -> None:
        self._prepare(len(self.body))
        if self._rate is not None and self._rate < bytes_per_s:  # the link is slower than the server
            self._paced(self.body, self._rate, self._head_size() / self._rate)
        else:
            self._paced(self.body, bytes_per_s, 0.0)

    def _paced(self, body: bytes, bytes_per_s: float, head_wait_s: float) -> None:
        """The headers after ``head_wait_s``, then the body at ``bytes_per_s`` (holds this worker)."""
        stopping = self.channel.server.layer.stopping
        if head_wait_s and (stopping.wait(head_wait_s) or not self.channel.connected):
            self.close_on_finish = True
            return
        self.write(b"")
        self._flush()
        chunk = max(1, int(bytes_per_s * 0.05))
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            if stopping.wait(len(piece) / bytes_per_s) or not self.channel.connected:
                self.close_on_finish = True
                return
            self.write(piece)
            self._flush()

    def _head_size(self) -> int:
        """About how many bytes the status line and headers take on the wire."""
        return 11 + len(self.status) + sum(len(k) + len(v) + 4 for k, v in self.response_headers) + 2

    # -- helpers ------------------------------------------------------------------------------------

    def _call_app(self) -> tuple[str, list[tuple[str, str]], bytes]:
        """The app's whole answer, not sent."""
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, list(headers)
            return lambda data: None

        app_iter = self.channel.server.application(self.get_environment(), start_response)
        try:
            body = b"".join(app_iter)
        finally:
            if hasattr(app_iter, "close"):
                app_iter.close()
        return captured.get("status", "500 Internal Server Error"), captured.get("headers", []), body

    def _prepare(self, length: int) -> None:
        self.status = self._status
        self.response_headers = [h for h in self._headers if h[0].lower() != "content-length"]
        self.response_headers.append(("Content-Length", str(length)))
        self.content_length = length
        self.complete = True

    def _flush(self) -> None:
        channel = self.channel
        with channel.outbuf_lock:
            channel._flush_exception(channel._flush_some, do_close=False)


class _Connection:
    """The :class:`~emulator.faults.transport.Connection` of one request: what a connection-stage
    action can do to it. Every call that ends the request logs it first."""

    __slots__ = ("channel", "request", "ctx", "layer")

    def __init__(self, channel: "FaultChannel", request: Any, ctx: _Ctx) -> None:
        self.channel = channel
        self.request = request
        self.ctx = ctx
        self.layer: FaultLayer = channel.server.layer

    def hang(self, max_s: float) -> None:
        channel, layer = self.channel, self.layer
        layer.finish(self.ctx)
        channel._take_off()
        layer.scheduler.call_later(max_s, lambda: layer.on_loop(lambda: channel._close_now(False)))
        channel.server.pull_trigger()  # poll again: a hung socket must notice its client leaving

    def close(self, reset: bool) -> None:
        channel = self.channel
        self.layer.finish(self.ctx)
        channel._take_off()
        self.layer.on_loop(lambda: channel._close_now(reset))

    def call_device(self) -> None:
        task = self.channel.task_class(self.channel, self.request)
        task.discard = True
        try:
            task.service()
        except Exception:
            log.exception("device call before the connection was cut failed")

    def outage(self, duration_s: float, close_open: bool) -> None:
        channel = self.channel
        self.layer.finish(self.ctx)
        channel._take_off()
        self.layer.outage(duration_s, close_open, then=lambda: channel._close_now(False))


class FaultRequest(HTTPRequestParser):
    """waitress's request with a ``fault_ctx`` slot that reads None until the layer sets it
    (``getattr(request, "fault_ctx", None)`` on a missing attribute raises and swallows an
    AttributeError: about a microsecond on every request)."""

    fault_ctx: _Ctx | None = None


class FaultChannel(HTTPChannel):
    """One connection; decides each request's fate before the app sees it."""

    task_class = FaultTask
    parser_class = FaultRequest
    muted = False  # hung or being aborted: input is read and discarded

    def received(self, data: bytes) -> bool:
        if self.muted:
            return False
        return _http_received(self, data)

    def service(self) -> None:
        if not self.requests:  # cancelled while a latency timer was pending
            return
        request = self.requests[0]
        layer: FaultLayer = self.server.layer
        ctx: _Ctx | None = request.fault_ctx
        if ctx is None:
            if request.error:  # malformed HTTP: waitress answers it; logged before the answer goes out
                layer.record_bad_http(self, request)
                _http_service(self)
                return
            ctx = layer.begin(self, request)
            if ctx is None:
                _http_service(self)
                return
            request.fault_ctx = ctx
            wait = _upstream_wait(request, ctx) if ctx.plan is not None else 0.0
            if wait > 0:
                # Free this worker; a timer puts the channel back on the task queue.
                layer.scheduler.call_later(wait, self._resume)
                return
        plan = ctx.plan
        if plan is not None and plan.reply_delay_s > 0 and ctx.reply is None and plan.at("connection") is None:
            # The app answers now; its answer waits, holding no worker, until a timer sends it.
            ctx.reply = self.task_class(self, request).take_answer()
            layer.scheduler.call_later(plan.reply_delay_s, self._resume)
            return
        try:
            cut = plan.at("connection") if plan is not None else None
            if cut is not None:
                ctx.entry.outcome = cut.outcome or ctx.entry.outcome
                cut.apply(_Connection(self, request, ctx))
            else:
                _http_service(self)
        finally:
            layer.finish(ctx)

    def _resume(self) -> None:
        if not self.requests:
            return
        if self.connected:
            self.server.add_task(self)
            return
        ctx = self.requests[0].fault_ctx  # closed meanwhile (e.g. by a "down")
        if ctx is not None:
            ctx.entry.outcome = "closed"
            self.server.layer.finish(ctx)

    def _take_off(self) -> None:
        """Forget this connection's requests without answering, freeing the worker."""
        with self.requests_lock:
            self.muted = True
            for r in self.requests:
                r.close()
            self.requests = []

    def _close_now(self, rst: bool) -> None:
        """Loop thread only: close, with a TCP reset when ``rst``; a no-op if already closed."""
        if self._fileno is None or self.socket is None:
            return
        if rst:
            try:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            except OSError:
                pass
        self.handle_close()


class FaultServer(TcpWSGIServer):
    """waitress's TCP server with :class:`FaultChannel` connections and a :class:`FaultLayer`."""

    channel_class = FaultChannel
    _outage_addr: tuple[str, int] = ("", 0)

    def __init__(self, application: Callable, layer: FaultLayer, **kw: Any) -> None:
        self.layer = layer
        super().__init__(application, **kw)
        layer.attach(self)


def _upstream_wait(request: Any, ctx: _Ctx) -> float:
    """Carry out the plan's request-bytes stage and say how long the request waits before the app
    reads it: upstream latency, the time its bytes take at an upstream bandwidth cap, a
    request-bytes action's hold; before a connection-stage action the downstream delay too."""
    plan = ctx.plan
    wait = plan.latency_s
    if plan.at("connection") is not None:
        wait += plan.reply_delay_s  # no answer to hold: the client waits, then the connection acts
    action = plan.at("request-bytes")
    if plan.rate_up is not None or action is not None:
        incoming = _RequestIn(request, ctx)
        if plan.rate_up is not None:
            wait += incoming.size / plan.rate_up
        if action is not None:
            ctx.entry.outcome = action.outcome or ctx.entry.outcome
            action.apply(incoming)
            wait += incoming.held
    return wait


def _cut_parameters(env: dict, params: bytes) -> None:
    """Make the app (and a proxy's forward) read ``params`` as the request's parameters."""
    if env.get("CONTENT_LENGTH") not in (None, "", "0"):
        env["wsgi.input"] = io.BytesIO(params)
        env["CONTENT_LENGTH"] = str(len(params))
    else:
        query = params.decode("latin-1")
        env["QUERY_STRING"] = query
        path = env.get("REQUEST_URI", env.get("PATH_INFO", "")).split("?", 1)[0]
        env["REQUEST_URI"] = f"{path}?{query}" if query else path


def _status_code(status: str) -> int | None:
    try:
        return int(status[:3])
    except ValueError:
        return None


def _error_number(headers: list[tuple[str, str]], body: bytes) -> int | None:
    """ErrorNumber of an Alpaca answer (JSON envelope or ImageBytes), without a full parse."""
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    return error_number_of(body, content_type)
