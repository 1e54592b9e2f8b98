"""The mount's sides and limits through alpyca: SideOfPier from the hour angle, DestinationSideOfPier,
meridian flips, and tracking that stops at the meridian and horizon limits.

Positions are given relative to the mount's own SiderealTime (RA = LST - HA), so every test
means the same hour angles whatever the time of day it runs at.
"""

from __future__ import annotations

import time
from functools import partial

import pytest
from alpaca.exceptions import InvalidOperationException
from alpaca.telescope import PierSide, Telescope

from emulator import Emulator
from emulator.config import ConfigError
from support import one_device
from support import wait_for as _wait_for

scope_emulator = partial(one_device, "telescope")
wait_for = partial(_wait_for, timeout=20.0)


def ra_at(t: Telescope, ha_hours: float) -> float:
    """The RA that has hour angle ``ha_hours`` now."""
    return (t.SiderealTime - ha_hours) % 24.0


def hour_angle(emu: Emulator) -> float:
    return emu.get_state("telescope")["HourAngle"]


def slew_and_wait(emu: Emulator, t: Telescope, ra: float, dec: float) -> float:
    """Slew, wait for the end, return the simulated seconds it took (at least: polling adds a little)."""
    start = emu.clock.now()
    t.SlewToCoordinatesAsync(ra, dec)
    wait_for(lambda: not t.Slewing, what="the slew to end")
    return emu.clock.now() - start


def test_side_of_pier_follows_the_hour_angle_and_a_slew_across_the_meridian_flips():
    with scope_emulator(slew_rate_deg_s=2.0) as emu:
        t = Telescope(emu.address, 0)
        t.Tracking = True
        t.SyncToCoordinates(ra_at(t, -1.0), 30.0)  # an hour east of the meridian: through the pole
        assert t.SideOfPier == PierSide.pierWest
        # east to east: no flip, a 15 degree move
        ra = ra_at(t, -2.0)
        assert t.DestinationSideOfPier(ra, 30.0) == PierSide.pierWest
        slew_and_wait(emu, t, ra, 30.0)
        assert t.SideOfPier == PierSide.pierWest
        # across the meridian: the prediction, the flip, and a swing through the pole (>= 180 deg at 2 deg/s)
        ra = ra_at(t, 1.0)
        assert t.DestinationSideOfPier(ra, 30.0) == PierSide.pierEast
        took = slew_and_wait(emu, t, ra, 30.0)
        assert t.SideOfPier == PierSide.pierEast
        assert took >= 180.0 / 2.0 - 0.01  # without the flip 45 deg would take 22.5 s
        assert 0.9 < hour_angle(emu) < 1.1 and t.Tracking is True
        # and back east: flips again
        ra = ra_at(t, -1.5)
        assert t.DestinationSideOfPier(ra, 10.0) == PierSide.pierWest
        slew_and_wait(emu, t, ra, 10.0)
        assert t.SideOfPier == PierSide.pierWest


def test_a_target_within_the_meridian_limit_is_taken_without_a_flip():
    with scope_emulator(meridian_limit_deg=6.0) as emu:  # 0.4 h
        t = Telescope(emu.address, 0)
        t.Tracking = True
        t.SyncToCoordinates(ra_at(t, -1.0), 20.0)
        assert t.SideOfPier == PierSide.pierWest
        ra = ra_at(t, 0.2)  # 3 degrees past the meridian: still reachable through the pole
        assert t.DestinationSideOfPier(ra, 20.0) == PierSide.pierWest
        slew_and_wait(emu, t, ra, 20.0)
        assert t.SideOfPier == PierSide.pierWest
        ra = ra_at(t, 0.6)  # 9 degrees past: beyond the limit, so it flips
        assert t.DestinationSideOfPier(ra, 20.0) == PierSide.pierEast
        slew_and_wait(emu, t, ra, 20.0)
        assert t.SideOfPier == PierSide.pierEast
        # on the east side a target a little before the meridian is reachable too
        ra = ra_at(t, -0.2)
        assert t.DestinationSideOfPier(ra, 20.0) == PierSide.pierEast
        slew_and_wait(emu, t, ra, 20.0)
        assert t.SideOfPier == PierSide.pierEast


def test_tracking_stops_at_the_meridian_limit_and_the_position_stays():
    with scope_emulator(time_scale=1000, meridian_limit_deg=2.0) as emu:  # 2 deg = 0.1333 h
        t = Telescope(emu.address, 0)
        t.Tracking = True
        t.SyncToCoordinates(ra_at(t, -1.0), 40.0)  # through the pole, then just before the meridian
        t.SyncToCoordinates(ra_at(t, -0.05), 40.0)
        assert t.SideOfPier == PierSide.pierWest
        assert emu.get_state("telescope")["LimitHit"] is None
        # nobody asks while it tracks across: the limit is found afterwards, where it was met
        time.sleep(1.5)  # 1500 simulated s; the limit is met after about 660 s
        assert t.Tracking is False
        state = emu.get_state("telescope")
        assert state["LimitHit"] == "meridian"
        assert state["HourAngle"] == pytest.approx(2.0 / 15.0, abs=1e-5)
        assert t.Declination == pytest.approx(40.0)
        time.sleep(0.2)
        assert hour_angle(emu) == pytest.approx(2.0 / 15.0, abs=1e-5)  # stopped: fixed on the ground
        assert t.SideOfPier == PierSide.pierWest
        # tracking cannot be turned on past the limit; a re-slew to the target flips and tracks again
        with pytest.raises(InvalidOperationException, match="meridian limit"):
            t.Tracking = True
        assert t.Tracking is False
        t.SlewToCoordinatesAsync(ra_at(t, 0.2), 40.0)
        wait_for(lambda: not t.Slewing, what="the flip to end")
        assert t.SideOfPier == PierSide.pierEast and t.Tracking is True
        assert emu.get_state("telescope")["LimitHit"] is None


def test_tracking_stops_at_the_horizon_limit():
    with scope_emulator(time_scale=1000, horizon_limit_deg=20.0) as emu:
        t = Telescope(emu.address, 0)
        t.SlewToAltAzAsync(270.0, 21.0)  # due west, setting at about 9 deg/h
        wait_for(lambda: not t.Slewing, what="the alt-az slew to end")
        t.Tracking = True
        wait_for(lambda: not t.Tracking, what="tracking to stop at the horizon limit")
        assert emu.get_state("telescope")["LimitHit"] == "horizon"
        assert t.Altitude == pytest.approx(20.0, abs=1e-4)
        time.sleep(0.3)
        assert t.Altitude == pytest.approx(20.0, abs=1e-4)


def test_without_a_horizon_limit_tracking_goes_on_below_the_horizon():
    with scope_emulator(time_scale=1000) as emu:
        t = Telescope(emu.address, 0)
        t.SlewToAltAzAsync(270.0, 1.0)
        wait_for(lambda: not t.Slewing, what="the alt-az slew to end")
        t.Tracking = True
        wait_for(lambda: t.Altitude < -1.0, what="the setting star to sink below the horizon")
        assert t.Tracking is True and emu.get_state("telescope")["LimitHit"] is None


@pytest.mark.parametrize(
    ("option", "value"), [("meridian_limit_deg", 45.0), ("meridian_limit_deg", -1.0), ("horizon_limit_deg", 95.0)]
)
def test_bad_limits_name_the_key(option, value):
    with pytest.raises(ConfigError, match=rf"devices\[0\]\.{option}"):
        Emulator({"devices": [{"type": "telescope", option: value}]})
