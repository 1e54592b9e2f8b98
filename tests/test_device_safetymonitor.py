"""SafetyMonitor through the real alpyca client: IsSafe on cue, False while disconnected, DeviceState."""

from __future__ import annotations

import time
from functools import partial

import pytest
import requests
from alpaca.exceptions import NotConnectedException, NotImplementedException
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator
from support import wait_until as _wait_until


wait_until = partial(_wait_until, timeout=10.0, interval=0.01)


@pytest.fixture
def sm_emu():
    with Emulator({"devices": [{"type": "safetymonitor"}, {"type": "safetymonitor", "number": 1, "is_safe": False}]},
                  time_scale=100) as emu:
        yield emu


def test_issafe_follows_simulated_weather(sm_emu):
    sm = SafetyMonitor(sm_emu.address, 0)
    sm.Connected = True
    assert sm.IsSafe is True
    state = sm_emu.set_state("safetymonitor", 0, IsSafe=False)
    assert state["IsSafe"] is False
    assert sm.IsSafe is False
    sm_emu.set_state("safetymonitor", 0, IsSafe=True)
    assert sm.IsSafe is True


def test_configured_unsafe_at_start(sm_emu):
    sm = SafetyMonitor(sm_emu.address, 1)
    sm.Connected = True
    assert sm.IsSafe is False


def test_issafe_false_not_error_while_disconnected(sm_emu):
    sm = SafetyMonitor(sm_emu.address, 0)
    assert sm.Connected is False
    assert sm.IsSafe is False  # no NotConnected: a client must see "unsafe", not an error
    sm.Connected = True
    assert sm.IsSafe is True
    sm.Connected = False
    assert sm.IsSafe is False


def test_async_connect_then_safe(sm_emu):
    sm = SafetyMonitor(sm_emu.address, 0)
    sm.Connect()
    assert wait_until(lambda: not sm.Connecting)
    assert sm.Connected is True
    assert sm.IsSafe is True
    sm.Disconnect()
    assert wait_until(lambda: not sm.Connecting)
    assert sm.Connected is False
    assert sm.IsSafe is False


def test_devicestate(sm_emu):
    sm = SafetyMonitor(sm_emu.address, 0)
    with pytest.raises(NotConnectedException):
        sm.DeviceState
    sm.Connected = True
    state = {item["Name"]: item["Value"] for item in _device_state(sm_emu, 0)}
    assert state["IsSafe"] is True
    assert "TimeStamp" in state
    sm_emu.set_state("safetymonitor", 0, IsSafe=False)
    names = [item["Name"] for item in _device_state(sm_emu, 0)]
    assert names == ["IsSafe", "TimeStamp"]
    assert {item["Name"]: item["Value"] for item in _device_state(sm_emu, 0)}["IsSafe"] is False
    # alpyca's view of the same thing
    assert any(getattr(s, "Name", None) == "IsSafe" or (isinstance(s, dict) and s.get("Name") == "IsSafe")
               for s in sm.DeviceState)


def _device_state(emu: Emulator, n: int) -> list[dict]:
    body = requests.get(f"{emu.url}/api/v1/safetymonitor/{n}/devicestate", timeout=5).json()
    assert body["ErrorNumber"] == 0, body
    return body["Value"]


def test_every_property_readable(sm_emu):
    sm = SafetyMonitor(sm_emu.address, 0)
    sm.Connected = True
    assert sm.InterfaceVersion == 3
    assert isinstance(sm.Name, str) and sm.Name
    assert isinstance(sm.Description, str)
    assert sm.DriverInfo  # alpyca splits DriverInfo at commas into a list
    assert isinstance(sm.DriverVersion, str)
    assert sm.SupportedActions == []
    assert sm.Connecting is False
    assert isinstance(sm.IsSafe, bool)
    with pytest.raises(NotImplementedException):
        sm.CommandBlind("x", False)


def test_set_state_rejects_bad_input(sm_emu):
    with pytest.raises(TypeError):
        sm_emu.set_state("safetymonitor", 0, IsSafe="no")
    with pytest.raises(KeyError):
        sm_emu.set_state("safetymonitor", 0, IsRaining=True)
    assert sm_emu.get_state("safetymonitor", 0)["IsSafe"] is True  # nothing changed


def test_reset_restores_configured_state(sm_emu):
    sm = SafetyMonitor(sm_emu.address, 0)
    sm.Connected = True
    sm_emu.set_state("safetymonitor", 0, IsSafe=False)
    sm_emu.reset()
    assert sm_emu.get_state("safetymonitor", 0)["IsSafe"] is True
