"""Telescope: coordinates and rates in range, invalid targets refused, slews, park, guiding and
MoveAxis complete within their deadlines."""

from __future__ import annotations

from typing import Any, Iterator

from alpaca.telescope import GuideDirections, TelescopeAxes

from conform.behaviour.base import angle_close, close, expect_error, expect_refused, in_range, make, optional, require, skip_unless
from conform.checks import Check
from conform.context import DeviceContext


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "coordinates in range", "rightascension", _coordinates)
    yield make(ctx, "capabilities consistent", "canpark", _capabilities)
    yield make(ctx, "axis rates", "axisrates", _axis_rates, needs=("axisrates",))
    yield make(ctx, "tracking rates", "trackingrates", _tracking_rates, needs=("trackingrates",))
    yield make(ctx, "invalid targets refused", "targetrightascension", _bad_targets)
    yield make(ctx, "slew completes", "slewtocoordinatesasync", _slew, motion=True)
    yield make(ctx, "invalid slew refused", "slewtocoordinatesasync", _bad_slew, motion=True)
    yield make(ctx, "pulse guide completes", "pulseguide", _pulse_guide, motion=True, needs=("ispulseguiding",))
    yield make(ctx, "move axis and stop", "moveaxis", _move_axis, motion=True, needs=("moveaxis",))
    yield make(ctx, "park and unpark", "park", _park, motion=True, needs=("atpark",))


def _coordinates(ctx: DeviceContext, tel: Any) -> None:
    in_range("RightAscension", tel.RightAscension, 0, 24)
    in_range("Declination", tel.Declination, -90, 90)
    in_range("SiderealTime", tel.SiderealTime, 0, 24)
    in_range("SiteLatitude", tel.SiteLatitude, -90, 90)
    in_range("SiteLongitude", tel.SiteLongitude, -180, 180)
    alt, az = optional(lambda: tel.Altitude), optional(lambda: tel.Azimuth)
    if alt is not None:
        in_range("Altitude", alt, -90, 90)
    if az is not None:
        in_range("Azimuth", az, 0, 360)
    require(tel.Slewing is False, "Slewing is true on a mount nobody moved")


def _capabilities(ctx: DeviceContext, tel: Any) -> None:
    if tel.CanUnpark:
        require(tel.CanPark, "CanUnpark is true but CanPark is false")
    if tel.CanSlewAsync or tel.CanSlew:
        require(isinstance(tel.CanSync, bool), "CanSync is not a boolean")


def _axis_rates(ctx: DeviceContext, tel: Any) -> None:
    for axis in TelescopeAxes:
        can = tel.CanMoveAxis(axis)
        rates = tel.AxisRates(axis)
        if can:
            require(len(rates) >= 1, f"CanMoveAxis({axis}) is true but AxisRates({axis}) is empty")
        for r in rates:
            require(0 <= r.Minimum <= r.Maximum, f"AxisRates({axis}) has Minimum {r.Minimum} > Maximum {r.Maximum}")
    expect_refused(ctx, "GET", "canmoveaxis", [("Axis", "5")], "CanMoveAxis(5)")
    expect_refused(ctx, "GET", "axisrates", [("Axis", "5")], "AxisRates(5)")


def _tracking_rates(ctx: DeviceContext, tel: Any) -> None:
    rates = [int(r) for r in tel.TrackingRates]
    require(len(rates) >= 1, "TrackingRates is empty")
    require(int(tel.TrackingRate) in rates, f"TrackingRate {int(tel.TrackingRate)} is not one of TrackingRates {rates}")


def _bad_targets(ctx: DeviceContext, tel: Any) -> None:
    expect_error(0x401, "TargetRightAscension = 25", lambda: setattr(tel, "TargetRightAscension", 25.0))
    expect_error(0x401, "TargetRightAscension = -1", lambda: setattr(tel, "TargetRightAscension", -1.0))
    expect_error(0x401, "TargetDeclination = 100", lambda: setattr(tel, "TargetDeclination", 100.0))
    expect_error(0x401, "TargetDeclination = -100", lambda: setattr(tel, "TargetDeclination", -100.0))


