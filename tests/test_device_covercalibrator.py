"""CoverCalibrator through the real alpyca client: cover travel, halt, calibrator warm-up,
devices without cover or calibrator, rehearsal faults, DeviceState, NotConnected, InvalidValue."""

from __future__ import annotations

import time
from functools import partial

import pytest
import requests
from alpaca.covercalibrator import CalibratorStatus, CoverCalibrator, CoverStatus
from alpaca.exceptions import InvalidValueException, NotConnectedException, NotImplementedException

from emulator import Emulator
from support import wait_until as _wait_until

# At scale 30 a 30 s cover travel takes 1 s of wall time: long enough to see Moving, short for a test.
SCALE = 30
DEVICES = [
    {"type": "covercalibrator", "number": 0, "cover_travel_s": 30, "warmup_s": 30, "cooldown_s": 30,
     "max_brightness": 100},
    {"type": "covercalibrator", "number": 1, "has_cover": False, "warmup_s": 0},
    {"type": "covercalibrator", "number": 2, "has_calibrator": False, "cover_travel_s": 3},
    {"type": "covercalibrator", "number": 3, "cover_can_halt": False, "cover_initial": "unknown"},
    # a slow cover (20 s of wall time end to end) for stopping it part-way without racing its arrival
    {"type": "covercalibrator", "number": 4, "cover_travel_s": 600},
]


wait_until = partial(_wait_until, timeout=15.0, interval=0.01)


@pytest.fixture
def cc_emu():
    with Emulator({"devices": DEVICES}, time_scale=SCALE) as emu:
        yield emu


def connected(emu: Emulator, n: int) -> CoverCalibrator:
    dev = CoverCalibrator(emu.address, n)
    dev.Connected = True
    return dev


def test_initial_state_and_every_property(cc_emu):
    cc = connected(cc_emu, 0)
    assert cc.InterfaceVersion == 2
    assert cc.CoverState == CoverStatus.Closed
    assert cc.CoverMoving is False
    assert cc.CalibratorState == CalibratorStatus.Off
    assert cc.CalibratorChanging is False
    assert cc.Brightness == 0
    assert cc.MaxBrightness == 100
    assert cc.Name and cc.Description and cc.DriverVersion
    assert cc.SupportedActions == []


def test_cover_open_and_close_take_travel_time(cc_emu):
    cc = connected(cc_emu, 0)
    cc.OpenCover()
    assert cc.CoverState == CoverStatus.Moving
    assert cc.CoverMoving is True
    assert wait_until(lambda: not cc.CoverMoving)
    assert cc.CoverState == CoverStatus.Open
    assert cc_emu.get_state("covercalibrator", 0)["CoverPosition"] == 1.0

    cc.OpenCover()  # already open: nothing to do
    assert cc.CoverState == CoverStatus.Open and cc.CoverMoving is False

    cc.CloseCover()
    assert cc.CoverState == CoverStatus.Moving
    assert wait_until(lambda: cc.CoverState != CoverStatus.Moving)
    assert cc.CoverState == CoverStatus.Closed
    assert cc.CoverMoving is False


def test_halt_part_way_leaves_unknown(cc_emu):
    cc = connected(cc_emu, 4)
    cc.OpenCover()
    assert wait_until(lambda: cc_emu.get_state("covercalibrator", 4)["CoverPosition"] > 0)  # on its way
    cc.HaltCover()
    assert cc.CoverMoving is False
    assert cc.CoverState == CoverStatus.Unknown
    pos = cc_emu.get_state("covercalibrator", 4)["CoverPosition"]
    assert 0.0 < pos < 1.0
    time.sleep(0.05)  # let simulated time pass: a halted cover stays where it is
    assert cc_emu.get_state("covercalibrator", 4)["CoverPosition"] == pos  # really stopped
    cc.CloseCover()  # from part-way: a shorter trip home
    assert wait_until(lambda: cc.CoverState == CoverStatus.Closed)
    cc.HaltCover()  # halting a cover at rest changes nothing
    assert cc.CoverState == CoverStatus.Closed


def test_calibrator_warms_up_and_cools_down(cc_emu):
    cc = connected(cc_emu, 0)
    cc.CalibratorOn(60)
    assert cc.CalibratorState == CalibratorStatus.NotReady
    assert cc.CalibratorChanging is True
    assert cc.Brightness == 60
    assert wait_until(lambda: not cc.CalibratorChanging)
    assert cc.CalibratorState == CalibratorStatus.Ready
    assert cc.Brightness == 60

    cc.CalibratorOff()
    assert cc.Brightness == 0
    assert cc.CalibratorState == CalibratorStatus.NotReady
    assert wait_until(lambda: cc.CalibratorState == CalibratorStatus.Off)
    assert cc.CalibratorChanging is False


def test_brightness_out_of_range_is_invalid_value(cc_emu):
    cc = connected(cc_emu, 0)
    for bad in (-1, 101):
        with pytest.raises(InvalidValueException):
            cc.CalibratorOn(bad)
    assert cc.CalibratorState == CalibratorStatus.Off
    cc.CalibratorOn(100)  # the maximum itself is fine
    assert cc.Brightness == 100


def test_missing_brightness_is_http_400(cc_emu):
    connected(cc_emu, 0)
    r = requests.put(f"{cc_emu.url}/api/v1/covercalibrator/0/calibratoron", data={"brightness": "5"}, timeout=5)
    assert r.status_code == 400 and "Brightness" in r.text


