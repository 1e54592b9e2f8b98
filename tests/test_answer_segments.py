"""A small answer leaves in one piece: its head and body arrive as one TCP segment.

A proxy (or any client) that reads the head alone pays another wake-up and read for the body;
waitress sends them in two send() calls unless the task joins them (emulator.serve.sockets).
Counted on the client's socket by the kernel (TCP_INFO's data segments received), so the test
sees what a client sees, with no hook in the server.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

import pytest

from emulator import Emulator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO counters are Linux's")

# struct tcp_info (linux/tcp.h): u64 tcpi_bytes_received at 128, u32 tcpi_data_segs_in at 152.
_TCP_INFO_LEN = 160


def _segments_and_bytes_in(sock: socket.socket) -> tuple[int, int]:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
    if len(info) < _TCP_INFO_LEN:
        pytest.skip("this kernel's tcp_info has no tcpi_data_segs_in")
    (received,) = struct.unpack_from("Q", info, 128)
    (segments,) = struct.unpack_from("I", info, 152)
    return segments, received


def _answer(sock: socket.socket, deadline_s: float = 5.0) -> bytes:
    """One whole HTTP answer (Content-Length framed), read until complete or the deadline."""
    data = b""
    end = time.monotonic() + deadline_s
    while True:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
            if len(body) >= length:
                return data
        left = end - time.monotonic()
        assert left > 0, f"no whole answer within {deadline_s} s: {data!r}"
        sock.settimeout(left)
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-answer: {data!r}"
        data += chunk


@pytest.fixture(scope="module")
def emu():
    with Emulator({"devices": [{"type": "focuser"}, {"type": "camera"}]}, threads=2) as e:
        yield e


REQUESTS = (
    b"GET /api/v1/focuser/0/position?ClientTransactionID=7 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/v1/focuser/0/nonesuch HTTP/1.1\r\nHost: x\r\n\r\n",  # an error answer
    b"GET /management/v1/configureddevices HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /api/v1/focuser/0/connected HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: 14\r\n\r\nConnected=True",
)


def test_a_small_answer_arrives_as_one_segment(emu):
    total = 0
    with socket.create_connection((emu.host, emu.port), timeout=5) as sock:
        for n, request in enumerate(REQUESTS * 3, 1):  # one kept connection: one more segment per answer
            sock.sendall(request)
            answer = _answer(sock)
            assert answer.startswith(b"HTTP/1.1 "), answer
            total += len(answer)
            segments, received = _segments_and_bytes_in(sock)
            assert received == total  # the counters read are the ones meant
            assert segments == n, f"answer {n} ({request.split(b' ')[1]!r}) came in {segments - n + 1} segments"
