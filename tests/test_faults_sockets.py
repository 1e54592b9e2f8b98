"""Faults below HTTP: hang, drop, reset, refuse, down; isolation; nothing left behind."""

from __future__ import annotations

import socket
import threading
import time
from functools import partial

import pytest
import requests
from alpaca.camera import Camera
from alpaca.safetymonitor import SafetyMonitor
from alpaca.telescope import Telescope

from emulator import Emulator
from support import refused as _refused, wait_for as _wait_for

CONFIG = {"devices": [{"type": "safetymonitor"}, {"type": "camera"}, {"type": "telescope"}]}


@pytest.fixture
def emu():
    with Emulator(CONFIG, threads=4) as e:
        yield e


def _raw(emu: Emulator, request: bytes, timeout: float = 5) -> socket.socket:
    s = socket.create_connection((emu.host, emu.port), timeout=timeout)
    s.sendall(request)
    return s


def _get(path: str, host: str = "x") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


wait_for = partial(_wait_for, timeout=10.0)


def test_hang_gives_the_client_its_read_timeout(emu):
    emu.faults.add(match={"device_type": "camera", "member": "name"}, action={"kind": "hang"})
    t = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        Camera(emu.address, 0).Name  # alpyca's own 5 s timeout
    assert time.monotonic() - t >= 4.5
    (entry,) = emu.traffic.entries(member="name")
    assert entry.outcome == "hung" and entry.status is None
    # the client gave up, so the server closes its side too
    channels = emu._server.server.active_channels
    wait_for(lambda: not channels, what="the hung connection to close")


def test_hang_closes_at_max_s(emu):
    emu.faults.add(match={"member": "name"}, action={"kind": "hang", "max_s": 0.3})
    t = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(emu.url + "/api/v1/camera/0/name", timeout=5)
    assert 0.25 <= time.monotonic() - t < 4


def test_six_hung_camera_calls_do_not_slow_the_telescope(emu):
    """With 4 worker threads, 6 hung calls would starve the server if hangs held workers."""
    emu.faults.add(match={"device_type": "camera"}, action={"kind": "hang"})
    errors: list[BaseException] = []

    # Plain requests for the hung calls: alpyca holds one class-wide lock for the length of each
    # HTTP call, so six alpyca calls in one process would queue behind each other.
    def hung_call() -> None:
        try:
            requests.get(emu.url + "/api/v1/camera/0/name", timeout=5)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=hung_call) for _ in range(6)]
    for th in threads:
        th.start()
    wait_for(lambda: emu.traffic.count(device_type="camera") == 6, what="six hung camera calls")
    scope = Telescope(emu.address, 0)
    t = time.monotonic()
    for _ in range(5):
        assert scope.Name
    elapsed = time.monotonic() - t
    still_hanging = sum(th.is_alive() for th in threads)
    for th in threads:
        th.join(10)
    assert still_hanging == 6  # the telescope answered while every camera call still hung
    assert elapsed < 2.5  # five calls; far below the camera's 5 s timeouts
    assert len(errors) == 6 and all(isinstance(e, requests.exceptions.ReadTimeout) for e in errors)


def test_six_delayed_camera_calls_do_not_slow_the_telescope():
    """Latency, like hang, must hold no worker: with 4 worker threads, 6 delayed camera calls
    would starve the telescope if a delay slept in a worker."""
    errors: list[BaseException] = []
    with Emulator(CONFIG, threads=4) as emu:
        rule = emu.faults.add(match={"device_type": "camera"}, action={"kind": "latency", "ms": 30000})

        def delayed_call() -> None:
            try:
                requests.get(emu.url + "/api/v1/camera/0/name", timeout=40)
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

        threads = [threading.Thread(target=delayed_call) for _ in range(6)]
        for th in threads:
            th.start()
        wait_for(lambda: rule.matched == 6, what="six delayed camera calls")
        scope = Telescope(emu.address, 0)
        for _ in range(5):
            assert scope.Name  # alpyca's 5 s timeout: far below the camera's 30 s delay
        assert all(th.is_alive() for th in threads)  # every camera call still waits
    for th in threads:  # stopping the emulator closed them unanswered
        th.join(10)
    assert not any(th.is_alive() for th in threads)
    assert len(errors) == 6 and all(isinstance(e, requests.exceptions.ConnectionError) for e in errors)


@pytest.mark.parametrize("kind", ["drop", "reset"])
def test_phase_response_device_acts_client_gets_nothing(emu, kind):
    emu.faults.add(match={"member": "connected", "verb": "PUT"}, action={"kind": kind, "phase": "response"})
    mon = SafetyMonitor(emu.address, 0)
    with pytest.raises(requests.exceptions.ConnectionError):
        mon.Connected = True
    assert emu.device("safetymonitor").connected is True  # the device acted
    (entry,) = emu.traffic.entries(member="connected", verb="PUT")
    assert entry.outcome == ("dropped" if kind == "drop" else "reset") and entry.status == 200


