"""Switch through the real alpyca client: boolean and analogue switches, read-only switches,
asynchronous changes on the clock, CancelAsync, DeviceState, NotConnected and InvalidValue."""

from __future__ import annotations

from functools import partial

import pytest
import requests
from alpaca.exceptions import (
    InvalidValueException,
    NotConnectedException,
    NotImplementedException,
)
from alpaca.switch import Switch

from emulator import Emulator
from support import wait_until as _wait_until
from emulator.config import ConfigError

SCALE = 100
SWITCHES = [
    {"name": "Power", "description": "Main power"},
    {"name": "Heater", "kind": "analogue", "min": 0, "max": 100, "step": 5, "value": 20},
    {"name": "Roof closed", "can_write": False, "value": 1},
    # async: 200 s of simulated time = 2 s of wall time at scale 100
    {"name": "Mount", "can_async": True, "async_delay_s": 200},
    {"name": "Dimmer", "kind": "analogue", "min": -1, "max": 1, "step": 0.25, "can_async": True, "async_delay_s": 100},
    # so slow (a minute of wall time) that a test can act on the change in flight without racing it
    {"name": "Slow", "can_async": True, "async_delay_s": 6000},
]


wait_until = partial(_wait_until, timeout=15.0, interval=0.01)


@pytest.fixture
def sw_emu():
    cfg = {"devices": [{"type": "switch", "switches": SWITCHES}, {"type": "switch", "number": 1, "count": 3,
                                                                  "can_rename": False}]}
    with Emulator(cfg, time_scale=SCALE) as emu:
        yield emu


def connected(emu: Emulator, n: int = 0) -> Switch:
    sw = Switch(emu.address, n)
    sw.Connected = True
    return sw


def test_every_member_readable_for_every_switch(sw_emu):
    sw = connected(sw_emu)
    assert sw.InterfaceVersion == 3
    assert sw.MaxSwitch == len(SWITCHES)
    for i, spec in enumerate(SWITCHES):
        assert sw.GetSwitchName(i) == spec["name"]
        assert isinstance(sw.GetSwitchDescription(i), str) and sw.GetSwitchDescription(i)
        assert sw.MinSwitchValue(i) == spec.get("min", 0)
        assert sw.MaxSwitchValue(i) == spec.get("max", 1)
        assert sw.SwitchStep(i) == spec.get("step", 1)
        assert sw.CanWrite(i) is spec.get("can_write", True)
        assert sw.CanAsync(i) is spec.get("can_async", False)
        assert sw.GetSwitchValue(i) == spec.get("value", spec.get("min", 0))
        assert isinstance(sw.GetSwitch(i), bool)
        if spec.get("can_async"):
            assert sw.StateChangeComplete(i) is True
        else:
            with pytest.raises(NotImplementedException):
                sw.StateChangeComplete(i)
    assert sw.GetSwitchDescription(0) == "Main power"


def test_default_bank_is_usable(fast_emu):
    sw = connected(fast_emu)
    n = sw.MaxSwitch
    assert n >= 3
    names = [sw.GetSwitchName(i) for i in range(n)]
    assert len(set(names)) == n
    assert any(not sw.CanWrite(i) for i in range(n))
    assert any(sw.CanAsync(i) for i in range(n))


def test_boolean_switch(sw_emu):
    sw = connected(sw_emu)
    assert sw.GetSwitch(0) is False
    sw.SetSwitch(0, True)
    assert sw.GetSwitch(0) is True and sw.GetSwitchValue(0) == 1.0
    sw.SetSwitchValue(0, 0)
    assert sw.GetSwitch(0) is False
    with pytest.raises(InvalidValueException):
        sw.SetSwitchValue(0, 0.5)  # a boolean switch has no half
    with pytest.raises(InvalidValueException):
        sw.SetSwitchValue(0, 2)


def test_analogue_switch_range_and_step(sw_emu):
    sw = connected(sw_emu)
    assert sw.GetSwitch(1) is True  # 20 is above the minimum
    sw.SetSwitchValue(1, 45)
    assert sw.GetSwitchValue(1) == 45.0
    for bad in (-5, 105, 42, 0.1):
        with pytest.raises(InvalidValueException):
            sw.SetSwitchValue(1, bad)
    assert sw.GetSwitchValue(1) == 45.0  # a rejected value changes nothing
    sw.SetSwitchValue(1, 0)
    assert sw.GetSwitch(1) is False
    sw.SetSwitch(1, True)  # SetSwitch on an analogue switch goes to the maximum
    assert sw.GetSwitchValue(1) == 100.0
    sw.SetSwitchValue(4, -0.75)  # fractional steps below zero land exactly
    assert sw.GetSwitchValue(4) == -0.75
    assert sw.GetSwitch(4) is True


