"""The emulator serves, stops cleanly, and keeps instances apart."""

from __future__ import annotations

import socket

import pytest
import requests
from support import wait_for
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator
from emulator.config import ConfigError


def test_serves_on_free_port_and_releases_it():
    with Emulator() as emu:
        port = emu.port
        assert emu.address == f"127.0.0.1:{port}"
        assert requests.get(f"{emu.url}/management/apiversions", timeout=5).json()["Value"] == [1]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/management/apiversions", timeout=2)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))  # the port is free again
    s.close()


def test_two_emulators_never_share_state():
    with Emulator() as a, Emulator() as b:
        assert a.port != b.port
        sa, sb = SafetyMonitor(a.address, 0), SafetyMonitor(b.address, 0)
        sa.Connected = True
        sb.Connected = True
        a.set_state("safetymonitor", IsSafe=False)
        assert sa.IsSafe is False
        assert sb.IsSafe is True
        # transaction counters are per emulator
        ra = requests.get(f"{a.url}/api/v1/safetymonitor/0/issafe", timeout=5).json()
        rb = requests.get(f"{b.url}/api/v1/safetymonitor/0/issafe", timeout=5).json()
        assert ra["ServerTransactionID"] == rb["ServerTransactionID"]


def test_bad_config_names_the_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[devices]]\ntype = "safetymonitor"\nis_safe = "maybe"\n')
    with pytest.raises(ConfigError) as info:
        Emulator(cfg)
    msg = str(info.value)
    assert str(cfg) in msg and "devices[0].is_safe" in msg


def test_unknown_device_type_in_config(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[[devices]]\ntype = "telescop"\n')
    with pytest.raises(ConfigError, match="unknown device type 'telescop'"):
        Emulator(cfg)


def test_duplicate_device_number_rejected():
    with pytest.raises(ConfigError, match="configured twice"):
        Emulator({"devices": [{"type": "focuser", "number": 1}, {"type": "focuser", "number": 1}]})


def test_time_scale_argument_is_validated():
    with pytest.raises(ConfigError, match="time_scale"):
        Emulator(time_scale=0)
    with pytest.raises(ConfigError, match="time_scale"):
        Emulator(time_scale=1e9)


def test_stop_right_after_requests_logs_no_error(caplog):
    """Workers finish before the trigger closes: no 'Bad file descriptor' from waitress."""
    import logging

    caplog.set_level(logging.ERROR)
    for _ in range(5):
        with Emulator() as emu:
            s = requests.Session()
            for _ in range(20):
                s.get(f"{emu.url}/api/v1/safetymonitor/0/issafe", timeout=5)
            s.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


def _report_inherited_sockets(ports: tuple[int, int], conn) -> None:
    """In the child: which of its open fds are sockets bound to the emulator's ports?"""
    import os

    held = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue  # not a socket
        try:
            if s.getsockname()[1:2] and s.getsockname()[1] in ports:
                held.append((fd, s.type.name, s.getsockname()[1]))
        except OSError:
            pass
        finally:
            s.close()
    conn.send(held)
    conn.close()


def test_forked_child_does_not_keep_the_emulator_sockets():
    """A child forked while the emulator serves must not hold its HTTP or discovery socket.

    (Checked from inside the child, so that other processes' traffic cannot disturb the test.)
    """
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    with Emulator(discovery_port=0) as emu:
        child = ctx.Process(target=_report_inherited_sockets, args=((emu.port, emu.discovery_port), writer))
        child.start()
        writer.close()
        assert reader.poll(20), "the child did not report"
        held = reader.recv()
    child.join(10)
    reader.close()
    assert held == [], f"the forked child kept emulator sockets: {held}"


def test_clock_instant_freezes_time_for_one_snapshot():
    """Inside instant() time stands still in that thread only; outside it runs on."""
    import threading
    import time

    from emulator.sim.clock import SimClock

    clock = SimClock(time_scale=1000)
    with clock.instant() as t:
        time.sleep(0.01)
        assert clock.now() == t
        with clock.instant() as inner:  # nested: the same instant
            assert inner == t
        seen = []
        other = threading.Thread(target=lambda: seen.append(clock.now()))
        other.start()
        other.join()
        assert seen[0] > t  # another thread's time is not frozen
    assert clock.now() > t + 5  # 10 ms at scale 1000 = 10 s


def test_devicestate_is_one_instant():
    """At the zenith RA equals sidereal time; within one DeviceState they agree exactly, however
    long the model takes between reading the two (time scale 1000: 1 us apart would show)."""
    from alpaca.telescope import Telescope

    with Emulator({"devices": [{"type": "telescope", "connected": True}]}, time_scale=1000) as emu:
        t = Telescope(emu.address, 0)
        t.SlewToAltAzAsync(0.0, 90.0)
        wait_for(lambda: not t.Slewing, what="zenith slew end", timeout=20)
        for _ in range(20):
            state = {d["Name"]: d["Value"] for d in t.DeviceState}
            apart = abs(state["RightAscension"] - state["SiderealTime"]) % 24.0
            assert min(apart, 24.0 - apart) < 1e-9, state
