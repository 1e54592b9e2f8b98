"""The way to the upstream Alpaca server: keep-alive HTTP connections, one per worker thread.

``http.client`` rather than a session library: the proxy forwards bytes, it never needs
redirects, cookies or retries, and each layer a request passes costs latency (the budget is
1.2x a direct request). A pooled connection the upstream has closed while idle is noticed
before it is reused (its socket reads as at end of file) and replaced, so no request is sent
on a dead connection and nothing has to be re-sent.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from dataclasses import dataclass

#: Headers that belong to one connection, not to the request or answer (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "content-length", "host"}
)


class UpstreamFailure(Exception):
    """The upstream gave no (whole) answer. ``kind``: refused, timeout, reset (closed or reset
    before or while answering) or unreachable (name or route errors)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"upstream {kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass
class Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``http://HOST:PORT``) -> (host, port); ValueError says what is wrong."""
    rest = text.strip()
    if rest.startswith("http://"):
        rest = rest[len("http://"):]
    elif "://" in rest:
        raise ValueError(f"upstream {text!r}: only http:// upstreams are served")
    rest = rest.rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"upstream {text!r} must be HOST:PORT, e.g. 127.0.0.1:11111")
    return host.strip("[]"), int(port)


class Upstream:
    """Sends requests to ``host:port``; each thread keeps its own keep-alive connection."""

    def __init__(self, host: str, port: int, timeout_s: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: set[http.client.HTTPConnection] = set()
        self._closed = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None and _closed_by_peer(conn.sock):
            self._drop(conn)
            conn = None
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            with self._lock:
                if self._closed:
                    raise UpstreamFailure("refused", "the proxy is stopping")
                self._all.add(conn)
            self._local.conn = conn
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._all.discard(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def request(self, method: str, uri: str, headers: dict[str, str], body: bytes | None) -> Answer:
        """One exchange; UpstreamFailure when no whole answer came back."""
        conn = self._connection()
        try:
            conn.request(method, uri, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except ConnectionRefusedError as exc:
            self._drop(conn)
            raise UpstreamFailure("refused", str(exc)) from None
        except (socket.timeout, TimeoutError) as exc:
            self._drop(conn)
            raise UpstreamFailure("timeout", f"no answer within {self.timeout_s:g} s ({exc})") from None
        except (http.client.HTTPException, ConnectionError) as exc:
            self._drop(conn)
            raise UpstreamFailure("reset", f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            self._drop(conn)
            raise UpstreamFailure("unreachable", f"{type(exc).__name__}: {exc}") from None
        if resp.will_close:
            self._drop(conn)
        return Answer(resp.status, resp.reason, resp.getheaders(), data)

    def close(self) -> None:
        """Close every pooled connection; later requests fail as refused."""
        with self._lock:
            self._closed = True
            conns, self._all = list(self._all), set()
        for conn in conns:
            conn.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """An idle keep-alive socket that is readable has been closed (or spoken on) by the server."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