def test_read_only_switch_not_implemented(sw_emu):
    sw = connected(sw_emu)
    assert sw.GetSwitch(2) is True
    for call in (lambda: sw.SetSwitch(2, False), lambda: sw.SetSwitchValue(2, 0),
                 lambda: sw.SetAsync(2, False), lambda: sw.SetAsyncValue(2, 0)):
        with pytest.raises(NotImplementedException):
            call()
    assert sw.GetSwitch(2) is True
    # the simulation can still move it: the roof opened
    state = sw_emu.set_state("switch", 0, SwitchValues={"Roof closed": False})
    assert state["SwitchValues"]["Roof closed"] == 0.0
    assert sw.GetSwitch(2) is False


def test_id_out_of_range_is_invalid_value(sw_emu):
    sw = connected(sw_emu)
    n = sw.MaxSwitch
    for bad in (-1, n, 1000):
        for call in (sw.GetSwitch, sw.GetSwitchValue, sw.GetSwitchName, sw.GetSwitchDescription, sw.MinSwitchValue,
                     sw.MaxSwitchValue, sw.SwitchStep, sw.CanWrite, sw.CanAsync, sw.StateChangeComplete,
                     sw.CancelAsync):
            with pytest.raises(InvalidValueException):
                call(bad)
        for call in (lambda: sw.SetSwitch(bad, True), lambda: sw.SetSwitchValue(bad, 1),
                     lambda: sw.SetSwitchName(bad, "x"), lambda: sw.SetAsync(bad, True),
                     lambda: sw.SetAsyncValue(bad, 1)):
            with pytest.raises(InvalidValueException):
                call()


def test_missing_or_bad_id_is_http_400(sw_emu):
    connected(sw_emu)
    assert requests.get(f"{sw_emu.url}/api/v1/switch/0/getswitch", timeout=5).status_code == 400
    assert requests.get(f"{sw_emu.url}/api/v1/switch/0/getswitch?Id=one", timeout=5).status_code == 400
    r = requests.put(f"{sw_emu.url}/api/v1/switch/0/setswitch", data={"Id": "0", "state": "true"}, timeout=5)
    assert r.status_code == 400  # PUT keys are case-sensitive
    assert requests.get(f"{sw_emu.url}/api/v1/switch/0/getswitch?id=0", timeout=5).json()["ErrorNumber"] == 0


def test_async_change_completes_after_delay(sw_emu):
    sw = connected(sw_emu)
    sw.SetAsync(3, True)
    assert sw.StateChangeComplete(3) is False
    assert sw.GetSwitch(3) is False  # not there yet
    assert wait_until(lambda: sw.StateChangeComplete(3))
    assert sw.GetSwitch(3) is True

    sw.SetAsyncValue(4, 0.5)
    assert sw.StateChangeComplete(4) is False
    assert wait_until(lambda: sw.StateChangeComplete(4))
    assert sw.GetSwitchValue(4) == 0.5
    with pytest.raises(InvalidValueException):
        sw.SetAsyncValue(4, 0.3)  # off-step
    with pytest.raises(InvalidValueException):
        sw.SetAsyncValue(4, 2)  # out of range
    assert sw.StateChangeComplete(4) is True


def test_async_on_sync_only_switch_not_implemented(sw_emu):
    sw = connected(sw_emu)
    with pytest.raises(NotImplementedException):
        sw.SetAsync(0, True)
    with pytest.raises(NotImplementedException):
        sw.SetAsyncValue(1, 50)
    with pytest.raises(NotImplementedException):
        sw.CancelAsync(0)


def test_cancel_async(sw_emu):
    # imported here: alpyca 2.0.x has no OperationCancelledException, and the suite must still
    # collect there (ci/run's alpyca 2.0.4 job runs its alpyca_compat tests)
    from alpaca.exceptions import OperationCancelledException

    sw = connected(sw_emu)
    sw.SetAsync(5, True)
    assert sw.StateChangeComplete(5) is False
    sw.CancelAsync(5)
    with pytest.raises(OperationCancelledException):
        sw.StateChangeComplete(5)
    assert sw.StateChangeComplete(5) is False  # the change never completed
    assert sw.GetSwitch(5) is False
    sw.SetSwitch(5, True)  # a synchronous set clears the cancelled state
    assert sw.StateChangeComplete(5) is True and sw.GetSwitch(5) is True


