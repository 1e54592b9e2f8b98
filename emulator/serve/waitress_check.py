"""A start-up self-check: the private waitress internals the socket layer relies on still exist.

:mod:`emulator.serve.sockets`, :mod:`emulator.serve.tls` and :mod:`emulator.serve.server` (and the
proxy's fast path, ``proxy/passthrough.py``) subclass waitress's channel, task, parser and server and use attributes waitress does not document (its
request list and locks, its flush helpers, the listening socket's setters, the trigger). A waitress
release that renames one would otherwise break the faults in the middle of a rehearsal, as an
AttributeError on a worker thread; this check runs before the first server starts and fails at
once, naming every missing attribute and the waitress version, so an upgrade fails loudly.

Methods and class attributes are looked up on the class. Attributes waitress only sets on an
instance are looked for among the names waitress's own methods of that class use (the code
objects' ``co_names``); the request parser's are checked on a real parsed request.
"""

from __future__ import annotations

import inspect
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from waitress import adjustments, channel, parser, server, task, trigger, wasyncore

#: (owner, attribute, what it is for). Owner is a class; "instance" attributes are set in its code.
CLASS_ATTRIBUTES: tuple[tuple[Any, str, str], ...] = (
    (channel.HTTPChannel, "received", "FaultChannel.received mutes hung connections"),
    (channel.HTTPChannel, "service", "FaultChannel.service plans each request"),
    (channel.HTTPChannel, "handle_close", "closing a connection from the loop thread"),
    (channel.HTTPChannel, "_flush_some", "slow_body and bandwidth flush each piece"),
    (channel.HTTPChannel, "_flush_exception", "slow_body and bandwidth flush each piece"),
    (channel.HTTPChannel, "task_class", "FaultTask serves each request"),
    (channel.HTTPChannel, "parser_class", "FaultRequest carries a request's plan"),
    (channel.HTTPChannel, "handle_read", "TLS decrypts what the socket read"),
    (channel.HTTPChannel, "handle_write", "TLS encrypts what the channel writes"),
    (channel.HTTPChannel, "writable", "TLS keeps writing its own buffer"),
    (channel.HTTPChannel, "send", "TLS encrypts what the channel sends"),
    (task.WSGITask, "execute", "FaultTask.execute takes an answer whole for response-bytes faults"),
    (task.WSGITask, "write", "FaultTask.write logs the request as its answer starts"),
    (task.WSGITask, "finish", "a discarded answer writes nothing"),
    (task.WSGITask, "get_environment", "the plan travels in the WSGI environ"),
    (task.WSGITask, "service", "a device call before a connection is cut"),
    (parser.HTTPRequestParser, "get_body_stream", "the traffic log reads a PUT's form"),
    (parser.HTTPRequestParser, "close", "a hung request is forgotten"),
    (server.TcpWSGIServer, "channel_class", "FaultServer serves FaultChannel connections"),
    (server.TcpWSGIServer, "add_task", "a delayed request goes back on the task queue"),
    (server.TcpWSGIServer, "pull_trigger", "wake the loop for a hung socket"),
    (server.TcpWSGIServer, "del_channel", "refuse and down close the listening socket"),
    (server.TcpWSGIServer, "set_socket", "refuse and down hold the port with a new socket"),
    (server.TcpWSGIServer, "run", "the loop thread"),
    (task.ThreadedTaskDispatcher, "set_thread_count", "the worker threads, closed if the bind fails"),
    (task.ThreadedTaskDispatcher, "shutdown", "stop() ends the worker threads"),
    (trigger.trigger, "pull_trigger", "worker and timer threads hand the loop thread work"),
    (wasyncore.dispatcher, "send", "TLS sends the encrypted bytes"),
    (wasyncore.dispatcher, "connected", "a held answer is dropped when its client left"),
    (wasyncore.dispatcher, "accepting", "refuse and down stop accepting"),
    # the proxy's fast path (proxy/passthrough.py) answers on the loop thread itself
    (channel.HTTPChannel, "write_soon", "the proxy's fast path writes an answer from the loop thread"),
    (channel.HTTPChannel, "send_continue", "the proxy's fast path keeps Expect: 100-continue working"),
    (task.WSGITask, "build_response_header", "the proxy's fast path frames its answer as waitress does"),
    (task.WSGITask, "start", "the proxy's fast path frames its answer as waitress does"),
    (task.WSGITask, "has_body", "the proxy's fast path frames its answer as waitress does"),
    # FaultTask.write sends a small answer's head and body in one send()
    (task.WSGITask, "wrote_header", "a small answer's head and body leave in one send()"),
    (task.WSGITask, "content_bytes_written", "a small answer's head and body leave in one send()"),
)
INSTANCE_ATTRIBUTES: tuple[tuple[Any, str, str], ...] = (
    (wasyncore.dispatcher, "_fileno", "a closed channel is not closed again"),
    (wasyncore.dispatcher, "socket", "reset's SO_LINGER, the outage's listening socket"),
    (channel.HTTPChannel, "requests", "the requests a connection waits to serve"),
    (channel.HTTPChannel, "requests_lock", "taking a hung request off its connection"),
    (channel.HTTPChannel, "outbuf_lock", "slow_body and bandwidth flush each piece"),
    (channel.HTTPChannel, "server", "a connection's server and its fault layer"),
    (channel.HTTPChannel, "addr", "the client's address in the traffic log"),
    (task.WSGITask, "status", "a held answer's status line"),
    (task.WSGITask, "response_headers", "a held answer's headers"),
    (task.WSGITask, "content_length", "a held answer's length"),
    (task.WSGITask, "complete", "a held answer is complete"),
    (task.WSGITask, "close_on_finish", "truncate closes the connection after the answer"),
    (server.BaseWSGIServer, "trigger", "worker and timer threads hand the loop thread work"),
    (server.BaseWSGIServer, "task_dispatcher", "stop() ends the worker threads"),
    (server.BaseWSGIServer, "active_channels", "down closes every open connection"),
    (server.BaseWSGIServer, "effective_port", "the port served"),
    (server.BaseWSGIServer, "family", "refuse and down hold the port with a new socket"),
    (server.BaseWSGIServer, "adj", "the backlog when listening again after an outage"),
    (server.BaseWSGIServer, "application", "a held answer is taken from the app"),
    (channel.HTTPChannel, "close_when_flushed", "the proxy's fast path closes after its answer"),
    (channel.HTTPChannel, "total_outbufs_len", "the proxy's fast path waits for earlier answers to leave"),
    (channel.HTTPChannel, "current_outbuf_count", "the proxy's fast path, as waitress's service does"),
    (channel.HTTPChannel, "sent_continue", "the proxy's fast path keeps Expect: 100-continue working"),
    (channel.HTTPChannel, "request", "the proxy's fast path: the request being received"),
)
#: Keyword arguments of BaseWSGIServer.__init__ that BackgroundServer passes.
SERVER_KEYWORDS = ("map", "dispatcher")
#: Attributes of a parsed request the fault layer reads.
REQUEST_ATTRIBUTES = ("command", "path", "query", "headers", "first_line", "body_rcv", "content_length", "error",
                      # and the proxy's fast path's (proxy/passthrough.py)
                      "completed", "headers_finished", "version", "request_uri", "url_scheme", "proxy_scheme",
                      "proxy_netloc", "fragment")


