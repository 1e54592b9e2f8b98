"""The traffic log: each request once, with the rules that fired; filters; bounds."""

from __future__ import annotations

import socket
import time

import pytest
import requests
from alpaca.exceptions import NotConnectedException
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator

CONFIG = {"devices": [{"type": "safetymonitor"}, {"type": "camera"}]}


@pytest.fixture
def emu():
    with Emulator(CONFIG) as e:
        yield e


def test_each_request_once_with_its_fields(emu):
    mon = SafetyMonitor(emu.address, 0)
    t0, m0 = time.time(), time.monotonic()
    mon.Connected = True
    put_took = time.monotonic() - m0
    assert mon.IsSafe is True
    requests.get(emu.url + "/management/v1/configureddevices", timeout=5)
    requests.get(emu.url + "/api/v1/safetymonitor/7/issafe", timeout=5)  # a 400
    entries = emu.traffic.entries()
    assert [(e.verb, e.device_type, e.member) for e in entries] == [
        ("PUT", "safetymonitor", "connected"),
        ("GET", "safetymonitor", "issafe"),
        ("GET", "management", "configureddevices"),
        ("GET", "safetymonitor", "issafe"),
    ]
    put = entries[0]
    assert put.params["Connected"] == "True" and "ClientTransactionID" in put.params
    assert put.status == 200 and put.error_number == 0 and put.device_number == 0
    assert put.client.startswith("127.0.0.1:") and t0 - 1 <= put.time <= t0 + put_took + 1
    assert 0 < put.duration_s <= put_took  # the server's share of what the client waited
    assert entries[3].status == 400 and entries[3].device_number == 7
    assert emu.traffic.count(device_type="safetymonitor", member="IsSafe") == 2
    assert emu.traffic.count(verb="put") == 1
    assert emu.traffic.count(device_number=7) == 1
    assert emu.traffic.count(since=time.time() + 60) == 0


def test_error_number_and_fired_rules(emu):
    mon = SafetyMonitor(emu.address, 0)
    mon.Connected = False
    with emu.faults.add(name="cable", match={"member": "issafe"}, action={"kind": "ascom_error", "number": 0x407}, trigger={"after": 1}):
        assert mon.IsSafe is False
        with pytest.raises(NotConnectedException):
            mon.IsSafe
    requests.get(emu.url + "/api/v1/safetymonitor/0/devicestate", timeout=5)  # a real device error
    assert emu.traffic.entries(member="devicestate")[0].error_number == 0x407
    e1, e2 = emu.traffic.entries(member="issafe")
    assert e1.rules == [] and e1.error_number == 0
    assert e2.rules == ["cable"] and e2.error_number == 0x407
    assert emu.traffic.entries(rule="cable") == [e2]


def test_unanswered_requests_are_logged_once(emu):
    emu.faults.add(match={"member": "name"}, action={"kind": "drop"}, trigger={"count": 1})
    emu.faults.add(match={"member": "description"}, action={"kind": "hang", "max_s": 0.2})
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(emu.url + "/api/v1/camera/0/name", timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(emu.url + "/api/v1/camera/0/description", timeout=5)
    assert requests.get(emu.url + "/api/v1/camera/0/name", timeout=5).ok
    outcomes = [(e.member, e.outcome, e.status) for e in emu.traffic.entries()]
    assert outcomes == [("name", "dropped", None), ("description", "hung", None), ("name", "answered", 200)]


def test_latency_logged_once_with_duration(emu):
    emu.faults.add(name="slow", match={"member": "name"}, action={"kind": "latency", "ms": 200})
    requests.get(emu.url + "/api/v1/camera/0/name", timeout=5)
    (entry,) = emu.traffic.entries()
    assert entry.rules == ["slow"] and entry.duration_s >= 0.2


def test_malformed_http_is_logged(emu):
    with socket.create_connection((emu.host, emu.port), timeout=5) as s:
        s.sendall(b"GET /api/v1/camera/0/name HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.1 400")
    (entry,) = emu.traffic.entries()  # logged before the answer went out
    assert entry.status == 400


def test_unparseable_request_line_is_logged(emu):
    with socket.create_connection((emu.host, emu.port), timeout=5) as s:
        s.sendall(b"\x00\x01 not http\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.")
    (entry,) = emu.traffic.entries()
    assert entry.status is not None and 400 <= entry.status < 500 and entry.verb == "" and entry.path == ""


def test_clear_and_bound():
    with Emulator(CONFIG, traffic_maxlen=5) as emu:
        for _ in range(8):
            requests.get(emu.url + "/api/v1/camera/0/name", timeout=5)
        assert len(emu.traffic.entries()) == 5
        emu.traffic.clear()
        assert emu.traffic.entries() == []


def test_control_api_not_logged(emu):
    requests.get(emu.url + "/emulator/v1/traffic", timeout=5)
    requests.get(emu.url + "/emulator/v1/faults", timeout=5)
    assert emu.traffic.count() == 0
