"""Dome (IDomeV3) through the real alpyca client: shutter, azimuth, altitude, home, park, slaving."""

from __future__ import annotations

import time
from functools import partial
from typing import Any, Callable

import pytest
from alpaca.dome import Dome, ShutterState
from alpaca.exceptions import (
    InvalidValueException,
    NotConnectedException,
    NotImplementedException,
    SlavedException,
)

from emulator import Emulator
from support import one_device, wait_for

# Slow enough at scale 100 that "still moving" checks have over a second of wall-clock margin.
SLOW = {"azimuth_rate_deg_s": 1.0, "altitude_rate_deg_s": 0.5, "shutter_travel_s": 150.0}


dome_emulator = partial(one_device, "dome")


def all_properties(cls: type) -> list[str]:
    return sorted(n for n in dir(cls) if n[0].isupper() and isinstance(getattr(cls, n), property))


def test_every_property_readable():
    with dome_emulator() as emu:
        dome = Dome(emu.address, 0)
        for name in all_properties(Dome):
            getattr(dome, name)  # no exception for the default, fully capable dome
        assert dome.InterfaceVersion == 3
        state = {item["Name"]: item["Value"] for item in dome.DeviceState}
        assert set(state) == {"Altitude", "AtHome", "AtPark", "Azimuth", "ShutterStatus", "Slewing", "TimeStamp"}


def test_not_connected():
    with Emulator({"devices": [{"type": "dome"}]}) as emu:
        dome = Dome(emu.address, 0)
        for name in ("Azimuth", "ShutterStatus", "Slewing", "CanPark"):
            with pytest.raises(NotConnectedException):
                getattr(dome, name)
        with pytest.raises(NotConnectedException):
            dome.OpenShutter()
        with pytest.raises(NotConnectedException):
            dome.SlewToAzimuth(90)


def test_shutter_opens_and_closes():
    with dome_emulator(shutter_travel_s=60.0) as emu:  # 0.6 s wall each way
        dome = Dome(emu.address, 0)
        assert dome.ShutterStatus == ShutterState.shutterClosed
        dome.OpenShutter()
        assert dome.ShutterStatus == ShutterState.shutterOpening
        assert dome.Slewing  # "any part of the dome" includes the shutter
        wait_for(lambda: dome.ShutterStatus == ShutterState.shutterOpen, what="shutter open")
        assert not dome.Slewing
        dome.OpenShutter()  # already open: success, stays open
        assert dome.ShutterStatus == ShutterState.shutterOpen
        dome.CloseShutter()
        assert dome.ShutterStatus == ShutterState.shutterClosing
        wait_for(lambda: dome.ShutterStatus == ShutterState.shutterClosed, what="shutter closed")


def test_azimuth_slew_takes_the_short_way_and_arrives():
    with dome_emulator(**SLOW) as emu:
        dome = Dome(emu.address, 0)
        assert dome.AtHome
        dome.SlewToAzimuth(330.0)  # 30 degrees the short way: 30 s simulated
        assert dome.Slewing
        assert not dome.AtHome
        mid = dome.Azimuth
        assert mid == 0.0 or mid > 300.0  # going down through north, not round by the east
        wait_for(lambda: not dome.Slewing, what="slew done")
        assert dome.Azimuth == pytest.approx(330.0)


def test_abort_slew_stops_every_part():
    with dome_emulator(**SLOW) as emu:
        dome = Dome(emu.address, 0)
        dome.SlewToAzimuth(150.0)
        dome.SlewToAltitude(60.0)
        dome.OpenShutter()
        wait_for(lambda: dome.Azimuth > 1.0, what="dome moving")
        dome.AbortSlew()
        assert not dome.Slewing
        az = dome.Azimuth
        assert 0.0 < az < 150.0
        assert 0.0 <= dome.Altitude < 60.0
        # a shutter stopped part-way is neither open nor closed
        assert dome.ShutterStatus == ShutterState.shutterError
        time.sleep(0.1)
        assert dome.Azimuth == az


def test_altitude_and_range_checks():
    with dome_emulator() as emu:
        dome = Dome(emu.address, 0)
        dome.SlewToAltitude(45.0)
        wait_for(lambda: not dome.Slewing, what="altitude slew")
        assert dome.Altitude == pytest.approx(45.0)
        for bad in (-1.0, 90.5):
            with pytest.raises(InvalidValueException):
                dome.SlewToAltitude(bad)
        for bad in (-0.1, 360.0, 400.0):
            with pytest.raises(InvalidValueException):
                dome.SlewToAzimuth(bad)
            with pytest.raises(InvalidValueException):
                dome.SyncToAzimuth(bad)


def test_find_home_and_sync():
    with dome_emulator(home_azimuth=10.0, azimuth_rate_deg_s=2.0) as emu:
        dome = Dome(emu.address, 0)
        dome.SyncToAzimuth(200.0)
        assert dome.Azimuth == pytest.approx(200.0)
        assert not dome.AtHome
        dome.FindHome()
        assert not dome.AtHome
        wait_for(lambda: dome.AtHome, what="home found")
        assert not dome.Slewing
        assert dome.Azimuth == pytest.approx(10.0)