@pytest.mark.parametrize("kind", ["drop", "reset"])
def test_phase_request_device_never_sees_it(emu, kind):
    emu.faults.add(match={"member": "connected", "verb": "PUT"}, action={"kind": kind, "phase": "request"})
    with pytest.raises(requests.exceptions.ConnectionError):
        SafetyMonitor(emu.address, 0).Connected = True
    assert emu.device("safetymonitor").connected is False
    (entry,) = emu.traffic.entries(member="connected", verb="PUT")
    assert entry.status is None


def test_drop_closes_and_reset_resets(emu):
    emu.faults.add(match={"member": "name", "device_type": "camera"}, action={"kind": "drop"})
    emu.faults.add(match={"member": "name", "device_type": "telescope"}, action={"kind": "reset"})
    with _raw(emu, _get("/api/v1/camera/0/name")) as s:
        assert s.recv(1024) == b""  # orderly close (FIN), no answer
    with _raw(emu, _get("/api/v1/telescope/0/name")) as s:
        with pytest.raises(ConnectionResetError):
            while s.recv(1024):
                pass


def test_refuse_then_recover_on_the_same_port(emu):
    port = emu.port
    emu.faults.add(match={"member": "name"}, action={"kind": "refuse", "duration_s": 1.0}, trigger={"count": 1})
    mon = SafetyMonitor(emu.address, 0)
    with requests.Session() as keep:  # a keep-alive connection opened before the outage survives a refuse
        assert keep.get(emu.url + "/api/v1/safetymonitor/0/connected", timeout=5).ok
        with pytest.raises(requests.exceptions.ConnectionError):
            mon.Name  # the request that trips it gets no answer
        t0 = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(emu.url + "/api/v1/safetymonitor/0/name", timeout=2)
        assert keep.get(emu.url + "/api/v1/safetymonitor/0/connected", timeout=5).ok

    def back() -> bool:
        try:
            return bool(SafetyMonitor(emu.address, 0).Name)
        except requests.exceptions.ConnectionError:
            return False

    wait_for(back, what="recovery")
    assert time.monotonic() - t0 >= 0.8
    assert emu.port == port


def test_down_also_closes_open_connections(emu):
    emu.faults.add(match={"device_type": "telescope"}, action={"kind": "down", "duration_s": 0.5})
    with _raw(emu, _get("/api/v1/camera/0/name")) as keep:
        got = b""
        while b"ErrorMessage" not in got:  # a whole answer on an open keep-alive connection
            got += keep.recv(4096)
        assert b"200 OK" in got
        with pytest.raises(requests.exceptions.ConnectionError):
            Telescope(emu.address, 0).Name
        keep.settimeout(5)
        assert keep.recv(1024) == b""  # closed by the server
    with pytest.raises(requests.exceptions.ConnectionError):
        Camera(emu.address, 0).Name  # refused
    emu.faults.clear()
    wait_for(lambda: _answers(emu), what="recovery")


def _answers(emu: Emulator) -> bool:
    try:
        return requests.get(emu.url + "/api/v1/camera/0/name", timeout=2).ok
    except requests.exceptions.ConnectionError:
        return False


def test_stop_with_hangs_and_timers_pending_leaves_nothing():
    before = set(threading.enumerate())
    emu = Emulator(CONFIG).start()
    port = emu.port
    emu.faults.add(match={"member": "name"}, action={"kind": "hang", "max_s": 600})
    emu.faults.add(match={"member": "description"}, action={"kind": "latency", "ms": 60000})
    socks = [_raw(emu, _get("/api/v1/camera/0/name")) for _ in range(3)]
    socks.append(_raw(emu, _get("/api/v1/camera/0/description")))
    wait_for(lambda: emu.traffic.count(member="name") == 3, what="hung requests")
    emu.stop()
    for s in socks:
        s.settimeout(5)
        try:
            assert s.recv(1024) == b""
        except ConnectionResetError:
            pass
        s.close()
    wait_for(lambda: not (set(threading.enumerate()) - before), what="threads to end")
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", port))
    probe.close()


def test_stop_during_refuse_releases_the_port():
    emu = Emulator(CONFIG).start()
    port = emu.port
    emu.faults.add(action={"kind": "refuse", "duration_s": 600})
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(emu.url + "/api/v1/camera/0/name", timeout=2)
    wait_for(lambda: _refused(port), what="the outage")
    emu.stop()
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", port))
    probe.listen(1)
    probe.close()

