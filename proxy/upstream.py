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


class ProtocolError(ConnectionError):
    """The upstream's answer is not HTTP/1.x as framed."""


def request_bytes(method: str, uri: str, host_header: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """One request as it goes upstream: ``host_header`` is the whole ``Host: ...\\r\\n`` line."""
    lines = [f"{method} {uri} HTTP/1.1\r\n", host_header]
    lines += [f"{k}: {v}\r\n" for k, v in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    data = "".join(lines).encode("latin-1")
    return data + body if body else data


#: Header lines seen, parsed: an upstream sends the same few again and again (bounded).
_LINES: dict[str, tuple[str, str, str]] = {}
_LINES_MAX = 512


class AnswerReader:
    """One answer parsed from the bytes as they come (``feed``), whoever reads the socket.

    The blocking client and the proxy's loop-thread path share it, so both frame answers alike:
    Content-Length, chunked, or to the close; no body for HEAD, 1xx, 204 and 304; ``1xx``
    interim answers (but 101) are skipped. Once :attr:`done`, ``answer`` is the answer with its
    body (chunks joined), ``keep`` says whether the connection may carry another request and
    ``leftover`` holds bytes read past the answer.
    """

    __slots__ = ("method", "buf", "answer", "keep", "leftover", "done", "_mode", "_need", "_parts", "_pos")

    def __init__(self, method: str) -> None:
        self.method = method
        self.buf: bytes | bytearray = b""
        self._pos = 0
        self.answer: Answer | None = None
        self.keep = False
        self.leftover = b""
        self.done = False
        self._mode = "head"  # head | length | chunk-size | chunk-data | trailers | close
        self._need = 0
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> bool:
        """Take the next bytes (b"": the upstream closed); True once the answer is whole.
        ConnectionResetError when the upstream closed before it was, ProtocolError for bytes
        that are not an HTTP/1.x answer."""
        buf = self.buf
        if not data:
            if self._mode == "close":
                return self._finish(buf[self._pos:], b"")
            raise ConnectionResetError("the upstream closed the connection")
        if not buf:
            if self._mode == "head":  # the usual case: the head (and often the body) in one read
                end = data.find(b"\r\n\r\n")
                if end >= 0:
                    self._head(data[:end].decode("latin-1"))
                    if self._mode == "length":
                        stop = end + 4 + self._need
                        if len(data) >= stop:
                            return self._finish(data[end + 4 : stop], data[stop:])
                    self.buf, self._pos = data, end + 4
                    return self._run()
            buf = data  # no copy
        else:
            if type(buf) is bytes:
                buf = bytearray(buf)
            buf += data  # amortised: a large answer in many reads is copied once
        self.buf = buf
        return self._run()

    def _run(self) -> bool:
        """Parse on from ``_pos`` as far as ``buf`` goes."""
        buf, pos = self.buf, self._pos
        while True:
            mode = self._mode
            if mode == "length":
                end = pos + self._need
                if len(buf) < end:
                    break
                return self._finish(buf[pos:end], buf[end:])
            if mode == "chunk-data":
                end = pos + self._need
                if len(buf) < end + 2:
                    break
                self._parts.append(bytes(buf[pos:end]))
                pos = end + 2
                self._mode = "chunk-size"
                continue
            if mode == "close":
                break
            marker = b"\r\n\r\n" if mode == "head" else b"\r\n"
            at = buf.find(marker, pos)
            if at < 0:
                if len(buf) - pos > _MAX_HEAD:
                    raise ProtocolError(f"an answer line or header block longer than 64 KiB ({mode})")
                break
            line, pos = buf[pos:at], at + len(marker)
            if mode == "head":
                self._head(bytes(line).decode("latin-1"))
            elif mode == "chunk-size":
                size_text = bytes(line).split(b";")[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"a chunk size that is not hex: {size_text[:20]!r}") from None
                self._mode, self._need = ("chunk-data", size) if size else ("trailers", 0)
            elif not line:  # trailers, up to the empty line
                return self._finish(b"".join(self._parts), buf[pos:])
        self._pos = pos
        return False

    def _head(self, head: str) -> None:
        known = _HEADS.get(head)
        if known is None:
            known = _parse_head(head)
            if len(_HEADS) >= _HEADS_MAX:
                _HEADS.clear()
            _HEADS[head] = known
        if known is _INTERIM:
            return  # 100 Continue and other interim answers: the real one follows (mode stays "head")
        status, reason, headers, length, chunked, close = known
        self.answer = Answer(status, reason, list(headers), b"")
        self.keep = not close
        if self.method == "HEAD" or status in (204, 304) or status < 200:
            self._mode, self._need = "length", 0
        elif chunked:
            self._mode = "chunk-size"
        elif length is not None:
            self._mode, self._need = "length", length
        else:
            self._mode, self.keep = "close", False

    def _finish(self, body: bytes | bytearray, leftover: bytes | bytearray) -> bool:
        self.answer.body = body if type(body) is bytes else bytes(body)
        self.leftover = bytes(leftover)
        self.buf = b""
        self.done = True
        return True


_INTERIM: tuple = ()
#: Whole answer heads seen, parsed: the same head comes back for every read of a member within
#: a second (its Date), so most answers are parsed by one lookup (bounded).
_HEADS: dict[str, tuple] = {}
_HEADS_MAX = 256


def _parse_head(head: str) -> tuple:
    """(status, reason, headers, Content-Length or None, chunked, close) of an answer head, or
    ``_INTERIM`` for a 1xx answer that another follows."""
    status_line, _, rest = head.partition("\r\n")
    version, _, tail = status_line.partition(" ")
    code_text, _, reason = tail.partition(" ")
    if not version.startswith("HTTP/1.") or not code_text.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    status = int(code_text)
    if status < 200 and status != 101:
        return _INTERIM
    headers: list[tuple[str, str]] = []
    length = None
    chunked = False
    close = version == "HTTP/1.0"
    lines = _LINES
    for line in rest.split("\r\n") if rest else ():
        parsed = lines.get(line)
        if parsed is None:
            name, sep, value = line.partition(":")
            if not sep:
                raise ProtocolError(f"a header line without a colon: {line[:80]!r}")
            name = name.strip()
            parsed = (name, value.strip(), name.lower())
            if len(lines) >= _LINES_MAX:
                lines.clear()
            lines[line] = parsed
        name, value, low = parsed
        if low == "content-length":
            if not value.isdigit():
                raise ProtocolError(f"Content-Length {value!r}")
            length = int(value)
        elif low == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif low == "connection":
            tokens = {t.strip().lower() for t in value.split(",")}
            close = "close" in tokens or (close and "keep-alive" not in tokens)
        headers.append((name, value))
    return status, reason, tuple(headers), length, chunked, close


class _Conn:
    """One keep-alive connection and the bytes read past the last answer."""

    __slots__ = ("sock", "buf")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Upstream:
    """Sends requests to ``host:port``; each thread keeps its own keep-alive connection."""

    def __init__(self, host: str, port: int, timeout_s: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.host_header = f"Host: {host}:{port}\r\n" if ":" not in host else f"Host: [{host}]:{port}\r\n"
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
        conn.sock.sendall(request_bytes(method, uri, self.host_header, headers, body))
        reader = AnswerReader(method)
        recv = conn.sock.recv
        while not reader.feed(recv(65536)):
            pass
        conn.buf = reader.leftover
        return reader.answer, reader.keep

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