def test_park_setpark_and_unpark_by_slewing():
    with dome_emulator(azimuth_rate_deg_s=2.0) as emu:
        dome = Dome(emu.address, 0)
        dome.SlewToAltitude(30.0)
        wait_for(lambda: not dome.Slewing, what="altitude slew")
        dome.Park()
        assert dome.Slewing and not dome.AtPark
        wait_for(lambda: dome.AtPark, what="parked")
        assert not dome.Slewing
        assert dome.Azimuth == pytest.approx(180.0)
        assert dome.Altitude == pytest.approx(0.0)
        dome.Park()  # already parked: success
        assert dome.AtPark and not dome.Slewing
        dome.SlewToAzimuth(90.0)
        assert not dome.AtPark  # any slew leaves the park position
        wait_for(lambda: not dome.Slewing, what="slew done")
        dome.SetPark()
        dome.SlewToAzimuth(100.0)
        wait_for(lambda: not dome.Slewing, what="slew done")
        dome.Park()
        wait_for(lambda: dome.AtPark, what="parked at the new position")
        assert dome.Azimuth == pytest.approx(90.0)


def test_start_parked():
    with dome_emulator(start_parked=True, park_azimuth=270.0) as emu:
        dome = Dome(emu.address, 0)
        assert dome.AtPark and not dome.AtHome
        assert dome.Azimuth == pytest.approx(270.0)


def test_roll_off_roof_parks_without_rotating():
    with dome_emulator(can_set_azimuth=False, can_set_altitude=False, can_sync_azimuth=False, shutter_travel_s=100.0) as emu:
        dome = Dome(emu.address, 0)
        dome.Park()
        assert dome.AtPark and not dome.Slewing
        with pytest.raises(NotImplementedException):
            dome.Azimuth
        dome.OpenShutter()  # the roof itself still moves
        assert dome.Slewing
        wait_for(lambda: dome.ShutterStatus == ShutterState.shutterOpen, what="roof open")


def test_slaving():
    with dome_emulator(can_slave=True) as emu:
        dome = Dome(emu.address, 0)
        assert dome.CanSlave and not dome.Slaved
        dome.Slaved = True
        assert dome.Slaved
        with pytest.raises(SlavedException):
            dome.SlewToAzimuth(90.0)
        with pytest.raises(SlavedException):
            dome.FindHome()
        dome.AbortSlew()  # stops slaving too
        assert not dome.Slaved
        dome.SlewToAzimuth(90.0)


def test_no_capabilities_is_a_roll_off_roof_without_control():
    flags = {
        f: False
        for f in (
            "can_find_home",
            "can_park",
            "can_set_altitude",
            "can_set_azimuth",
            "can_set_park",
            "can_set_shutter",
            "can_slave",
            "can_sync_azimuth",
        )
    }
    with dome_emulator(**flags) as emu:
        dome = Dome(emu.address, 0)
        for cap in ("CanFindHome", "CanPark", "CanSetAltitude", "CanSetAzimuth", "CanSetPark", "CanSetShutter",
                    "CanSlave", "CanSyncAzimuth"):
            assert getattr(dome, cap) is False
        for prop in ("Altitude", "Azimuth", "AtHome", "AtPark", "ShutterStatus"):
            with pytest.raises(NotImplementedException):
                getattr(dome, prop)
        calls: list[Callable[[], Any]] = [
            dome.OpenShutter,
            dome.CloseShutter,
            dome.FindHome,
            dome.Park,
            dome.SetPark,
            lambda: dome.SlewToAzimuth(10.0),
            lambda: dome.SlewToAltitude(10.0),
            lambda: dome.SyncToAzimuth(10.0),
        ]
        for call in calls:
            with pytest.raises(NotImplementedException):
                call()
        assert dome.Slaved is False  # readable even without slaving
        with pytest.raises(NotImplementedException):
            dome.Slaved = True
        assert dome.Slewing is False
        dome.AbortSlew()
        state = {item["Name"] for item in dome.DeviceState}
        assert state == {"Slewing", "TimeStamp"}


def test_jammed_shutter_reports_error_when_asked_to_move():
    with dome_emulator() as emu:
        dome = Dome(emu.address, 0)
        emu.set_state("dome", 0, ShutterJammed=True)
        dome.OpenShutter()
        assert dome.ShutterStatus == ShutterState.shutterError
        assert not dome.Slewing
        assert emu.get_state("dome", 0)["ShutterPosition"] == 0.0
        emu.set_state("dome", 0, ShutterJammed=False)
        dome.OpenShutter()
        wait_for(lambda: dome.ShutterStatus == ShutterState.shutterOpen, what="shutter open after unjam")


def test_shutter_jammed_mid_travel_stops_where_it_is():
    with dome_emulator(**SLOW) as emu:
        dome = Dome(emu.address, 0)
        dome.OpenShutter()
        wait_for(lambda: emu.get_state("dome", 0)["ShutterPosition"] > 0.0, what="shutter moving")
        state = emu.set_state("dome", 0, ShutterJammed=True)
        assert state["ShutterStatus"] == ShutterState.shutterError
        stopped = state["ShutterPosition"]
        assert 0.0 < stopped < 1.0
        assert dome.ShutterStatus == ShutterState.shutterError
        assert not dome.Slewing
        dome.CloseShutter()  # still jammed: still an error, still not moving
        assert dome.ShutterStatus == ShutterState.shutterError
        assert emu.get_state("dome", 0)["ShutterPosition"] == stopped


def test_bad_config_names_the_problem():
    with pytest.raises(ValueError, match="start_parked"):
        Emulator({"devices": [{"type": "dome", "start_parked": True, "can_park": False}]})
