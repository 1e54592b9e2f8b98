"""Forwarding: each request to the upstream as it came, its answer back byte for byte.

    request ─> FaultLayer (socket-level faults, traffic log) ─┬─ no rule, nothing recorded: the loop
                                                              │  thread forwards it (proxy.passthrough)
                                                              └─ else a worker runs the Forwarder:
          ├─ /emulator/...            the control API (Falcon), never forwarded
          ├─ GET /                    the web panel (with the control API on), never forwarded
          ├─ a content-level plan     Falcon app: FaultMiddleware around the forward
          └─ anything else            straight to Upstream.request (no Falcon)

The method, the raw request URI (path and query exactly as sent), the headers but the hop-by-hop
ones, and the body go upstream; the status line, the headers but the hop-by-hop ones, and the
body come back unchanged. Content-level faults act on the upstream's answer as they act on the
emulator's (an ``ascom_error`` is answered by the proxy with the request's ClientTransactionID).

When the upstream gives no answer, the client sees what a real device's failure looks like on
its own connection (the proxy has already accepted it, so it cannot refuse it):

    upstream              the client sees
    refused, reset        its connection reset (TCP RST), no answer
    timeout               no answer for the upstream timeout, then its connection closed (FIN)
    unreachable           its connection reset

and the traffic log names the outcome ``upstream-refused``, ``upstream-timeout``, ...
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from typing import Any, Callable, Iterable

import falcon

from emulator.control import add_control_routes
from emulator.faults.middleware import PLAN_KEY, FaultMiddleware
from emulator.http.protocol import JSON, TEXT, ServerTransactions, envelope, request_params
from emulator.serve.server import BackgroundServer
from emulator.serve.sockets import FaultChannel, FaultServer, FaultTask
from emulator.sim.errors import AscomError
from proxy.messages import answer_headers, request_parts
from proxy.passthrough import PANEL_ROOT, Passthrough
from proxy.upstream import Upstream, UpstreamFailure

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/emulator/"
_LINGER_RST = struct.pack("ii", 1, 0)


class Forwarder:
    """The proxy's WSGI app (see the module docstring for its three ways)."""

    def __init__(self, upstream: Upstream, steerable: Any, control: bool, control_token: str | None,
                 mount: Callable[[falcon.App], None] | None = None) -> None:
        self.upstream = upstream
        self.transactions = ServerTransactions()
        self.falcon_app = self._falcon_app(steerable, control, control_token)
        self.root = PANEL_ROOT if control and mount is not None else None  # the panel's; else forwarded
        if self.root is not None:
            mount(self.falcon_app)  # the web panel: / and /emulator/panel

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if PLAN_KEY in environ or path.startswith(CONTROL_PREFIX) or (path == self.root and environ.get("REQUEST_METHOD") == "GET"):
            return self.falcon_app(environ, start_response)
        answer = self.upstream.request(*request_parts(environ))  # UpstreamFailure: ProxyTask cuts the connection
        headers = answer_headers(answer)
        headers.append(("Content-Length", str(len(answer.body))))
        start_response(f"{answer.status} {answer.reason}", headers)
        return [answer.body]

    # -- the Falcon app: control API, and the forward under content-level faults --------------------

    def _falcon_app(self, steerable: Any, control: bool, token: str | None) -> falcon.App:
        app = falcon.App(middleware=[FaultMiddleware()])
        app.req_options.strip_url_path_trailing_slash = False
        upstream, transactions = self.upstream, self.transactions

        def forward(req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
            answer = upstream.request(*request_parts(req.env))
            resp.status = f"{answer.status} {answer.reason}"
            for name, value in answer_headers(answer):
                if name.lower() == "content-type":
                    resp.content_type = value
                else:
                    resp.append_header(name, value)
            resp.data = answer.body

        app.add_sink(forward, "/")
        if control:
            add_control_routes(app, steerable, token)
        else:
            def no_control(req: falcon.Request, resp: falcon.Response, **_: Any) -> None:
                resp.status, resp.content_type, resp.data = falcon.HTTP_404, TEXT, b"the control API is off"

            app.add_sink(no_control, CONTROL_PREFIX)

        def ascom_error(req: falcon.Request, resp: falcon.Response, ex: AscomError, params: dict) -> None:
            # An ascom_error rule answers for the device, as the emulator does: the envelope, the
            # request's ClientTransactionID echoed, the proxy's own ServerTransactionID.
            client_tx = request_params(req, strict=False).client_transaction_id()
            resp.status, resp.content_type = falcon.HTTP_200, JSON
            resp.data = envelope(client_tx, transactions.next(), has_value=False, error_number=ex.number, error_message=ex.message)

        def upstream_failed(req: falcon.Request, resp: falcon.Response, ex: UpstreamFailure, params: dict) -> None:
            raise ex  # past Falcon, to ProxyTask, which cuts the connection

        def not_allowed(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPMethodNotAllowed, params: dict) -> None:
            if req.path != PANEL_ROOT:
                raise ex  # the control API's own 405
            forward(req, resp)  # a faulted PUT / (or HEAD /): the panel answers GET only

        app.add_error_handler(AscomError, ascom_error)
        app.add_error_handler(falcon.HTTPMethodNotAllowed, not_allowed)
        app.add_error_handler(UpstreamFailure, upstream_failed)
        return app


class ProxyTask(FaultTask):
    """A request task that turns an upstream failure into what the client's connection shows."""

    def execute(self) -> None:
        try:
            super().execute()
        except UpstreamFailure as failure:
            self.cut(failure)

    def cut(self, failure: UpstreamFailure) -> None:
        log.info("%s %s: %s", self.request.command, self.request.path, failure)
        ctx = self.request.fault_ctx
        if ctx is not None:
            ctx.entry.outcome = f"upstream-{failure.kind}"
            ctx.entry.status = None
            self._ctx = None
            self.channel.server.layer.finish(ctx)
        if failure.kind != "timeout":
            try:  # set before the loop thread closes the socket: the close sends a RST
                self.channel.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            except (OSError, AttributeError):
                pass
        self.discard = True  # finish() writes nothing
        self.close_on_finish = True  # the channel closes once this task is done


class ProxyChannel(FaultChannel):
    task_class = ProxyTask

    def received(self, data: bytes) -> bool:
        passthrough = self.server.passthrough
        if passthrough is not None and not self.muted and not self.will_close and passthrough.received(self, data):
            return True
        return FaultChannel.received(self, data)


class ProxyServer(FaultServer):
    """The proxy's waitress server: a request the :class:`~proxy.passthrough.Passthrough` takes
    is forwarded by the loop thread itself; any other goes to a worker, as in the emulator."""

    channel_class = ProxyChannel
    passthrough: Passthrough | None = None  # set by Proxy.start when nothing is recorded
    _loop_thread: int | None = None

    def run(self) -> None:
        self._loop_thread = threading.get_ident()
        super().run()

    def add_task(self, task: Any) -> None:
        passthrough = self.passthrough
        if passthrough is not None and threading.get_ident() == self._loop_thread and passthrough.take(task):
            return
        super().add_task(task)

    def to_worker(self, channel: Any) -> None:
        super().add_task(channel)


class ProxyBackgroundServer(BackgroundServer):
    fault_server_class = ProxyServer