def test_device_without_cover(cc_emu):
    cc = connected(cc_emu, 1)
    assert cc.CoverState == CoverStatus.NotPresent
    assert cc.CoverMoving is False
    for method in (cc.OpenCover, cc.CloseCover, cc.HaltCover):
        with pytest.raises(NotImplementedException):
            method()
    cc.CalibratorOn(10)  # warm-up 0: ready at once
    assert cc.CalibratorState == CalibratorStatus.Ready
    names = [s["Name"] for s in _device_state(cc_emu, 1)]
    assert names == ["Brightness", "CalibratorChanging", "CalibratorState", "CoverMoving", "CoverState", "TimeStamp"]


def test_device_without_calibrator(cc_emu):
    cc = connected(cc_emu, 2)
    assert cc.CalibratorState == CalibratorStatus.NotPresent
    assert cc.CalibratorChanging is False
    for read in ("Brightness", "MaxBrightness"):
        with pytest.raises(NotImplementedException):
            getattr(cc, read)
    with pytest.raises(NotImplementedException):
        cc.CalibratorOn(1)
    with pytest.raises(NotImplementedException):
        cc.CalibratorOff()
    state = {s["Name"]: s["Value"] for s in _device_state(cc_emu, 2)}
    assert "Brightness" not in state
    assert state["CalibratorState"] == CalibratorStatus.NotPresent
    cc.OpenCover()
    assert wait_until(lambda: cc.CoverState == CoverStatus.Open)


def test_cover_that_cannot_halt_and_starts_unknown(cc_emu):
    cc = connected(cc_emu, 3)
    assert cc.CoverState == CoverStatus.Unknown
    with pytest.raises(NotImplementedException):
        cc.HaltCover()
    cc.CloseCover()
    assert wait_until(lambda: cc.CoverState == CoverStatus.Closed)


def test_not_connected(cc_emu):
    cc = CoverCalibrator(cc_emu.address, 0)
    for read in ("CoverState", "CoverMoving", "CalibratorState", "CalibratorChanging", "Brightness",
                 "MaxBrightness", "DeviceState"):
        with pytest.raises(NotConnectedException):
            getattr(cc, read)
    for call in (cc.OpenCover, cc.CloseCover, cc.HaltCover, cc.CalibratorOff, lambda: cc.CalibratorOn(1)):
        with pytest.raises(NotConnectedException):
            call()


def test_jammed_cover_reports_error(cc_emu):
    cc = connected(cc_emu, 4)
    cc.OpenCover()
    # 5 % open: the trip home after the jam then takes 30 simulated s (1 s), long enough to see Moving
    assert wait_until(lambda: cc_emu.get_state("covercalibrator", 4)["CoverPosition"] > 0.05)
    state = cc_emu.set_state("covercalibrator", 4, CoverJammed=True)
    assert state["CoverState"] == CoverStatus.Error and state["CoverMoving"] is False
    assert cc.CoverState == CoverStatus.Error
    cc.CloseCover()  # accepted, but the cover cannot move
    assert cc.CoverState == CoverStatus.Error
    cc_emu.set_state("covercalibrator", 4, CoverJammed=False)
    cc.CloseCover()  # from where it jammed, a short trip home
    assert cc.CoverState == CoverStatus.Moving
    assert wait_until(lambda: cc.CoverState == CoverStatus.Closed)


def test_lamp_fault_reports_error(cc_emu):
    cc = connected(cc_emu, 0)
    cc_emu.set_state("covercalibrator", 0, LampFault=True)
    cc.CalibratorOn(50)
    assert cc.CalibratorState == CalibratorStatus.Error
    assert cc.CalibratorChanging is False
    cc_emu.set_state("covercalibrator", 0, LampFault=False)
    cc.CalibratorOn(50)
    assert wait_until(lambda: cc.CalibratorState == CalibratorStatus.Ready)


def test_cover_position_settable(cc_emu):
    cc = connected(cc_emu, 0)
    cc_emu.set_state("covercalibrator", 0, CoverPosition=1)
    assert cc.CoverState == CoverStatus.Open
    cc_emu.set_state("covercalibrator", 0, CoverPosition=0.5)
    assert cc.CoverState == CoverStatus.Unknown
    with pytest.raises(ValueError):
        cc_emu.set_state("covercalibrator", 0, CoverJammed=True, CoverPosition=2.0)
    assert cc_emu.get_state("covercalibrator", 0)["CoverJammed"] is False  # a bad request changes nothing


def test_devicestate_tracks_motion(cc_emu):
    cc = connected(cc_emu, 0)
    cc.OpenCover()
    cc.CalibratorOn(30)
    state = {s["Name"]: s["Value"] for s in _device_state(cc_emu, 0)}
    assert state["CoverState"] == CoverStatus.Moving and state["CoverMoving"] is True
    assert state["CalibratorState"] == CalibratorStatus.NotReady and state["CalibratorChanging"] is True
    assert state["Brightness"] == 30
    assert wait_until(lambda: {s["Name"]: s["Value"] for s in _device_state(cc_emu, 0)}["CoverState"] == 3)


def _device_state(emu: Emulator, n: int) -> list[dict]:
    body = requests.get(f"{emu.url}/api/v1/covercalibrator/{n}/devicestate", timeout=5).json()
    assert body["ErrorNumber"] == 0, body
    return body["Value"]


def test_config_rejects_bad_options():
    from emulator.config import ConfigError

    with pytest.raises(ConfigError, match=r"devices\[0\]\.max_brightness"):
        Emulator({"devices": [{"type": "covercalibrator", "max_brightness": 0}]})
    with pytest.raises(ConfigError, match="unknown key"):
        Emulator({"devices": [{"type": "covercalibrator", "lamp": True}]})
