"""The proxy's loop-thread path (no rule) answers exactly as its worker path (a rule that matches nothing).

Real emulators and proxies on loopback; raw sockets send the requests, so what is compared is
the bytes the client receives (less the Date line and the ServerTransactionID, which differ
from answer to answer). A tiny real HTTP server stands in for upstreams that answer chunked,
to the close, after a 100 Continue, or a few bytes at a time.
"""

from __future__ import annotations

import re
import socket
import threading

import pytest
import requests

from emulator import Emulator
from proxy import Proxy

TIMEOUT = 10
#: A rule that can never match: it keeps every request on the worker path.
NEVER = {"match": {"path": "/never/*"}, "action": {"kind": "drop"}}


def _exchange(port: int, data: bytes, answers: int = 1) -> bytes:
    """Send ``data`` on a fresh connection and read until ``answers`` answers came (or the close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        s.sendall(data)
        got = b""
        while got.count(b"HTTP/1.") < answers or not _whole(got, answers):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


def _whole(got: bytes, answers: int) -> bool:
    """Whether ``got`` holds ``answers`` whole Content-Length framed answers."""
    pos = 0
    for _ in range(answers):
        end = got.find(b"\r\n\r\n", pos)
        if end < 0:
            return False
        m = re.search(rb"Content-Length: (\d+)", got[pos:end])
        pos = end + 4 + (int(m.group(1)) if m else 0)
        if len(got) < pos:
            return False
    return True


def _normal(raw: bytes) -> bytes:
    raw = re.sub(rb"Date: [^\r]*\r\n", b"", raw)
    if b'"ServerTransactionID"' in raw:  # its digits change the length too
        raw = re.sub(rb"Content-Length: \d+", b"Content-Length: N", raw)
    return re.sub(rb'"ServerTransactionID": ?\d+', b'"ServerTransactionID": N', raw)


REQUESTS = [
    # the quick parser's own: a GET as alpyca sends it, odd header casing, no headers at all
    b"GET /api/v1/safetymonitor/0/issafe?ClientID=1&ClientTransactionID=2 HTTP/1.1\r\nHost: x\r\n"
    b"User-Agent: t\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n",
    b"GET /management/apiversions HTTP/1.1\r\nhOsT: x\r\nx-odd-NAME: v \r\n\r\n",
    b"GET /management/v1/description HTTP/1.1\r\n\r\n",
    b"HEAD /management/apiversions HTTP/1.1\r\nHost: x\r\n\r\n",
    # waitress's parser: a form body, HTTP/1.0, a quoted path, a repeated header, an underscore
    b"PUT /api/v1/focuser/0/connected HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 36\r\n\r\nConnected=true&ClientTransactionID=9",
    b"GET /management/apiversions HTTP/1.0\r\nHost: x\r\n\r\n",
    b"GET /api/v1/safetymonitor/0/%69ssafe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /management/apiversions HTTP/1.1\r\nHost: x\r\nAccept: a\r\nAccept: b\r\nX_Under: 1\r\n\r\n",
    # the client closes after the answer; an unknown device; two requests in one write
    b"GET /management/apiversions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /api/v1/nope/0/x HTTP/1.1\r\nHost: x\r\n\r\n",
]
PIPELINED = b"GET /management/apiversions HTTP/1.1\r\nHost: x\r\n\r\nGET /management/v1/description HTTP/1.1\r\nHost: x\r\n\r\n"


def test_both_paths_send_the_client_the_same_bytes():
    with Emulator() as upstream, Proxy(upstream.address) as proxy:
        for data in REQUESTS + [PIPELINED]:
            answers = 2 if data is PIPELINED else 1
            fast = _exchange(proxy.port, data, answers)
            with proxy.faults.add(NEVER):
                slow = _exchange(proxy.port, data, answers)
            assert fast.startswith(b"HTTP/1.") and _normal(fast) == _normal(slow), data
        assert proxy._server.server.passthrough.forwarded == len(REQUESTS) + 2  # the loop thread took every rule-free one
        # the traffic log: the same entry from either path (in order: fast, then slow, per request)
        fields = [(e.verb, e.path, e.status, e.error_number, e.params, e.outcome, e.member) for e in proxy.traffic.entries()]
        assert len(fields) == 2 * (len(REQUESTS) + 2)
        at = 0
        for data in REQUESTS + [PIPELINED]:
            n = 2 if data is PIPELINED else 1
            assert fields[at : at + n] == fields[at + n : at + 2 * n], data
            at += 2 * n
        assert upstream.device("focuser").connected is True


class _OddUpstream:
    """A one-answer-per-connection-at-a-time HTTP server with answers framed as ``kind`` says."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conns = []
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        for c in conns:
            c.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(TIMEOUT)
        buf = b""
        served = 0
        try:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                kind = head.split(b" ")[1].decode().strip("/")
                if kind == "once" and served:  # the keep-alive connection ends just as a request comes
                    return
                served += 1
                body = b'{"Value": "' + kind.encode() * 50 + b'", "ErrorNumber": 0}'
                if kind == "chunked":
                    out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    out += b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7))
                    out += b"0\r\nX-Trailer: 1\r\n\r\n"
                elif kind == "continue":
                    out = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                elif kind == "once":
                    out = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                else:  # "close": no length, the end of the connection ends the body
                    out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + body
                for i in range(0, len(out), 5):  # a few bytes at a time
                    conn.sendall(out[i : i + 5])
                if kind == "close":
                    return
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("kind", ["chunked", "continue", "close"])
def test_odd_framings_reach_the_client_whole_on_both_paths(kind):
    upstream = _OddUpstream()
    try:
        with Proxy(f"127.0.0.1:{upstream.port}") as proxy:
            url = f"{proxy.url}/{kind}"
            with requests.Session() as session:
                fast = [session.get(url, timeout=TIMEOUT) for _ in range(3)]
                with proxy.faults.add(NEVER):
                    slow = [session.get(url, timeout=TIMEOUT) for _ in range(3)]
            for r in fast + slow:
                assert r.status_code == 200 and r.json()["Value"] == kind * 50
                assert r.headers["Content-Length"] == str(len(r.content)) and "Transfer-Encoding" not in r.headers
            assert [e.outcome for e in proxy.traffic.entries()] == ["answered"] * 6
            assert proxy._server.server.passthrough.forwarded == 3
    finally:
        upstream.close()