def _ready(ctx: DeviceContext, tel: Any) -> None:
    """Unparked, not slewing, tracking (where settable): where an equatorial slew can start."""
    if ctx.has("atpark") and tel.AtPark:
        skip_unless(tel.CanUnpark, "the mount is parked and CanUnpark is false")
        tel.Unpark()
    if tel.CanSetTracking and not tel.Tracking:
        tel.Tracking = True


def _slew(ctx: DeviceContext, tel: Any) -> None:
    skip_unless(tel.CanSlewAsync, "CanSlewAsync is false")
    _ready(ctx, tel)
    ra = (tel.SiderealTime - 1.0) % 24.0  # an hour west of the meridian: above the horizon
    dec = max(-60.0, min(60.0, tel.SiteLatitude - 10.0))
    tel.SlewToCoordinatesAsync(ra, dec)
    ctx.wait(lambda: tel.Slewing is False, "Slewing to become false after SlewToCoordinatesAsync")
    require(angle_close(tel.RightAscension * 15.0, ra * 15.0, 0.5), f"RightAscension is {tel.RightAscension} after slewing to {ra}")
    require(close(tel.Declination, dec, 0.5), f"Declination is {tel.Declination} after slewing to {dec}")
    require(close(tel.TargetRightAscension, ra, 1e-6) and close(tel.TargetDeclination, dec, 1e-6), "the target is not the slew's coordinates")


def _bad_slew(ctx: DeviceContext, tel: Any) -> None:
    skip_unless(tel.CanSlewAsync, "CanSlewAsync is false")
    _ready(ctx, tel)
    expect_error(0x401, "SlewToCoordinatesAsync(25, 0)", lambda: tel.SlewToCoordinatesAsync(25.0, 0.0))
    expect_error(0x401, "SlewToCoordinatesAsync(1, 100)", lambda: tel.SlewToCoordinatesAsync(1.0, 100.0))
    require(tel.Slewing is False, "a refused slew left the mount slewing")


def _pulse_guide(ctx: DeviceContext, tel: Any) -> None:
    skip_unless(tel.CanPulseGuide, "CanPulseGuide is false")
    _ready(ctx, tel)
    tel.PulseGuide(GuideDirections.guideNorth, 200)
    ctx.wait(lambda: tel.IsPulseGuiding is False, "IsPulseGuiding to become false after PulseGuide(North, 200 ms)")


def _move_axis(ctx: DeviceContext, tel: Any) -> None:
    primary = TelescopeAxes.axisPrimary
    skip_unless(tel.CanMoveAxis(primary), "CanMoveAxis(0) is false")
    _ready(ctx, tel)
    rates = tel.AxisRates(primary)
    skip_unless(rates, "AxisRates(0) is empty")
    rate = rates[0].Maximum
    tel.MoveAxis(primary, rate)
    require(tel.Slewing is True, "Slewing is false while MoveAxis runs")
    tel.MoveAxis(primary, 0.0)
    ctx.wait(lambda: tel.Slewing is False, "Slewing to become false after MoveAxis(0, 0)")
    expect_refused(ctx, "PUT", "moveaxis", [("Axis", "0"), ("Rate", repr(rate * 10 + 100))], f"MoveAxis(0, {rate * 10 + 100})")


def _park(ctx: DeviceContext, tel: Any) -> None:
    skip_unless(tel.CanPark, "CanPark is false")
    _ready(ctx, tel)
    tel.Park()
    ctx.wait(lambda: tel.AtPark, "AtPark after Park")
    require(tel.Slewing is False, "Slewing is still true once AtPark")
    if tel.CanUnpark:
        tel.Unpark()
        require(tel.AtPark is False, "AtPark is still true after Unpark")