def test_set_switch_name(sw_emu):
    sw = connected(sw_emu)
    sw.SetSwitchName(0, "Observatory power")
    assert sw.GetSwitchName(0) == "Observatory power"
    assert sw_emu.get_state("switch", 0)["SwitchValues"]["Observatory power"] == 0.0
    sw1 = connected(sw_emu, 1)
    with pytest.raises(NotImplementedException):
        sw1.SetSwitchName(0, "x")
    assert sw1.GetSwitchName(0) == "Switch 0"


def test_devicestate_lists_every_switch(sw_emu):
    sw = connected(sw_emu)
    sw.SetAsync(5, True)
    body = requests.get(f"{sw_emu.url}/api/v1/switch/0/devicestate", timeout=5).json()
    assert body["ErrorNumber"] == 0
    state = {item["Name"]: item["Value"] for item in body["Value"]}
    n = len(SWITCHES)
    expected = [f"GetSwitch{i}" for i in range(n)] + [f"GetSwitchValue{i}" for i in range(n)]
    expected += ["StateChangeComplete3", "StateChangeComplete4", "StateChangeComplete5", "TimeStamp"]
    assert [item["Name"] for item in body["Value"]] == expected
    assert state["GetSwitchValue1"] == 20.0 and state["GetSwitch2"] is True
    assert state["StateChangeComplete5"] is False and state["StateChangeComplete4"] is True
    with pytest.raises(NotConnectedException):
        Switch(sw_emu.address, 1).DeviceState


def test_not_connected(sw_emu):
    sw = Switch(sw_emu.address, 0)
    with pytest.raises(NotConnectedException):
        sw.MaxSwitch
    for call in (sw.GetSwitch, sw.GetSwitchValue, sw.GetSwitchName, sw.GetSwitchDescription, sw.MinSwitchValue,
                 sw.MaxSwitchValue, sw.SwitchStep, sw.CanWrite, sw.CanAsync, sw.StateChangeComplete, sw.CancelAsync):
        with pytest.raises(NotConnectedException):
            call(0)
    for call in (lambda: sw.SetSwitch(0, True), lambda: sw.SetSwitchValue(0, 1), lambda: sw.SetSwitchName(0, "x"),
                 lambda: sw.SetAsync(3, True), lambda: sw.SetAsyncValue(4, 0)):
        with pytest.raises(NotConnectedException):
            call()


def test_set_state_by_name_and_index(sw_emu):
    sw = connected(sw_emu)
    sw_emu.set_state("switch", 0, SwitchValues={"Power": True, "1": 65, 4: -1})
    assert sw.GetSwitch(0) is True
    assert sw.GetSwitchValue(1) == 65.0
    assert sw.GetSwitchValue(4) == -1.0
    for bad in ({"Nope": 1}, {"9": 1}, {"Heater": 63}, {"Heater": "hot"}):
        with pytest.raises((KeyError, ValueError, TypeError)):
            sw_emu.set_state("switch", 0, SwitchValues=bad)
    assert sw.GetSwitchValue(1) == 65.0  # rejected updates change nothing


def test_count_pads_with_boolean_switches(sw_emu):
    sw = connected(sw_emu, 1)
    assert sw.MaxSwitch == 3
    assert [sw.GetSwitchName(i) for i in range(3)] == ["Switch 0", "Switch 1", "Switch 2"]


def test_reset_restores_names_and_values(sw_emu):
    sw = connected(sw_emu)
    sw.SetSwitchName(0, "Renamed")
    sw.SetSwitchValue(1, 90)
    sw_emu.reset()
    sw = connected(sw_emu)
    assert sw.GetSwitchName(0) == "Power"
    assert sw.GetSwitchValue(1) == 20.0


@pytest.mark.parametrize(
    "switch, message",
    [
        ({"name": "a", "kind": "boolean", "max": 5}, "boolean switch"),
        ({"name": "a", "kind": "analogue", "min": 1, "max": 1}, "greater than min"),
        ({"name": "a", "kind": "analogue", "min": 0, "max": 1, "step": 0.3}, "whole number of steps"),
        ({"name": "a", "kind": "analogue", "min": 0, "max": 10, "value": 11}, "value 11"),
        ({"name": "a", "colour": "red"}, "unknown key"),
    ],
)
def test_bad_switch_config_names_the_problem(switch, message):
    with pytest.raises(ConfigError, match=message) as info:
        Emulator({"devices": [{"type": "switch", "switches": [switch]}]})
    assert "devices[0].switches" in str(info.value)


def test_duplicate_names_and_short_count_rejected():
    with pytest.raises(ConfigError, match="unique"):
        Emulator({"devices": [{"type": "switch", "switches": [{"name": "a"}, {"name": "a"}]}]})
    with pytest.raises(ConfigError, match="count"):
        Emulator({"devices": [{"type": "switch", "count": 1, "switches": [{"name": "a"}, {"name": "b"}]}]})