def test_a_get_crossing_the_upstreams_close_of_a_kept_connection_goes_again_on_a_new_one():
    upstream = _OddUpstream()
    try:
        with Proxy(f"127.0.0.1:{upstream.port}") as proxy, requests.Session() as session:
            for _ in range(3):  # each GET after the first finds its kept connection closed under it
                r = session.get(f"{proxy.url}/once", timeout=TIMEOUT)
                assert r.status_code == 200 and r.json()["Value"] == "once" * 50
            assert [e.outcome for e in proxy.traffic.entries()] == ["answered"] * 3
            # a PUT is never sent twice: the client sees the upstream's reset
            with pytest.raises(requests.exceptions.ConnectionError):
                session.put(f"{proxy.url}/once", data={"a": "1"}, timeout=TIMEOUT)
            assert proxy.traffic.entries()[-1].outcome == "upstream-reset"
    finally:
        upstream.close()


def test_requests_wait_in_order_for_a_free_upstream_connection():
    """A small device takes few connections: the proxy opens at most ``threads`` to it."""
    with Emulator() as upstream, Proxy(upstream.address, threads=2) as proxy:
        upstream.faults.add({"match": {"member": "issafe"}, "action": {"kind": "latency", "ms": 150}})
        url = f"{proxy.url}/api/v1/safetymonitor/0/issafe"
        results: list[int] = []

        def read() -> None:
            results.append(requests.get(url, timeout=TIMEOUT).json()["ErrorNumber"])

        threads = [threading.Thread(target=read) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        assert results == [0] * 6
        assert proxy._server.server.passthrough.forwarded == 6
        assert len({e.client for e in upstream.traffic.entries()}) <= 2  # the proxy's connections
