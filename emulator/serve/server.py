"""Serving a WSGI app with waitress in a background thread, and stopping it with nothing left.

Waitress runs an asyncore-style loop over its own socket map until the map is empty. To stop,
we hand the loop thread a thunk (through waitress's trigger) that closes every dispatcher in the
map, so the loop ends by itself. The worker threads are shut down and joined first. No socket,
no thread outlives :meth:`BackgroundServer.stop`.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Callable

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from emulator.serve.sockets import FaultLayer, FaultServer
from emulator.serve.tls import TLSFaultServer
from emulator.serve.waitress_check import ensure_waitress

log = logging.getLogger(__name__)

#: Live servers and responders; a forked child closes their sockets (see close_after_fork).
_HOLDERS: "weakref.WeakSet[Any]" = weakref.WeakSet()


def close_after_fork(holder: Any) -> None:
    """Have forked children close ``holder``'s sockets (it has a ``_close_in_child`` method).

    A child forked while an emulator serves (an AlpacaDevice started with the fork method, say)
    would otherwise keep the listening socket open: a ``refuse`` fault could not free the
    port, and connections would queue, unanswered, on the child's copy.
    """
    _HOLDERS.add(holder)


def _close_all_in_child() -> None:
    for holder in list(_HOLDERS):
        try:
            holder._close_in_child()
        except Exception:  # noqa: BLE001 - a child must start whatever happens here
            pass


os.register_at_fork(after_in_child=_close_all_in_child)


class BackgroundServer:
    """A waitress server on ``host:port`` (0 = a free port), run in a daemon thread."""

    server_class: type[TcpWSGIServer] = TcpWSGIServer
    #: The server class behind the fault layer (the proxy serves its own subclass).
    fault_server_class: type[FaultServer] = FaultServer

    def __init__(
        self,
        app: Callable,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        layer: FaultLayer | None = None,
        ssl_context: Any = None,
        **adjustments: Any,
    ) -> None:
        """``layer`` serves through the fault layer (without it: plain waitress, for benchmarks);
        ``ssl_context`` (an :class:`ssl.SSLContext`, with ``layer``) serves HTTPS (:mod:`emulator.serve.tls`)."""
        ensure_waitress()  # fail loudly, naming what is missing, before a rehearsal depends on it
        adjustments.setdefault("channel_timeout", 300)
        adjustments.setdefault("connection_limit", 1000)
        adjustments.setdefault("ident", "alpaca-rehearsal")
        adjustments.setdefault("clear_untrusted_proxy_headers", False)
        self.layer = layer
        if ssl_context is not None and layer is None:
            raise ValueError("HTTPS is served through the fault layer: give a layer with the ssl_context")
        # Our own socket map and workers: waitress starts both before it binds, and leaves them
        # behind when the bind fails (a port in use), so they are closed here then.
        socket_map: dict = {}
        workers = ThreadedTaskDispatcher()
        workers.set_thread_count(threads)
        kw = dict(host=host, port=port, threads=threads, map=socket_map, dispatcher=workers, **adjustments)
        try:
            if ssl_context is not None:
                self.server = TLSFaultServer(app, layer, ssl_context, **kw)
            elif layer is not None:
                self.server = self.fault_server_class(app, layer, **kw)
            else:
                self.server = self.server_class(app, **kw)
        except BaseException:
            workers.shutdown(timeout=5)
            for dispatcher in list(socket_map.values()):
                try:
                    dispatcher.close()
                except OSError:
                    pass
            raise
        self.host = str(self.server.effective_host)
        self.port = int(self.server.effective_port)
        self._thread: threading.Thread | None = None
        close_after_fork(self)

    def _close_in_child(self) -> None:
        for dispatcher in list(self.server._map.values()):
            sock = getattr(dispatcher, "socket", None)
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"waitress:{self.port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except Exception:  # pragma: no cover - a crash of the loop itself
            log.exception("server loop on port %s crashed", self.port)

    def stop(self, timeout: float = 5.0) -> None:
        """End the worker threads, then close every socket and end the loop thread.

        Workers go first, while the loop still runs: a request being served may still flush
        its answer or pull the trigger, which must not be closed under it.
        """
        if self.layer is not None:
            self.layer.stop()
        self.server.task_dispatcher.shutdown(timeout=timeout)
        if self._thread is None:
            self._close_all()
            return
        if self._thread.is_alive():
            try:
                self.server.trigger.pull_trigger(self._close_all)
            except OSError:  # trigger already closed
                pass
            self._thread.join(timeout)
            if self._thread.is_alive():  # pragma: no cover - should not happen
                log.warning("server loop on port %s did not stop within %.1fs", self.port, timeout)
        self._thread = None

    def _close_all(self) -> None:
        for dispatcher in list(self.server._map.values()):
            try:
                if isinstance(dispatcher, HTTPChannel):
                    dispatcher.handle_close()
                else:
                    dispatcher.close()
            except OSError:
                pass
        self.server._map.clear()
