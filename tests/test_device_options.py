"""Options real drivers differ in, and several devices of one type with different settings."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from alpaca.camera import Camera
from alpaca.exceptions import InvalidValueException, NotImplementedException
from alpaca.filterwheel import FilterWheel
from alpaca.focuser import Focuser
from alpaca.management import configureddevices
from alpaca.observingconditions import ObservingConditions
from alpaca.telescope import Telescope, TelescopeAxes

from emulator import Emulator
from emulator.config import ConfigError, config_from_dict
from support import one_device, wait_for
from test_discovery import REPLY_TIMEOUT, ask

TIMEOUT = 10


def test_several_axis_rate_ranges_per_axis():
    rates = [[{"minimum": 0.0, "maximum": 1.0}, {"minimum": 2.5, "maximum": 4.0}], [{"minimum": 0.5, "maximum": 0.5}], []]
    with one_device("telescope", axis_rates=rates) as emu:
        t = Telescope(emu.address, 0)
        primary = t.AxisRates(TelescopeAxes.axisPrimary)
        assert [(r.Minimum, r.Maximum) for r in primary] == [(0.0, 1.0), (2.5, 4.0)]
        assert t.CanMoveAxis(TelescopeAxes.axisSecondary) and not t.CanMoveAxis(TelescopeAxes.axisTertiary)
        t.Tracking = False
        t.MoveAxis(TelescopeAxes.axisPrimary, -3.0)  # inside the second range, either direction
        t.MoveAxis(TelescopeAxes.axisPrimary, 0.0)
        with pytest.raises(InvalidValueException, match="1 to 2.5|0 to 1, 2.5 to 4"):
            t.MoveAxis(TelescopeAxes.axisPrimary, 2.0)  # in the gap between the ranges
        with pytest.raises(NotImplementedException):
            t.MoveAxis(TelescopeAxes.axisTertiary, 1.0)


def test_axis_rate_ranges_are_checked():
    with pytest.raises(ConfigError, match=r"devices\[0\]\.axis_rates\[0\]\[0\]: .*maximum 1.0 is below minimum 2.0"):
        config_from_dict({"devices": [{"type": "telescope", "axis_rates": [[{"minimum": 2, "maximum": 1}]]}]})


def test_camera_without_a_cooler():
    with one_device("camera", has_cooler=False, width=16, height=16) as emu:
        cam = Camera(emu.address, 0)
        assert cam.CanSetCCDTemperature is False and cam.CanGetCoolerPower is False
        for prop in ("CoolerOn", "CoolerPower", "SetCCDTemperature", "HeatSinkTemperature"):
            with pytest.raises(NotImplementedException):
                getattr(cam, prop)
        assert isinstance(cam.CCDTemperature, float)  # the sensor still reads its temperature
    with pytest.raises(ConfigError, match="can_set_ccd_temperature = true contradicts has_cooler = false"):
        config_from_dict({"devices": [{"type": "camera", "has_cooler": False, "can_set_ccd_temperature": True}]})


def test_camera_named_gains_and_offsets():
    with one_device("camera", gain_mode="index", gains=["Lo", "Hi"], gain=1, offset_mode="index", offsets=["A", "B", "C"], offset=0,
                    width=16, height=16) as emu:
        cam = Camera(emu.address, 0)
        assert cam.Gains == ["Lo", "Hi"] and cam.Gain == 1 and cam.Offsets == ["A", "B", "C"]
        with pytest.raises(NotImplementedException, match="GainMax"):
            cam.GainMin
        with pytest.raises(InvalidValueException):
            cam.Gain = 2


def test_synchronous_focuser_returns_when_the_move_is_over():
    with one_device("focuser", synchronous=True, speed_steps_s=1000.0, time_scale=10) as emu:
        foc = Focuser(emu.address, 0)
        start = foc.Position
        foc.Move(start + 2000)  # 2 simulated seconds: 0.2 s of wall time
        assert foc.IsMoving is False and foc.Position == start + 2000


def test_synchronous_focuser_can_be_halted_by_another_client():
    with one_device("focuser", synchronous=True, speed_steps_s=100.0, time_scale=1) as emu:
        # the other client is plain requests: alpyca holds one process-wide lock for every call
        mover = Focuser(emu.address, 0)
        base = f"{emu.url}/api/v1/focuser/0"
        start = mover.Position
        done = threading.Event()

        def move() -> None:
            mover.Move(start + 10000)  # 100 s unless halted
            done.set()

        thread = threading.Thread(target=move)
        thread.start()
        wait_for(lambda: requests.get(f"{base}/ismoving", timeout=TIMEOUT).json()["Value"], what="the move to start")
        assert not done.is_set()
        halted = requests.put(f"{base}/halt", timeout=TIMEOUT)  # the device lock is not held by the waiting Move
        assert halted.json()["ErrorNumber"] == 0
        assert done.wait(10), "the synchronous Move did not return after Halt"
        thread.join(5)
        assert start <= requests.get(f"{base}/position", timeout=TIMEOUT).json()["Value"] < start + 10000


def test_filterwheel_without_names_or_offsets():
    with one_device("filterwheel", names=["a", "b", "c", "d"], implements_names=False, focus_offsets=None) as emu:
        fw = FilterWheel(emu.address, 0)
        assert fw.Names == ["Filter 1", "Filter 2", "Filter 3", "Filter 4"]
        assert fw.FocusOffsets == [0, 0, 0, 0]
        s = requests.get(f"{emu.url}/simulator/v1/filterwheel/0/xmlprofile", timeout=TIMEOUT).json()["Value"]
        assert "<Key>ImplementsNames</Key><Value>False</Value>" in s and "<Key>ImplementsOffsets</Key><Value>False</Value>" in s


def test_observingconditions_sensors_not_implemented():
    with one_device("observingconditions", sensors=["Temperature", "Pressure"]) as emu:
        oc = ObservingConditions(emu.address, 0)
        assert isinstance(oc.Temperature, float)
        for prop in ("Humidity", "WindSpeed", "SkyQuality"):
            with pytest.raises(NotImplementedException):
                getattr(oc, prop)
        with pytest.raises(NotImplementedException):
            oc.SensorDescription("Humidity")


# -- several devices of one type --------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_focusers():
    cfg = {"devices": [
        {"type": "focuser", "number": 0, "name": "Old focuser", "interface_version": 3, "max_step": 10000, "connected": True},
        {"type": "focuser", "number": 1, "name": "New focuser", "max_step": 60000, "driver_version": "4.2", "connected": True},
        {"type": "safetymonitor", "number": 0},
    ]}
    with Emulator(cfg, discovery_port=0, time_scale=100) as emu:
        yield emu


def test_two_focusers_answer_each_with_its_own_settings(two_focusers):
    old, new = Focuser(two_focusers.address, 0), Focuser(two_focusers.address, 1)
    assert (old.Name, old.InterfaceVersion, old.MaxStep) == ("Old focuser", 3, 10000)
    assert (new.Name, new.InterfaceVersion, new.MaxStep, new.DriverVersion) == ("New focuser", 4, 60000, "4.2")
    assert requests.get(f"{two_focusers.url}/api/v1/focuser/0/devicestate", timeout=TIMEOUT).status_code == 400
    assert requests.get(f"{two_focusers.url}/api/v1/focuser/1/devicestate", timeout=TIMEOUT).json()["ErrorNumber"] == 0
    assert requests.get(f"{two_focusers.url}/api/v1/focuser/2/name", timeout=TIMEOUT).status_code == 400


def test_two_focusers_in_management_setup_and_discovery(two_focusers):
    devices = [d for d in configureddevices(two_focusers.address) if d["DeviceType"] == "Focuser"]
    assert [(d["DeviceNumber"], d["DeviceName"]) for d in devices] == [(0, "Old focuser"), (1, "New focuser")]
    assert devices[0]["UniqueID"] != devices[1]["UniqueID"]
    page = requests.get(f"{two_focusers.url}/setup", timeout=TIMEOUT).text
    assert "/setup/v1/focuser/0/setup" in page and "/setup/v1/focuser/1/setup" in page
    one = requests.get(f"{two_focusers.url}/setup/v1/focuser/1/setup", timeout=TIMEOUT)
    assert one.status_code == 200 and "New focuser" in one.text and "60000" in one.text
    reply = ask(two_focusers.discovery_port, b"alpacadiscovery1", REPLY_TIMEOUT)
    assert reply is not None and str(two_focusers.port) in reply.decode()
    profiles = [requests.get(f"{two_focusers.url}/simulator/v1/focuser/{n}/xmlprofile", timeout=TIMEOUT).json()["Value"] for n in (0, 1)]
    assert "<Key>MaxStep</Key><Value>10000</Value>" in profiles[0] and "<Key>InterfaceVersion</Key><Value>3</Value>" in profiles[0]
    assert "<Key>MaxStep</Key><Value>60000</Value>" in profiles[1]


def test_fault_rules_tell_the_two_focusers_apart(two_focusers):
    with two_focusers.faults.add(match={"device_type": "focuser", "device_number": 1, "member": "maxstep"},
                                 action={"kind": "ascom_error", "number": 0x500, "message": "second focuser broken"}) as rule:
        assert Focuser(two_focusers.address, 0).MaxStep == 10000
        with pytest.raises(Exception, match="second focuser broken"):
            Focuser(two_focusers.address, 1).MaxStep
    assert rule.fired == 1
    assert {e.device_number for e in two_focusers.traffic.entries(member="maxstep")} >= {0, 1}


def test_resetting_one_focuser_leaves_the_other(two_focusers):
    old, new = Focuser(two_focusers.address, 0), Focuser(two_focusers.address, 1)
    old.Move(100)
    new.Move(100)
    wait_for(lambda: not old.IsMoving and not new.IsMoving, what="both moves")
    assert requests.put(f"{two_focusers.url}/simulator/v1/focuser/1/reset", timeout=TIMEOUT).json()["ErrorNumber"] == 0
    assert old.Position == 100
    time.sleep(0.01)
    assert two_focusers.get_state("focuser", 1)["StepPosition"] == 30000
