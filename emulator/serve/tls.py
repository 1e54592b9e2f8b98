"""HTTPS inside waitress: TLS done per connection in memory, under the fault layer's own channel.

Waitress speaks plain TCP only. Handing it an ssl-wrapped socket would put TLS handshakes
(blocking, or raising want-read errors waitress does not expect) into its single I/O loop; a
TLS-terminating proxy in front would add a hop and hide the client's socket from the socket-level
faults. Instead, :class:`TLSChannel` is the fault layer's :class:`FaultChannel` with its wire
replaced by an :class:`ssl.SSLObject` over two memory BIOs::

    socket bytes ─> handle_read ─> incoming BIO ─> SSLObject ─> plaintext ─> received() (HTTP parser)
    app bytes ─> send() ─> SSLObject ─> outgoing BIO ─> _raw_out ─> socket (as the socket takes it)

Everything else is unchanged, so every fault acts on the real TCP connection: ``reset`` sends a
TCP RST, ``drop`` closes without an answer (and without a TLS close_notify), ``truncate`` cuts the
response inside the TLS stream, ``refuse``/``down`` close the listening socket, latency and hangs
hold the channel as over HTTP. The SSLObject is touched by the loop thread (reads, flushes) and by
worker threads (waitress flushes answers from them), so one lock guards it and the raw buffer.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any

from waitress import wasyncore

from emulator.serve.sockets import FaultChannel, FaultServer

log = logging.getLogger(__name__)

_READ_CHUNK = 65536


class TLSChannel(FaultChannel):
    """A fault-layer connection that speaks TLS on its socket."""

    def __init__(self, server: "TLSFaultServer", sock: Any, addr: Any, adj: Any, map: Any = None) -> None:
        self._tls_lock = threading.RLock()
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = server.ssl_context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._raw_out = bytearray()  # encrypted bytes the socket has not taken yet
        self._handshaken = False
        self._closing_in_write = False
        super().__init__(server, sock, addr, adj, map)

    # -- the wire ---------------------------------------------------------------------------------

    def _push_raw(self, do_close: bool = True) -> None:
        """Move encrypted bytes to the socket, as many as it takes now (caller holds the lock)."""
        pending = self._outgoing.read()
        if pending:
            self._raw_out += pending
        while self._raw_out and self.socket is not None:
            sent = wasyncore.dispatcher.send(self, bytes(self._raw_out[:_READ_CHUNK]), do_close=do_close)
            if not sent:
                return
            del self._raw_out[:sent]

    def _decrypt(self) -> bytes:
        """The plaintext the incoming bytes complete (caller holds the lock); raises ssl.SSLError."""
        if not self._handshaken:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            self._handshaken = True
        out = []
        while True:
            try:
                chunk = self._tls.read(_READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the client's close_notify: it will close the socket next
                break
            if not chunk:
                break
            out.append(chunk)
        return b"".join(out)

    # -- waitress's channel, over TLS --------------------------------------------------------------

    def handle_read(self) -> None:
        try:
            raw = wasyncore.dispatcher.recv(self, self.adj.recv_bytes)
        except OSError:
            self.handle_close()
            return
        if not raw:
            self.connected = False  # as waitress: recv() has closed the channel
            return
        with self._tls_lock:
            self._incoming.write(raw)
            try:
                plain = self._decrypt()
            except ssl.SSLError as exc:  # not TLS, a client that rejected our certificate, ...
                log.debug("TLS failure from %s: %s", self.addr, exc)
                self._push_raw()  # the alert, if any
                self.handle_close()
                return
            self._push_raw()
        if plain:
            self.last_activity = time.time()
            self.received(plain)

    def send(self, data: bytes, do_close: bool = True) -> int:
        """Encrypt ``data`` and send what the socket takes; the rest waits in ``_raw_out``.

        Returns how much plaintext was taken: all of it, or nothing while earlier encrypted bytes
        still wait (so waitress keeps its own buffer and retries when the socket is writable).
        """
        with self._tls_lock:
            if self._raw_out:
                self._push_raw(do_close)
                if self._raw_out:
                    return 0
            if not self._handshaken or self.socket is None:
                return 0
            try:
                self._tls.write(data)
            except ssl.SSLError as exc:
                log.debug("TLS write to %s failed: %s", self.addr, exc)
                if do_close:
                    self.handle_close()
                return 0
            self._push_raw(do_close)
            return len(data)

    def writable(self) -> bool:
        return bool(self._raw_out) or super().writable()

    def handle_write(self) -> None:
        with self._tls_lock:
            if self._raw_out:
                self._push_raw()
                if self._raw_out:
                    return
        self._closing_in_write = True
        try:
            super().handle_write()
        finally:
            self._closing_in_write = False

    def handle_close(self) -> None:
        # An orderly close after an answer waits until its last encrypted bytes are out; an abort
        # (a fault, an error) closes at once.
        if self._closing_in_write and self._raw_out and self.socket is not None:
            self.will_close = True
            return
        super().handle_close()


class TLSFaultServer(FaultServer):
    """The fault layer's server whose connections speak TLS with ``ssl_context``."""

    channel_class = TLSChannel

    def __init__(self, application: Any, layer: Any, ssl_context: ssl.SSLContext, **kw: Any) -> None:
        self.ssl_context = ssl_context
        super().__init__(application, layer, **kw)