class WaitressChanged(RuntimeError):
    """The installed waitress lacks internals the socket layer relies on; ``missing`` names them."""

    def __init__(self, waitress_version: str, missing: list[str]) -> None:
        self.waitress_version = waitress_version
        self.missing = missing
        super().__init__(
            f"waitress {waitress_version} lacks internals that emulator/serve/sockets.py relies on: "
            + "; ".join(missing)
            + ". Install a waitress release the emulator was tested with (pyproject.toml: waitress>=3.0,<4) "
            "or adapt emulator/serve/ to this one."
        )


def waitress_version() -> str:
    try:
        return version("waitress")
    except PackageNotFoundError:  # pragma: no cover - waitress imported from a source tree
        return "(unknown version)"


def _name(owner: Any, attribute: str) -> str:
    return f"{owner.__module__}.{owner.__qualname__}.{attribute}"


def _used_in_code(owner: Any, attribute: str) -> bool:
    """Whether waitress's own methods of ``owner`` (and its waitress bases) use ``attribute``."""
    for klass in owner.__mro__:
        if not klass.__module__.startswith("waitress"):
            continue
        for value in vars(klass).values():
            code = getattr(getattr(value, "__func__", value), "__code__", None)
            if code is not None and attribute in code.co_names:
                return True
    return False


def _parsed_request() -> Any:
    request = parser.HTTPRequestParser(adjustments.Adjustments())
    request.received(b"PUT /api/v1/focuser/0/move?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nb=2")
    return request


def missing_internals() -> list[str]:
    """Every internal the socket layer relies on that the installed waitress lacks, with its use."""
    missing = [
        f"{_name(owner, attr)} ({why})" for owner, attr, why in CLASS_ATTRIBUTES if not hasattr(owner, attr)
    ]
    missing += [
        f"{_name(owner, attr)} ({why}; set by waitress on each instance)"
        for owner, attr, why in INSTANCE_ATTRIBUTES
        if not hasattr(owner, attr) and not _used_in_code(owner, attr)
    ]
    try:
        accepted = inspect.signature(server.BaseWSGIServer.__init__).parameters
    except (TypeError, ValueError):  # pragma: no cover - not introspectable
        accepted = {}
    missing += [
        f"{_name(server.BaseWSGIServer, '__init__')}({kw}=...) (BackgroundServer owns the socket map and workers)"
        for kw in SERVER_KEYWORDS
        if kw not in accepted
    ]
    try:
        request = _parsed_request()
    except Exception as exc:  # noqa: BLE001 - any failure here is what the check reports
        missing.append(f"{_name(parser.HTTPRequestParser, 'received')} (parsing a request failed: {exc!r})")
    else:
        missing += [
            f"{_name(parser.HTTPRequestParser, attr)} (read from each parsed request)"
            for attr in REQUEST_ATTRIBUTES
            if not hasattr(request, attr)
        ]
    return missing


def check_waitress() -> None:
    """Raise :class:`WaitressChanged` naming every missing internal and the waitress version."""
    missing = missing_internals()
    if missing:
        raise WaitressChanged(waitress_version(), missing)


_checked = False


def ensure_waitress() -> None:
    """:func:`check_waitress` once per process (a passed check is remembered; a failed one is not)."""
    global _checked
    if not _checked:
        check_waitress()
        _checked = True
