"""Telescope (ITelescopeV4) through the real alpyca client: slews, park, home, tracking, guiding.

Time runs at scale 100 unless said otherwise, so a 60 s slew is over in 0.6 s of wall time.
Where a test must see a motion still under way it makes the motion long (slow slew rate, long
settle) or uses the Stuck state, so no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from functools import partial
from typing import Any

import pytest
import requests
from alpaca.exceptions import (
    InvalidOperationException,
    InvalidValueException,
    NotConnectedException,
    NotImplementedException,
    ParkedException,
    ValueNotSetException,
)
from alpaca.telescope import AlignmentModes, DriveRates, GuideDirections, PierSide, Telescope, TelescopeAxes

from emulator import Emulator
from support import one_device
from support import wait_for as _wait_for

LAT = 51.48
SIDEREAL_HOURS_PER_S = 1.00273790935 / 3600.0


scope_emulator = partial(one_device, "telescope")
#: slews and settles get a longer deadline than the shared default
wait_for = partial(_wait_for, timeout=20.0)


def hours_apart(a: float, b: float) -> float:
    return abs((a - b + 12.0) % 24.0 - 12.0)


def put(emu: Emulator, member: str, **params: Any) -> dict:
    """A raw PUT, for values alpyca will not send (bad enums, deprecated synchronous methods)."""
    resp = requests.put(f"{emu.url}/api/v1/telescope/0/{member}", data=params, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def snapshot(t: Telescope) -> dict[str, Any]:
    """DeviceState as a dict: values read at one instant, so no request latency comes between them."""
    return {item["Name"]: item["Value"] for item in t.DeviceState}


def all_properties() -> list[str]:
    return sorted(n for n in dir(Telescope) if n[0].isupper() and isinstance(getattr(Telescope, n), property))


# -- reading -------------------------------------------------------------------------------------


def test_every_property_readable():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        values = {}
        for name in all_properties():
            if name in ("TargetRightAscension", "TargetDeclination"):
                with pytest.raises(ValueNotSetException):
                    getattr(t, name)
                continue
            values[name] = getattr(t, name)
        assert values["InterfaceVersion"] == 4
        assert values["AlignmentMode"] == AlignmentModes.algGermanPolar
        assert values["TrackingRates"] == [0, 1, 2, 3]
        assert values["SiteLatitude"] == LAT and values["SiteElevation"] == 50.0
        assert values["AtPark"] is False and values["Slewing"] is False and values["Tracking"] is False
        # starts at the park position: the celestial pole, whose altitude is the latitude
        assert values["Declination"] == pytest.approx(90.0)
        assert values["Altitude"] == pytest.approx(LAT, abs=1e-6)
        assert values["UTCDate"].tzinfo is not None
        assert t.CanMoveAxis(TelescopeAxes.axisPrimary) is True
        assert t.CanMoveAxis(TelescopeAxes.axisTertiary) is False
        assert t.AxisRates(TelescopeAxes.axisTertiary) == []
        rates = t.AxisRates(TelescopeAxes.axisSecondary)
        assert len(rates) == 1 and rates[0].Minimum == 0.0 and rates[0].Maximum == 4.0
        names = {item["Name"] for item in t.DeviceState}
        assert names == {
            "Altitude", "AtHome", "AtPark", "Azimuth", "Declination", "IsPulseGuiding", "RightAscension",
            "SideOfPier", "SiderealTime", "Slewing", "Tracking", "UTCDate", "TimeStamp",
        }


def test_not_connected():
    with scope_emulator(connected=False) as emu:
        t = Telescope(emu.address, 0)
        assert t.Connected is False
        for name in ("RightAscension", "Slewing", "CanSlew", "AtPark", "SiderealTime"):
            with pytest.raises(NotConnectedException):
                getattr(t, name)
        with pytest.raises(NotConnectedException):
            t.SlewToCoordinatesAsync(1.0, 1.0)
        with pytest.raises(NotConnectedException):
            t.Park()
        t.Connected = True
        assert t.Slewing is False


# -- the main state machine ----------------------------------------------------------------------


def test_slew_state_machine():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        with pytest.raises(InvalidOperationException):
            t.SlewToCoordinatesAsync(3.0, 10.0)  # equatorial slews need tracking
        t.Tracking = True
        t.SlewSettleTime = 40  # keeps Slewing true for 0.4 s of wall time after the motion
        ra = (t.SiderealTime + 3.0) % 24.0  # 3 h east of the meridian (not yet transited)
        assert t.DestinationSideOfPier(ra, 20.0) == PierSide.pierWest
        t.SlewToCoordinatesAsync(ra, 20.0)
        assert t.Slewing is True
        assert (t.TargetRightAscension, t.TargetDeclination) == (ra, 20.0)
        wait_for(lambda: not t.Slewing, what="slew end")
        assert hours_apart(t.RightAscension, ra) < 1e-9
        assert t.Declination == pytest.approx(20.0, abs=1e-9)
        assert t.Tracking is True
        assert t.SideOfPier == PierSide.pierWest
        assert t.AtPark is False and t.AtHome is False
        # sidereal tracking holds RA/Dec while sidereal time runs on
        lst0 = t.SiderealTime
        wait_for(lambda: hours_apart(t.SiderealTime, lst0) > 0.01, what="sidereal time to move")
        assert hours_apart(t.RightAscension, ra) < 1e-9
        assert t.Declination == pytest.approx(20.0, abs=1e-9)


def test_altaz_slew_and_coordinates_agree():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        t.SlewToAltAzAsync(120.0, 45.0)  # Azimuth, Altitude
        wait_for(lambda: not t.Slewing, what="alt-az slew end")
        assert t.Azimuth == pytest.approx(120.0, abs=1e-6)
        assert t.Altitude == pytest.approx(45.0, abs=1e-6)
        # hour angle = sidereal time - RA; a point in the east has a negative hour angle
        ha = ((t.SiderealTime - t.RightAscension + 12.0) % 24.0) - 12.0
        assert -12.0 < ha < 0.0
        # the zenith: RA = sidereal time and Dec = latitude
        t.SlewToAltAzAsync(0.0, 90.0)
        wait_for(lambda: not t.Slewing, what="zenith slew end")
        now = snapshot(t)
        assert now["Declination"] == pytest.approx(LAT, abs=1e-6)
        assert hours_apart(now["RightAscension"], now["SiderealTime"]) < 1e-6
        # a point due west on the equator sets 6 h after transit
        t.SlewToAltAzAsync(270.0, 0.0)
        wait_for(lambda: not t.Slewing, what="west slew end")
        now = snapshot(t)
        assert now["Declination"] == pytest.approx(0.0, abs=1e-6)
        assert hours_apart(now["SiderealTime"] - now["RightAscension"], 6.0) < 1e-6
        assert t.SideOfPier == PierSide.pierEast
        t.Tracking = True
        with pytest.raises(InvalidOperationException):
            t.SlewToAltAzAsync(100.0, 30.0)  # alt-az slews need tracking off
        with pytest.raises(InvalidOperationException):
            t.SyncToAltAz(100.0, 30.0)


def test_tracking_off_ra_drifts_and_hour_angle_stays():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        t.SlewToAltAzAsync(200.0, 30.0)
        wait_for(lambda: not t.Slewing, what="slew end")
        before = snapshot(t)
        ra0, lst0, dec0 = before["RightAscension"], before["SiderealTime"], before["Declination"]
        wait_for(lambda: hours_apart(t.SiderealTime, lst0) > 0.02, what="sidereal time to move")
        after = snapshot(t)
        ra1, lst1 = after["RightAscension"], after["SiderealTime"]
        assert hours_apart(ra1, ra0) > 0.01  # RA runs with sidereal time
        assert hours_apart(lst1 - ra1, lst0 - ra0) < 1e-6  # the hour angle does not
        assert t.Declination == pytest.approx(dec0, abs=1e-9)
        assert t.Altitude == pytest.approx(30.0, abs=1e-6)


def test_lunar_rate_drifts_east_against_the_stars():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        t.Tracking = True
        t.SyncToCoordinates(10.0, 5.0)
        t.TrackingRate = DriveRates.driveLunar
        assert t.TrackingRate == DriveRates.driveLunar
        with pytest.raises(InvalidOperationException):
            t.RightAscensionRate = 0.5  # rate offsets need the sidereal rate
        sim0, ra0 = emu.clock.now(), t.RightAscension
        time.sleep(1.0)  # 100 s of simulated time: request latency is a small part of it
        ra1, sim1 = t.RightAscension, emu.clock.now()
        # tracking slower than sidereal: RA grows by (15.041 - 14.685)"/s, i.e. 0.356/54000 h/s
        expected_rate = (15.041067 - 14.685) / 54000.0
        assert ra0 < ra1
        assert (ra1 - ra0) / (sim1 - sim0) == pytest.approx(expected_rate, rel=0.1)
        t.TrackingRate = DriveRates.driveSidereal
        t.RightAscensionRate = 1.0  # one RA second per sidereal second
        t.DeclinationRate = -2.0  # arcsec per second
        assert (t.RightAscensionRate, t.DeclinationRate) == (1.0, -2.0)
        dec0 = t.Declination
        sim0 = emu.clock.now()
        time.sleep(1.0)
        dec1, sim1 = t.Declination, emu.clock.now()
        assert dec1 < dec0
        assert (dec0 - dec1) / (sim1 - sim0) == pytest.approx(2.0 / 3600.0, rel=0.1)


def test_synchronous_slew_blocks_without_holding_the_lock():
    with scope_emulator(settle_time_s=150) as emu:  # the first slew lasts 60 s + 150 s: 2.1 s of wall time
        t = Telescope(emu.address, 0)
        t.Tracking = True
        ra = (t.SiderealTime + 2.0) % 24.0
        result: dict[str, Any] = {}

        def slew() -> None:
            result["body"] = put(emu, "slewtocoordinates", RightAscension=ra, Declination=-10.0)

        worker = threading.Thread(target=slew)
        worker.start()
        try:
            wait_for(lambda: emu.get_state("telescope")["Slewing"], what="the synchronous slew to start")
            assert t.Slewing is True  # others are answered while the slew blocks its caller
        finally:
            worker.join(30)
        assert not worker.is_alive()
        assert result["body"]["ErrorNumber"] == 0
        assert t.Slewing is False  # it returned when the slew (and settle) were over
        assert hours_apart(t.RightAscension, ra) < 1e-9 and t.Declination == pytest.approx(-10.0)
        # the same for SlewToTarget and SlewToAltAz
        t.SlewSettleTime = 0
        t.TargetRightAscension, t.TargetDeclination = (ra + 1.0) % 24.0, 15.0
        assert put(emu, "slewtotarget")["ErrorNumber"] == 0
        assert t.Slewing is False and t.Declination == pytest.approx(15.0)
        t.Tracking = False
        assert put(emu, "slewtoaltaz", Azimuth=90.0, Altitude=20.0)["ErrorNumber"] == 0
        assert t.Slewing is False and t.Altitude == pytest.approx(20.0, abs=1e-6)


def test_synchronous_slew_gives_up_on_a_stuck_mount():
    with scope_emulator(sync_wait_limit_s=0.5) as emu:
        t = Telescope(emu.address, 0)
        t.Tracking = True
        emu.set_state("telescope", Stuck=True)
        body = put(emu, "slewtocoordinates", RightAscension=1.0, Declination=10.0)
        assert body["ErrorNumber"] == 0x500 and "did not finish" in body["ErrorMessage"]
        assert t.Slewing is True
        t.AbortSlew()
        assert t.Slewing is False


def test_synchronous_slew_waits_through_a_stuck_spell():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        t.Tracking = True
        emu.set_state("telescope", Stuck=True)
        result: dict[str, Any] = {}
        worker = threading.Thread(
            target=lambda: result.update(body=put(emu, "slewtocoordinates", RightAscension=3.0, Declination=40.0))
        )
        worker.start()
        try:
            wait_for(lambda: emu.get_state("telescope")["Slewing"], what="the synchronous slew to start")
            sim_start = emu.clock.now()
            wait_for(lambda: emu.clock.now() > sim_start + 100, what="a while stuck")
            assert worker.is_alive()  # still blocked: the mount has not moved
            emu.set_state("telescope", Stuck=False)
        finally:
            worker.join(30)
        assert result["body"]["ErrorNumber"] == 0
        assert t.Slewing is False and t.Declination == pytest.approx(40.0)


def test_abort_slew():
    with scope_emulator(slew_rate_deg_s=0.5) as emu:  # a 90 deg move takes 180 s: 1.8 s of wall time
        t = Telescope(emu.address, 0)
        t.Tracking = True
        t.AbortSlew()  # nothing to abort: no error
        t.SlewToCoordinatesAsync((t.SiderealTime + 1.0) % 24.0, 0.0)
        assert t.Slewing is True
        t.AbortSlew()
        assert t.Slewing is False
        dec = t.Declination
        assert 0.0 < dec < 90.0  # stopped part-way
        time.sleep(0.2)
        assert t.Declination == pytest.approx(dec, abs=1e-9)  # and stays there, tracking
        assert t.Tracking is True


def test_stuck_slew_never_finishes_until_released():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        t.Tracking = True
        emu.set_state("telescope", Stuck=True)
        assert emu.get_state("telescope")["Stuck"] is True
        ra0, dec0 = t.RightAscension, t.Declination
        t.SlewToCoordinatesAsync((t.SiderealTime + 1.0) % 24.0, 0.0)
        sim_start = emu.clock.now()
        wait_for(lambda: emu.clock.now() > sim_start + 200, what="far longer than the slew takes")
        assert t.Slewing is True
        assert t.Declination == pytest.approx(dec0) and hours_apart(t.RightAscension, ra0) < 1e-6
        emu.set_state("telescope", Stuck=False)
        wait_for(lambda: not t.Slewing, what="the released slew to end")
        assert t.Declination == pytest.approx(0.0)


# -- park and home ---------------------------------------------------------------------------------


def test_park_unpark_and_parked_errors():
    with scope_emulator(settle_time_s=60) as emu:
        t = Telescope(emu.address, 0)
        t.Tracking = True
        t.SlewToCoordinatesAsync((t.SiderealTime + 1.0) % 24.0, 10.0)
        wait_for(lambda: not t.Slewing, what="slew end")
        t.Park()
        assert t.Slewing is True and t.AtPark is False
        wait_for(lambda: t.AtPark, what="AtPark")
        assert t.Slewing is False and t.Tracking is False
        assert t.Declination == pytest.approx(90.0) and t.Altitude == pytest.approx(LAT, abs=1e-6)
        t.Park()  # parking a parked mount is not an error
        for call in (
            lambda: t.SlewToCoordinatesAsync(1.0, 1.0),
            lambda: t.SlewToTargetAsync(),
            lambda: t.SlewToAltAzAsync(10.0, 10.0),
            lambda: t.SyncToCoordinates(1.0, 1.0),
            lambda: t.SyncToAltAz(10.0, 10.0),
            lambda: t.MoveAxis(TelescopeAxes.axisPrimary, 1.0),
            lambda: t.PulseGuide(GuideDirections.guideNorth, 100),
            lambda: t.FindHome(),
            lambda: t.AbortSlew(),
        ):
            with pytest.raises(ParkedException):
                call()
        with pytest.raises(ParkedException):
            t.Tracking = True
        t.Unpark()
        assert t.AtPark is False
        t.Tracking = True
        t.SlewToCoordinatesAsync(1.0, 1.0)
        assert t.Slewing is True


def test_start_parked_and_set_park():
    with scope_emulator(start_parked=True, tracking=True) as emu:
        t = Telescope(emu.address, 0)
        assert t.AtPark is True and t.Tracking is False
        t.Unpark()
        t.SlewToAltAzAsync(180.0, 10.0)
        wait_for(lambda: not t.Slewing, what="slew end")
        t.SetPark()
        t.SlewToAltAzAsync(90.0, 60.0)
        wait_for(lambda: not t.Slewing, what="slew end")
        t.Park()
        wait_for(lambda: t.AtPark, what="AtPark")
        assert t.Azimuth == pytest.approx(180.0, abs=1e-6) and t.Altitude == pytest.approx(10.0, abs=1e-6)


def test_find_home():
    with scope_emulator(settle_time_s=40, home_altitude=20.0, home_azimuth=0.0) as emu:
        t = Telescope(emu.address, 0)
        t.FindHome()
        assert t.Slewing is True and t.AtHome is False
        wait_for(lambda: t.AtHome, what="AtHome")
        assert t.Slewing is False
        assert t.Altitude == pytest.approx(20.0, abs=1e-6) and t.Azimuth == pytest.approx(0.0, abs=1e-6)
        t.FindHome()  # already home: nothing to do
        assert t.AtHome is True
        t.SlewToAltAzAsync(90.0, 30.0)
        assert t.AtHome is False


# -- guiding and manual motion ---------------------------------------------------------------------


def test_pulse_guiding():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        t.Tracking = True
        t.SyncToCoordinates(6.0, 10.0)
        rate = t.GuideRateDeclination
        assert rate == pytest.approx(0.5 * 15.041067 / 3600.0)
        assert t.IsPulseGuiding is False
        t.PulseGuide(GuideDirections.guideNorth, 100_000)  # 100 s of simulated time: 1 s of wall time
        assert t.IsPulseGuiding is True
        wait_for(lambda: not t.IsPulseGuiding, what="the pulse to end")
        assert t.Declination == pytest.approx(10.0 + rate * 100.0, abs=1e-9)
        t.GuideRateRightAscension = 0.01
        assert t.GuideRateRightAscension == 0.01
        t.PulseGuide(GuideDirections.guideEast, 50_000)
        wait_for(lambda: not t.IsPulseGuiding, what="the pulse to end")
        assert t.RightAscension == pytest.approx(6.0 + 0.01 * 50.0 / 15.0, abs=1e-9)
        t.PulseGuide(GuideDirections.guideWest, 50_000)
        t.PulseGuide(GuideDirections.guideSouth, 100_000)  # both axes at once
        wait_for(lambda: not t.IsPulseGuiding, what="the pulses to end")
        assert t.RightAscension == pytest.approx(6.0, abs=1e-9)
        assert t.Declination == pytest.approx(10.0, abs=1e-9)
        for direction, duration in ((4, 100), (-1, 100), (0, -5)):
            body = put(emu, "pulseguide", Direction=direction, Duration=duration)
            assert body["ErrorNumber"] == 0x401, body
        with pytest.raises(InvalidValueException):
            t.GuideRateDeclination = -1.0


def test_move_axis():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        t.Tracking = True
        t.SyncToCoordinates(6.0, 10.0)
        with pytest.raises(NotImplementedException):
            t.MoveAxis(TelescopeAxes.axisTertiary, 1.0)
        with pytest.raises(InvalidValueException):
            t.MoveAxis(TelescopeAxes.axisPrimary, 5.0)  # above AxisRates maximum
        assert put(emu, "moveaxis", Axis=3, Rate=1.0)["ErrorNumber"] == 0x401
        t.MoveAxis(TelescopeAxes.axisSecondary, 0.5)
        assert t.Slewing is True
        wait_for(lambda: t.Declination > 20.0, what="the secondary axis to move")
        t.MoveAxis(TelescopeAxes.axisSecondary, 0.0)
        assert t.Slewing is False
        dec = t.Declination
        time.sleep(0.1)
        assert t.Declination == dec
        t.MoveAxis(TelescopeAxes.axisPrimary, 1.0)
        wait_for(lambda: t.RightAscension > 6.2, what="the primary axis to move")
        t.AbortSlew()  # stops MoveAxis too
        assert t.Slewing is False
        t.MoveAxis(TelescopeAxes.axisPrimary, 1.0)
        with pytest.raises(InvalidOperationException):
            t.PulseGuide(GuideDirections.guideNorth, 10)  # no guiding while an axis moves
        t.AbortSlew()


def test_side_of_pier_flip():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        t.Tracking = True
        t.SyncToCoordinates((t.SiderealTime + 0.5) % 24.0, 30.0)  # just east of the meridian
        assert t.SideOfPier == PierSide.pierWest
        ra = t.RightAscension
        t.SideOfPier = PierSide.pierEast  # a forced flip: a 180 deg swing, 60 s at 3 deg/s
        wait_for(lambda: not t.Slewing, what="the flip to end")
        assert t.SideOfPier == PierSide.pierEast
        assert hours_apart(t.RightAscension, ra) < 1e-9 and t.Declination == pytest.approx(30.0)
        assert put(emu, "sideofpier", SideOfPier=-1)["ErrorNumber"] == 0x401


# -- errors ----------------------------------------------------------------------------------------


def test_invalid_values():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        t.Tracking = True
        bad_sets = [
            ("SiteElevation", -301.0), ("SiteElevation", 10001.0), ("SiteLatitude", 90.5), ("SiteLatitude", -91.0),
            ("SiteLongitude", 180.5), ("SiteLongitude", -181.0), ("TargetRightAscension", 24.0),
            ("TargetRightAscension", -0.1), ("TargetDeclination", 90.1), ("TargetDeclination", -91.0),
            ("SlewSettleTime", -1),
        ]
        for name, value in bad_sets:
            with pytest.raises(InvalidValueException):
                setattr(t, name, value)
        t.SiteElevation = -300.0
        t.SiteElevation = 10000.0
        assert t.SiteElevation == 10000.0
        for call in (
            lambda: t.SlewToCoordinatesAsync(25.0, 0.0),
            lambda: t.SlewToCoordinatesAsync(-1.0, 0.0),
            lambda: t.SlewToCoordinatesAsync(1.0, 100.0),
            lambda: t.SyncToCoordinates(24.5, 0.0),
            lambda: t.DestinationSideOfPier(1.0, -100.0),
        ):
            with pytest.raises(InvalidValueException):
                call()
        t.Tracking = False
        for az, alt in ((370.0, 10.0), (-10.0, 10.0), (360.0, 10.0), (10.0, 100.0), (10.0, -100.0)):
            with pytest.raises(InvalidValueException):
                t.SlewToAltAzAsync(az, alt)
        for member, params in (
            ("trackingrate", {"TrackingRate": 7}),
            ("utcdate", {"UTCDate": "yesterday"}),
            ("utcdate", {"UTCDate": "2024-13-01T00:00:00Z"}),
        ):
            assert put(emu, member, **params)["ErrorNumber"] == 0x401
        assert requests.get(f"{emu.url}/api/v1/telescope/0/canmoveaxis", params={"Axis": 5}, timeout=5).json()[
            "ErrorNumber"
        ] == 0x401


def test_targets_and_invalid_operations():
    with scope_emulator() as emu:
        t = Telescope(emu.address, 0)
        with pytest.raises(ValueNotSetException):
            t.TargetRightAscension
        with pytest.raises(ValueNotSetException):
            t.TargetDeclination
        t.Tracking = True
        with pytest.raises(InvalidOperationException):
            t.SlewToTargetAsync()  # no target yet
        t.TargetRightAscension = 4.25
        with pytest.raises(ValueNotSetException):
            t.TargetDeclination
        t.TargetDeclination = -12.5
        assert (t.TargetRightAscension, t.TargetDeclination) == (4.25, -12.5)
        t.SyncToTarget()
        assert t.RightAscension == pytest.approx(4.25) and t.Declination == pytest.approx(-12.5)
        t.Tracking = False
        with pytest.raises(InvalidOperationException):
            t.SlewToTargetAsync()  # equatorial slews need tracking
        with pytest.raises(InvalidOperationException):
            t.SyncToTarget()


def test_utcdate_and_sidereal_time():
    with scope_emulator(time_scale=1, site_longitude=0.0) as emu:
        t = Telescope(emu.address, 0)
        # GMST at J2000.0 (2000-01-01 12:00 UTC) is 18.697374558 h, a published constant
        t.UTCDate = "2000-01-01T12:00:00.0000000Z"
        assert t.UTCDate.year == 2000
        assert t.SiderealTime == pytest.approx(18.697374558, abs=0.001)
        t.SiteLongitude = 90.0  # six hours east
        assert t.SiderealTime == pytest.approx(18.697374558 + 6.0 - 24.0, abs=0.001)
        when = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
        t.UTCDate = when  # alpyca sends isoformat(): '+00:00' rather than 'Z'
        assert abs((t.UTCDate - when).total_seconds()) < 5
        raw = requests.get(f"{emu.url}/api/v1/telescope/0/utcdate", timeout=5).json()["Value"]
        assert raw.startswith("2031-05-06T07:08:") and raw.endswith("Z")


def test_capability_flags_turn_members_into_not_implemented():
    flags = {
        name: False
        for name in (
            "can_slew", "can_slew_async", "can_slew_altaz", "can_slew_altaz_async", "can_sync", "can_sync_altaz",
            "can_park", "can_unpark", "can_set_park", "can_find_home", "can_pulse_guide", "can_set_guide_rates",
            "can_set_tracking", "can_set_rates", "can_set_pier_side", "can_move_axis",
        )
    }
    with scope_emulator(**flags) as emu:
        t = Telescope(emu.address, 0)
        for name in (
            "CanSlew", "CanSlewAsync", "CanSlewAltAz", "CanSlewAltAzAsync", "CanSync", "CanSyncAltAz", "CanPark",
            "CanUnpark", "CanSetPark", "CanFindHome", "CanPulseGuide", "CanSetGuideRates", "CanSetTracking",
            "CanSetRightAscensionRate", "CanSetDeclinationRate", "CanSetPierSide",
        ):
            assert getattr(t, name) is False, name
        assert t.CanMoveAxis(TelescopeAxes.axisPrimary) is False
        assert t.AxisRates(TelescopeAxes.axisPrimary) == []
        calls = {
            "SlewToCoordinatesAsync": lambda: t.SlewToCoordinatesAsync(1.0, 1.0),
            "SlewToTargetAsync": lambda: t.SlewToTargetAsync(),
            "SlewToAltAzAsync": lambda: t.SlewToAltAzAsync(10.0, 10.0),
            "SyncToCoordinates": lambda: t.SyncToCoordinates(1.0, 1.0),
            "SyncToTarget": lambda: t.SyncToTarget(),
            "SyncToAltAz": lambda: t.SyncToAltAz(10.0, 10.0),
            "Park": lambda: t.Park(),
            "Unpark": lambda: t.Unpark(),
            "SetPark": lambda: t.SetPark(),
            "FindHome": lambda: t.FindHome(),
            "PulseGuide": lambda: t.PulseGuide(GuideDirections.guideNorth, 10),
            "IsPulseGuiding": lambda: t.IsPulseGuiding,
            "MoveAxis": lambda: t.MoveAxis(TelescopeAxes.axisPrimary, 1.0),
            "Tracking": lambda: setattr(t, "Tracking", True),
            "GuideRateRightAscension": lambda: setattr(t, "GuideRateRightAscension", 0.001),
            "GuideRateDeclination": lambda: setattr(t, "GuideRateDeclination", 0.001),
            "RightAscensionRate": lambda: setattr(t, "RightAscensionRate", 0.1),
            "DeclinationRate": lambda: setattr(t, "DeclinationRate", 0.1),
            "SideOfPier": lambda: setattr(t, "SideOfPier", PierSide.pierWest),
        }
        for name, call in calls.items():
            with pytest.raises(NotImplementedException):
                call()
        for member in ("slewtocoordinates", "slewtotarget", "slewtoaltaz"):
            params = {"slewtocoordinates": {"RightAscension": 1, "Declination": 1}, "slewtoaltaz": {"Azimuth": 1, "Altitude": 1}}
            assert put(emu, member, **params.get(member, {}))["ErrorNumber"] == 0x400, member
        # the control API still sets tracking, for rehearsals of a mount that tracks on its own
        emu.set_state("telescope", Tracking=True)
        assert t.Tracking is True


def test_non_german_mounts_do_not_report_pier_side():
    with scope_emulator(alignment_mode="altaz") as emu:
        t = Telescope(emu.address, 0)
        assert t.AlignmentMode == AlignmentModes.algAltAz
        assert t.CanSetPierSide is False
        with pytest.raises(NotImplementedException):
            t.SideOfPier
        with pytest.raises(NotImplementedException):
            t.DestinationSideOfPier(1.0, 1.0)
        assert "SideOfPier" not in {item["Name"] for item in t.DeviceState}

