"""Discovery faults through the responder's reply seam: garbage and silence."""

from __future__ import annotations

import json
import socket

import pytest

from emulator import Emulator


def _discover(port: int, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(b"alpacadiscovery1", ("127.0.0.1", port))
        try:
            return s.recvfrom(1024)[0]
        except socket.timeout:
            return None


@pytest.fixture
def emu():
    with Emulator({"devices": [{"type": "camera"}]}, discovery_port=0) as e:
        yield e


def test_discovery_garbage(emu):
    assert json.loads(_discover(emu.discovery_port, 5)) == {"AlpacaPort": emu.port}
    rule = emu.faults.add(match={"device_type": "discovery"}, action={"kind": "discovery_garbage"})
    reply = _discover(emu.discovery_port, 5)
    with pytest.raises(ValueError):
        json.loads(reply)
    assert rule.fired == 1
    kinds = [(e.device_type, e.verb, e.outcome) for e in emu.traffic.entries(device_type="discovery")]
    assert kinds == [("discovery", "UDP", "answered"), ("discovery", "UDP", "garbage")]


def test_discovery_silent_then_back(emu):
    emu.faults.add(action={"kind": "discovery_silent"}, trigger={"count": 1})
    assert _discover(emu.discovery_port, 0.5) is None
    assert json.loads(_discover(emu.discovery_port, 5)) == {"AlpacaPort": emu.port}


def test_http_rules_leave_discovery_alone(emu):
    emu.faults.add(action={"kind": "drop"})  # every HTTP request, but not discovery
    assert json.loads(_discover(emu.discovery_port, 5)) == {"AlpacaPort": emu.port}
