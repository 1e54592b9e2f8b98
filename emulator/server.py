"""Serving a WSGI app with waitress in a background thread, and stopping it with nothing left.

Waitress runs an asyncore-style loop over its own socket map until the map is empty. To stop,
we hand the loop thread a thunk (through waitress's trigger) that closes every dispatcher in the
map, so the loop ends by itself. The worker threads are shut down and joined first. No socket,
no thread outlives :meth:`BackgroundServer.stop`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer

log = logging.getLogger(__name__)


class BackgroundServer:
    """A waitress server on ``host:port`` (0 = a free port), run in a daemon thread."""

    server_class: type[TcpWSGIServer] = TcpWSGIServer

    def __init__(
        self,
        app: Callable,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        layer: Any = None,
        **adjustments: Any,
    ) -> None:
        """``layer`` (an :class:`emulator.sockets.FaultLayer`) serves through the fault layer."""
        adjustments.setdefault("channel_timeout", 300)
        adjustments.setdefault("connection_limit", 1000)
        adjustments.setdefault("ident", "alpaca-rehearsal")
        adjustments.setdefault("clear_untrusted_proxy_headers", False)
        self.layer = layer
        if layer is not None:
            from emulator.sockets import FaultServer

            self.server = FaultServer(app, layer, host=host, port=port, threads=threads, **adjustments)
        else:
            self.server = self.server_class(app, host=host, port=port, threads=threads, **adjustments)
        self.host = str(self.server.effective_host)
        self.port = int(self.server.effective_port)
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"waitress:{self.port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except Exception:  # pragma: no cover - a crash of the loop itself
            log.exception("server loop on port %s crashed", self.port)
        finally:
            self._stopped.set()

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
