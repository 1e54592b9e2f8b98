"""UDP discovery responder (reference section 5): ``alpacadiscovery1`` -> ``{"AlpacaPort": N}``.

Bound to the emulator's host (127.0.0.1 by default), so tests discover it by unicast to loopback.
Any other datagram is ignored.
"""

from __future__ import annotations

import json
import logging
import select
import socket
import threading
from typing import Callable

from emulator.serve.server import close_after_fork

log = logging.getLogger(__name__)

DISCOVERY_MESSAGE = b"alpacadiscovery1"
DEFAULT_DISCOVERY_PORT = 32227


class DiscoveryResponder:
    """Answers discovery datagrams on ``host:port`` (port 0 = a free port) in a thread."""

    def __init__(
        self,
        alpaca_port: int,
        host: str = "127.0.0.1",
        port: int = DEFAULT_DISCOVERY_PORT,
        hook: Callable[[bytes, tuple, bytes | None], bytes | None] | None = None,
    ) -> None:
        self.alpaca_port = alpaca_port
        #: ``hook(data, addr, reply) -> reply``: fault injection and traffic logging plug in here.
        self.hook = hook
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self._stop_r, self._stop_w = socket.socketpair()
        close_after_fork(self)
        self._thread = threading.Thread(target=self._serve, name=f"discovery:{self.port}", daemon=True)

    def _close_in_child(self) -> None:
        for s in (self.sock, self._stop_r, self._stop_w):
            s.close()

    def start(self) -> None:
        self._thread.start()

    def reply_for(self, data: bytes, addr: tuple[str, int]) -> bytes | None:
        """The reply to one datagram, or None to stay silent. A seam for fault injection."""
        # Bytes 16..63 are reserved for future expansion (reference 5.5): only the first 16 count.
        reply = json.dumps({"AlpacaPort": self.alpaca_port}).encode() if data.startswith(DISCOVERY_MESSAGE) else None
        if self.hook is not None:
            reply = self.hook(data, addr, reply)
        return reply

    def _serve(self) -> None:
        while True:
            ready, _, _ = select.select([self.sock, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data, addr = self.sock.recvfrom(1024)
            except OSError:
                return
            reply = self.reply_for(data, addr)
            if reply is not None:
                try:
                    self.sock.sendto(reply, addr)
                except OSError as exc:
                    log.warning("discovery reply to %s failed: %s", addr, exc)

    def stop(self) -> None:
        try:
            self._stop_w.send(b"x")
        except OSError:
            pass
        if self._thread.is_alive():
            self._thread.join(5)
        for s in (self.sock, self._stop_r, self._stop_w):
            s.close()
