"""Dome: capabilities consistent, positions in range, slews and the shutter complete."""

from __future__ import annotations

from typing import Any, Iterator

from conform.behaviour.base import angle_close, expect_error, in_range, make, require, skip_unless
from conform.checks import Check
from conform.context import DeviceContext

SHUTTER_OPEN, SHUTTER_CLOSED = 0, 1


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "at rest", "slewing", _at_rest)
    yield make(ctx, "slew to azimuth completes", "slewtoazimuth", _slew, motion=True)
    yield make(ctx, "invalid azimuth refused", "slewtoazimuth", _bad_azimuth, motion=True)
    yield make(ctx, "shutter opens and closes", "openshutter", _shutter, motion=True)
    yield make(ctx, "park completes", "park", _park, motion=True)


def _at_rest(ctx: DeviceContext, dome: Any) -> None:
    require(dome.Slewing is False, "Slewing is true on a dome nobody moved")
    if dome.CanSetAzimuth:
        in_range("Azimuth", dome.Azimuth, 0, 360)
    if dome.CanSetShutter:
        in_range("ShutterStatus", dome.ShutterStatus, 0, 4)


def _slew(ctx: DeviceContext, dome: Any) -> None:
    skip_unless(dome.CanSetAzimuth, "CanSetAzimuth is false")
    target = (dome.Azimuth + 30.0) % 360.0
    dome.SlewToAzimuth(target)
    ctx.wait(lambda: dome.Slewing is False, "Slewing to become false after SlewToAzimuth")
    require(angle_close(dome.Azimuth, target, 2.0), f"Azimuth is {dome.Azimuth} after SlewToAzimuth({target})")


def _bad_azimuth(ctx: DeviceContext, dome: Any) -> None:
    skip_unless(dome.CanSetAzimuth, "CanSetAzimuth is false")
    expect_error(0x401, "SlewToAzimuth(-10)", lambda: dome.SlewToAzimuth(-10.0))
    expect_error(0x401, "SlewToAzimuth(370)", lambda: dome.SlewToAzimuth(370.0))


def _shutter(ctx: DeviceContext, dome: Any) -> None:
    skip_unless(dome.CanSetShutter, "CanSetShutter is false")
    for target, call in ((SHUTTER_OPEN, dome.OpenShutter), (SHUTTER_CLOSED, dome.CloseShutter)):
        call()
        ctx.wait(lambda: dome.ShutterStatus in (SHUTTER_OPEN, SHUTTER_CLOSED, 4), "the shutter to stop moving")
        require(dome.ShutterStatus == target, f"ShutterStatus is {dome.ShutterStatus}, expected {target}")


def _park(ctx: DeviceContext, dome: Any) -> None:
    skip_unless(dome.CanPark, "CanPark is false")
    dome.Park()
    ctx.wait(lambda: dome.Slewing is False and dome.AtPark, "AtPark after Park")
