"""The way to the upstream Alpaca server: keep-alive HTTP/1.1 connections, one per worker thread.

A small HTTP/1.1 client of its own rather than ``http.client``: the proxy forwards bytes and
needs only a request line, headers, a body and the answer's framing (Content-Length, chunked,
or to the close), while ``http.client`` parses every answer's headers with the email package,
which costs more CPU per request than the rest of the proxy's forwarding (the budget is 1.2x a
direct request). A pooled connection the upstream has closed while idle is noticed before it
is reused (its socket reads as at end of file) and replaced, so no request is sent on a dead
connection and nothing has to be re-sent. ``1xx`` interim answers are skipped.
"""

from __future__ import annotations

import select
import socket
import threading
from dataclasses import dataclass

#: Headers that belong to one connection, not to the request or answer (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "content-length", "host", "expect"}
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


_MAX_HEAD = 65536


class _Conn:
    """One keep-alive connection and the bytes read past the last answer."""

    __slots__ = ("sock", "buf")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("the upstream closed the connection")
        self.buf += data

    def read_until(self, marker: bytes) -> bytes:
        while True:
            at = self.buf.find(marker)
            if at >= 0:
                out, self.buf = self.buf[:at], self.buf[at + len(marker):]
                return out
            if len(self.buf) > _MAX_HEAD:
                raise ProtocolError("an answer line or header block longer than 64 KiB")
            self._more()

    def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_close(self) -> bytes:
        chunks = [self.buf]
        self.buf = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class ProtocolError(ConnectionError):
    """The upstream's answer is not HTTP/1.x as framed."""


class Upstream:
    """Sends requests to ``host:port``; each thread keeps its own keep-alive connection."""

    def __init__(self, host: str, port: int, timeout_s: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._host_header = f"Host: {host}:{port}\r\n" if ":" not in host else f"Host: [{host}]:{port}\r\n"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: set[_Conn] = set()
        self._closed = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _connection(self) -> _Conn:
        conn: _Conn | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.buf or _closed_by_peer(conn.sock)):
            self._drop(conn)
            conn = None
        if conn is None:
            with self._lock:
                if self._closed:
                    raise ConnectionRefusedError("the proxy is stopping")
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            with self._lock:
                self._all.add(conn)
            self._local.conn = conn
        return conn

    def _drop(self, conn: _Conn) -> None:
        conn.close()
        with self._lock:
            self._all.discard(conn)
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def request(self, method: str, uri: str, headers: dict[str, str], body: bytes | None) -> Answer:
        """One exchange; UpstreamFailure when no whole answer came back."""
        try:
            conn = self._connection()
        except ConnectionRefusedError as exc:
            raise UpstreamFailure("refused", str(exc)) from None
        except (socket.timeout, TimeoutError) as exc:
            raise UpstreamFailure("timeout", f"no connection within {self.timeout_s:g} s ({exc})") from None
        except OSError as exc:
            raise UpstreamFailure("unreachable", f"{type(exc).__name__}: {exc}") from None
        try:
            answer, keep = self._exchange(conn, method, uri, headers, body)
        except (socket.timeout, TimeoutError) as exc:
            self._drop(conn)
            raise UpstreamFailure("timeout", f"no answer within {self.timeout_s:g} s ({exc})") from None
        except (ConnectionError, ValueError) as exc:
            self._drop(conn)
            raise UpstreamFailure("reset", f"{type(exc).__name__}: {exc}") from None
        except OSError as exc:
            self._drop(conn)
            raise UpstreamFailure("unreachable", f"{type(exc).__name__}: {exc}") from None
        if not keep:
            self._drop(conn)
        return answer

    def _exchange(self, conn: _Conn, method: str, uri: str, headers: dict[str, str], body: bytes | None) -> tuple[Answer, bool]:
        lines = [f"{method} {uri} HTTP/1.1\r\n", self._host_header]
        lines += [f"{k}: {v}\r\n" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        conn.sock.sendall("".join(lines).encode("latin-1") + (body or b""))
        while True:
            head = conn.read_until(b"\r\n\r\n").decode("latin-1")
            status_line, _, rest = head.partition("\r\n")
            version, _, tail = status_line.partition(" ")
            code_text, _, reason = tail.partition(" ")
            if not version.startswith("HTTP/1.") or not code_text.isdigit():
                raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
            status = int(code_text)
            if status >= 200 or status == 101:
                break  # 100 Continue and other interim answers: the real one follows
        answer_headers: list[tuple[str, str]] = []
        length = None
        chunked = False
        close = version == "HTTP/1.0"
        for line in rest.split("\r\n") if rest else ():
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"a header line without a colon: {line[:80]!r}")
            name, value = name.strip(), value.strip()
            low = name.lower()
            if low == "content-length":
                if not value.isdigit():
                    raise ProtocolError(f"Content-Length {value!r}")
                length = int(value)
            elif low == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif low == "connection":
                tokens = {t.strip().lower() for t in value.split(",")}
                close = "close" in tokens or (close and "keep-alive" not in tokens)
            answer_headers.append((name, value))
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            data = b""
        elif chunked:
            data = self._chunks(conn)
        elif length is not None:
            data = conn.read_exactly(length)
        else:
            data, close = conn.read_to_close(), True
        return Answer(status, reason, answer_headers, data), not close

    @staticmethod
    def _chunks(conn: _Conn) -> bytes:
        parts = []
        while True:
            size_line = conn.read_until(b"\r\n").split(b";")[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise ProtocolError(f"a chunk size that is not hex: {size_line[:20]!r}") from None
            if size == 0:
                while conn.read_until(b"\r\n"):  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(conn.read_exactly(size))
            conn.read_exactly(2)

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
