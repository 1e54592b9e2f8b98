"""UDP discovery (reference section 5) by unicast to 127.0.0.1; nothing here ever broadcasts."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from emulator import Emulator

REPLY_TIMEOUT = 5.0
SILENCE_TIMEOUT = 0.5


def ask(port: int, message: bytes, timeout: float) -> bytes | None:
    """Send one datagram to 127.0.0.1:port and return the reply, or None if none comes in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(message, ("127.0.0.1", port))
        try:
            data, addr = s.recvfrom(4096)
        except socket.timeout:
            return None
    assert addr == ("127.0.0.1", port)
    return data


@pytest.fixture
def disc_emu():
    with Emulator(discovery_port=0) as e:
        yield e


def test_discovery_answers_alpaca_port(disc_emu):
    port = disc_emu.discovery_port
    assert isinstance(port, int) and port > 0
    reply = ask(port, b"alpacadiscovery1", REPLY_TIMEOUT)
    assert reply is not None, "no discovery reply"
    assert json.loads(reply) == {"AlpacaPort": disc_emu.port}
    # the advertised port really serves Alpaca
    body = requests.get(f"http://127.0.0.1:{json.loads(reply)['AlpacaPort']}/management/apiversions", timeout=5).json()
    assert body["Value"] == [1]


def test_reserved_trailing_bytes_are_allowed(disc_emu):
    # bytes 16..63 of the message are reserved for future expansion
    reply = ask(disc_emu.discovery_port, b"alpacadiscovery1" + b"\x00" * 8, REPLY_TIMEOUT)
    assert reply is not None and json.loads(reply) == {"AlpacaPort": disc_emu.port}


@pytest.mark.parametrize(
    "message",
    [b"hello", b"", b"alpacadiscovery", b"alpacadiscovery2", b"ALPACADISCOVERY1", b"xalpacadiscovery1", b"\xff" * 2000],
)
def test_other_datagrams_are_ignored(disc_emu, message):
    assert ask(disc_emu.discovery_port, message, SILENCE_TIMEOUT) is None
    # and the responder still answers afterwards
    assert ask(disc_emu.discovery_port, b"alpacadiscovery1", REPLY_TIMEOUT) is not None


def test_answers_many_clients(disc_emu):
    for _ in range(20):
        reply = ask(disc_emu.discovery_port, b"alpacadiscovery1", REPLY_TIMEOUT)
        assert reply is not None and json.loads(reply)["AlpacaPort"] == disc_emu.port


def test_two_emulators_have_their_own_discovery():
    with Emulator(discovery_port=0) as a, Emulator(discovery_port=0) as b:
        assert a.discovery_port != b.discovery_port
        assert json.loads(ask(a.discovery_port, b"alpacadiscovery1", REPLY_TIMEOUT))["AlpacaPort"] == a.port
        assert json.loads(ask(b.discovery_port, b"alpacadiscovery1", REPLY_TIMEOUT))["AlpacaPort"] == b.port


def test_discovery_off_by_default_and_port_released():
    with Emulator() as emu:
        assert emu.discovery_port is None
    with Emulator(discovery_port=0) as emu:
        port = emu.discovery_port
    # after stop the UDP port is free again
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
    finally:
        s.close()
