"""The layer below HTTP: carrying out fault decisions inside waitress, and logging traffic.

Why inside waitress and not a proxy in front of it. A proxy (asyncio or threads) would copy
every byte twice and add a hop to every request, which the performance budget (server CPU per
request within 1.3x of bare Falcon + waitress, nothing measurable for an empty rule list) does
not allow. Waitress already owns the sockets in one asyncore loop thread; subclassing its
channel (one per connection) and task (one per request) gives the same control with no extra
hop: :class:`FaultChannel` decides, before the app runs, whether a request is delayed, hung,
dropped, reset or triggers an outage; :class:`FaultTask` answers on the device's behalf
(``http_status``, ``ascom_error``) or reshapes the app's answer (``bad_json``, ``truncate``,
``slow_body``, ...). With no rules, the only extra work is classifying the path and appending
one traffic entry.

Threading rules this module keeps:

- Socket state (close, SO_LINGER, the listening socket) changes only on the loop thread; worker
  and timer threads hand it thunks through ``server.trigger.pull_trigger``.
- Latency and hang never hold a worker thread: a delayed request is put back on the task queue
  by a timer; a hung request is taken off the channel, whose socket stays open (its input is
  discarded) until the client leaves or ``max_s`` passes.
- One :class:`Scheduler` thread per emulator, started on first use, runs all timers; it and
  every timer are gone after :meth:`FaultLayer.stop`.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import socket
import struct
import threading
import time
from typing import Any, Callable
from urllib.parse import parse_qsl

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import TcpWSGIServer
from waitress.task import WSGITask

from emulator.faults import DISCOVERY_INFO, FaultSet, Plan, RequestInfo, request_info
from emulator.traffic import TrafficEntry, TrafficLog, envelope_error_number

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/emulator/"
# The overridden waitress methods, called directly rather than through super() on every request.
_wsgi_execute = WSGITask.execute
_wsgi_write = WSGITask.write
_wsgi_finish = WSGITask.finish
_http_received = HTTPChannel.received
_http_service = HTTPChannel.service
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_LINGER_RST = struct.pack("ii", 1, 0)


class Scheduler:
    """Timers on one lazily started thread; callbacks must be quick (they hand work on)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> None:
        when = time.monotonic() + max(0.0, delay_s)
        with self._cv:
            if self._stopped:
                return
            heapq.heappush(self._heap, (when, next(self._seq), fn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    if self._stopped:
                        return
                    if not self._heap:
                        self._cv.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        fn = heapq.heappop(self._heap)[2]
                        break
                    self._cv.wait(delay)
            try:
                fn()
            except Exception:  # a timer must never kill the scheduler
                log.exception("fault timer failed")

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._heap.clear()
            self._cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)


class _Ctx:
    """Per-request state, kept on the waitress request object between the two service passes.

    ``raw`` is the query string (GET) or form body (PUT) as received; ``info`` and ``pairs``
    are derived from the request line and ``raw`` only when an action needs them."""

    __slots__ = ("plan", "entry", "raw", "t0", "done")

    def __init__(self, plan: Plan | None, entry: TrafficEntry, raw: str | bytes, t0: float) -> None:
        self.plan = plan
        self.entry = entry
        self.raw = raw
        self.t0 = t0
        self.done = False

    @property
    def info(self) -> RequestInfo:
        return request_info(self.entry.verb, self.entry.path)

    @property
    def pairs(self) -> list[tuple[str, str]]:
        raw = self.raw
        try:
            return parse_qsl(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw, keep_blank_values=True)
        except ValueError:
            return []


class FaultLayer:
    """Everything a served emulator needs below the app: rules, traffic log, timers, outages."""

    def __init__(self, faults: FaultSet, traffic: TrafficLog, clock: Any, transactions: Any = None) -> None:
        self.faults = faults
        self.traffic = traffic
        self.clock = clock
        self.transactions = transactions
        self.server: "FaultServer | None" = None
        self.scheduler = Scheduler("fault-timers")
        self.stopping = threading.Event()
        self._outage_until = 0.0
        self._listening = True

    def attach(self, server: "FaultServer") -> None:
        self.server = server
        self.scheduler.name = f"fault-timers:{server.effective_port}"

    def stop(self) -> None:
        """Cancel every timer and wake every dribbling response, before the server closes."""
        self.stopping.set()
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
        return _Ctx(plan, entry, raw, time.monotonic())

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
        self.traffic.record(
            TrafficEntry(
                time.time(),
                self.clock.now(),
                channel.addr,
                (request.command or "").upper(),
                request.path or "",
                None,
                None,
                None,
                status=code,
            )
        )

    # -- discovery ----------------------------------------------------------------------------------

    def discovery_hook(self, data: bytes, addr: tuple, reply: bytes | None) -> bytes | None:
        """The discovery responder's fault seam: log the datagram, maybe garble or swallow the reply."""
        if reply is None:
            return None  # not a discovery request: ignored, as a real device does
        entry = TrafficEntry(
            time.time(), self.clock.now(), f"{addr[0]}:{addr[1]}", "UDP", "", "discovery", None, None, {}
        )
        plan = self.faults.evaluate(DISCOVERY_INFO)
        if plan is not None:
            entry.rules = plan.fired
            if plan.action is not None and plan.action.kind == "discovery_garbage":
                reply = plan.action.payload.encode()
                entry.outcome = "garbage"
            elif plan.action is not None and plan.action.kind == "discovery_silent":
                reply = None
                entry.outcome = "silent"
        self.traffic.record(entry)
        return reply

    # -- outages (loop thread only) -----------------------------------------------------------------

    def outage(self, kind: str, duration_s: float, then: Callable[[], None] | None = None) -> None:
        """Stop listening for ``duration_s`` (``down``: close every open connection too).

        ``then`` runs right after, in the same loop turn: the tripping connection is closed only
        once the listener is gone, so its client cannot reconnect in between.
        """

        def begin() -> None:
            self._outage_begin(kind, duration_s)
            if then is not None:
                then()

        self.on_loop(begin)

    def _outage_begin(self, kind: str, duration_s: float) -> None:
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
            log.info("%s: not accepting connections on port %s for %.3fs", kind, port, duration_s)
        if kind == "down":
            for channel in list(server.active_channels.values()):
                try:
                    channel.handle_close()
                except OSError:
                    pass
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
    """A request task that can answer for the device or reshape the app's answer."""

    discard = False  # phase "response" of drop/reset: run the app, send nothing
    _ctx: _Ctx | None = None  # set while the traffic entry still waits for this answer
    _sniff = False  # an unfaulted answer: take status and ErrorNumber from what is written

    def execute(self) -> None:
        ctx: _Ctx | None = self.request.fault_ctx
        action = ctx.plan.action if ctx is not None and ctx.plan is not None else None
        self._ctx = ctx
        if action is None or (action.kind in ("drop", "reset") and not self.discard):
            self._sniff = True
            _wsgi_execute(self)
            return
        kind = action.kind
        entry = ctx.entry
        if kind == "http_status":
            self._answer(_status_line(action.status), [("Content-Type", "text/plain; charset=utf-8")], action.body.encode(), entry)
            return
        if kind == "ascom_error":
            content_type, body = self._ascom_error(ctx, action)
            self._answer("200 OK", [("Content-Type", content_type)], body, entry)
            return
        status, headers, body = self._call_app()
        entry.status = _status_code(status)
        entry.error_number = _error_number(headers, body)
        if self.discard:
            return
        if kind == "truncate":
            keep = int(len(body) * action.fraction)
            self._prepare(status, headers, len(body))
            entry.outcome = "truncated"
            self.close_on_finish = True
            self.write(body[:keep])
        elif kind == "slow_body":
            self._dribble(status, headers, body, action.bytes_per_s)
        else:
            status, headers, body = _mangle(action, status, headers, body)
            self._answer(status, headers, body, entry)

    def finish(self) -> None:
        if not self.discard:
            _wsgi_finish(self)

    def write(self, data: bytes) -> None:
        ctx = self._ctx
        if ctx is not None:  # the answer starts out: log the request now, before the client can see it
            self._ctx = None
            if self._sniff:
                entry = ctx.entry
                if not entry.answered(self.status, data):
                    entry.error_number = _error_number(self.response_headers, data)
            self.channel.server.layer.finish(ctx)
        _wsgi_write(self, data)

    # -- helpers ------------------------------------------------------------------------------------

    def _call_app(self) -> tuple[str, list[tuple[str, str]], bytes]:
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

    def _prepare(self, status: str, headers: list[tuple[str, str]], length: int) -> None:
        self.status = status
        self.response_headers = [h for h in headers if h[0].lower() != "content-length"]
        self.response_headers.append(("Content-Length", str(length)))
        self.content_length = length
        self.complete = True

    def _answer(self, status: str, headers: list[tuple[str, str]], body: bytes, entry: TrafficEntry) -> None:
        self._prepare(status, headers, len(body))
        if entry.status is None or status[:3] != "200":
            entry.status = _status_code(status)
        self.write(body)

    def _ascom_error(self, ctx: _Ctx, action: Any) -> tuple[str, bytes]:
        """The error as the device would send it: JSON, or an ImageBytes error frame (section
        8.6.2) when an ImageArray request asked for ImageBytes."""
        from emulator import images
        from emulator.protocol import Params, envelope

        params = Params("PUT" if ctx.info.verb == "PUT" else "GET", ctx.pairs)
        layer: FaultLayer = self.channel.server.layer
        server_tx = layer.transactions.next() if layer.transactions is not None else 0
        message = action.message or f"fault injected: ErrorNumber 0x{action.number:X}"
        ctx.entry.error_number = action.number
        client_tx = params.client_transaction_id()
        if (ctx.info.member or "").lower() == "imagearray" and images.wants_imagebytes(self.request.headers.get("ACCEPT")):
            return images.IMAGEBYTES, images.imagebytes_error(action.number, message, client_tx, server_tx)
        return "application/json", envelope(client_tx, server_tx, has_value=False, error_number=action.number, error_message=message)

    def _dribble(self, status: str, headers: list[tuple[str, str]], body: bytes, bytes_per_s: float) -> None:
        """Send the headers now and the body at ``bytes_per_s``; this does hold a worker, as a slow server would."""
        self._prepare(status, headers, len(body))
        self.write(b"")
        self._flush()
        chunk = max(1, int(bytes_per_s * 0.05))
        stopping = self.channel.server.layer.stopping
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            if stopping.wait(len(piece) / bytes_per_s) or not self.channel.connected:
                self.close_on_finish = True
                return
            self.write(piece)
            self._flush()

    def _flush(self) -> None:
        channel = self.channel
        with channel.outbuf_lock:
            channel._flush_exception(channel._flush_some, do_close=False)


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
            if request.error:
                _http_service(self)
                layer.record_bad_http(self, request)
                return
            ctx = layer.begin(self, request)
            if ctx is None:
                _http_service(self)
                return
            request.fault_ctx = ctx
            if ctx.plan is not None and ctx.plan.latency_s > 0:
                # Free this worker; a timer puts the channel back on the task queue.
                layer.scheduler.call_later(ctx.plan.latency_s, self._resume)
                return
        action = ctx.plan.action if ctx.plan is not None else None
        kind = action.kind if action is not None else None
        try:
            if kind == "hang":
                ctx.entry.outcome = "hung"
                layer.finish(ctx)
                self._take_off(request)
                layer.scheduler.call_later(action.max_s, lambda: layer.on_loop(lambda: self._close_now(False)))
                self.server.pull_trigger()  # poll again: a hung socket must notice its client leaving
            elif kind in ("drop", "reset"):
                if action.phase == "response":
                    task = self.task_class(self, request)
                    task.discard = True
                    try:
                        task.service()
                    except Exception:
                        log.exception("device call before a %s failed", kind)
                ctx.entry.outcome = "dropped" if kind == "drop" else "reset"
                layer.finish(ctx)
                self._take_off(request)
                layer.on_loop(lambda: self._close_now(kind == "reset"))
            elif kind in ("refuse", "down"):
                ctx.entry.outcome = "refused" if kind == "refuse" else "down"
                layer.finish(ctx)
                self._take_off(request)
                layer.outage(kind, action.duration_s, then=lambda: self._close_now(False))
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

    def _take_off(self, request: Any) -> None:
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


# -- response helpers ------------------------------------------------------------------------------

def _status_code(status: str) -> int | None:
    try:
        return int(status[:3])
    except ValueError:
        return None


def _status_line(code: int) -> str:
    return f"{code} {_REASONS.get(code, 'Fault Injected')}"


def _content_type(headers: list[tuple[str, str]]) -> str:
    for k, v in headers:
        if k.lower() == "content-type":
            return v.lower()
    return ""


def _error_number(headers: list[tuple[str, str]], body: bytes) -> int | None:
    """ErrorNumber of an Alpaca answer (JSON envelope or ImageBytes), without a full parse."""
    if not body:
        return None
    if body[:1] == b"{":
        return envelope_error_number(body)
    if len(body) >= 8 and "imagebytes" in _content_type(headers):
        return struct.unpack_from("<i", body, 4)[0]
    return None


def _mangle(action: Any, status: str, headers: list[tuple[str, str]], body: bytes) -> tuple[str, list, bytes]:
    """The app's answer, broken the way ``action`` says."""
    kind = action.kind
    if kind == "bad_json":
        return status, headers, b"<<not JSON>> " + body[: max(1, len(body) // 2)]
    if kind == "bad_content_type":
        return status, [h for h in headers if h[0].lower() != "content-type"] + [("Content-Type", action.content_type)], body
    if "json" not in _content_type(headers):
        return status, headers, body  # not an envelope (400 text, ImageBytes): nothing to reshape
    try:
        doc = json.loads(body)
    except ValueError:
        return status, headers, body
    if not isinstance(doc, dict):
        return status, headers, body
    if kind == "missing_key":
        doc.pop(action.key, None)
    elif kind == "wrong_type":
        value = doc.get("Value")
        doc["Value"] = [value] if isinstance(value, str) else json.dumps(value) if "Value" in doc else "wrong type"
    elif kind == "wrong_transaction_id":
        doc["ClientTransactionID"] = (int(doc.get("ClientTransactionID") or 0) + 1) % 4294967296
        doc["ServerTransactionID"] = 0
    return status, headers, json.dumps(doc, separators=(",", ":")).encode()
