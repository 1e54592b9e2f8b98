"""CoverCalibrator: states in range, the cover moves and stops, the calibrator lights and goes dark."""

from __future__ import annotations

from typing import Any, Iterator

from conform.behaviour.base import expect_error, in_range, make, require, skip_unless
from conform.checks import Check
from conform.context import DeviceContext

NOT_PRESENT = 0
COVER_CLOSED, COVER_OPEN = 1, 3
CAL_OFF, CAL_READY = 1, 3


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "states in range", "coverstate", _states)
    yield make(ctx, "cover opens and closes", "opencover", _cover, motion=True)
    yield make(ctx, "calibrator on and off", "calibratoron", _calibrator, motion=True)
    yield make(ctx, "too bright refused", "calibratoron", _too_bright, motion=True)


def _states(ctx: DeviceContext, cc: Any) -> None:
    in_range("CoverState", cc.CoverState, 0, 5)
    in_range("CalibratorState", cc.CalibratorState, 0, 5)
    require(not (cc.CoverState == NOT_PRESENT and cc.CalibratorState == NOT_PRESENT), "neither a cover nor a calibrator is present")


def _cover(ctx: DeviceContext, cc: Any) -> None:
    skip_unless(cc.CoverState != NOT_PRESENT, "no cover")
    for target, call in ((COVER_OPEN, cc.OpenCover), (COVER_CLOSED, cc.CloseCover)):
        call()
        ctx.wait(lambda: cc.CoverState not in (2,), "the cover to stop moving (CoverState not Moving)")
        require(cc.CoverState == target, f"CoverState is {cc.CoverState} after the move, expected {target}")
        if ("GET", "covermoving") in ctx.members:
            require(cc.CoverMoving is False, "CoverMoving is still true after the cover stopped")


def _calibrator(ctx: DeviceContext, cc: Any) -> None:
    skip_unless(cc.CalibratorState != NOT_PRESENT, "no calibrator")
    peak = cc.MaxBrightness
    require(peak >= 1, f"MaxBrightness must be >= 1, got {peak}")
    cc.CalibratorOn(peak)
    ctx.wait(lambda: cc.CalibratorState != 2, "the calibrator to become ready (CalibratorState not NotReady)")
    require(cc.CalibratorState == CAL_READY, f"CalibratorState is {cc.CalibratorState} after CalibratorOn, expected Ready (3)")
    require(cc.Brightness == peak, f"Brightness is {cc.Brightness} after CalibratorOn({peak})")
    cc.CalibratorOff()
    ctx.wait(lambda: cc.CalibratorState != 2, "the calibrator to go off")
    require(cc.CalibratorState == CAL_OFF, f"CalibratorState is {cc.CalibratorState} after CalibratorOff, expected Off (1)")


def _too_bright(ctx: DeviceContext, cc: Any) -> None:
    skip_unless(cc.CalibratorState != NOT_PRESENT, "no calibrator")
    peak = cc.MaxBrightness
    expect_error(0x401, f"CalibratorOn({peak + 1}) (MaxBrightness + 1)", lambda: cc.CalibratorOn(peak + 1))
    expect_error(0x401, "CalibratorOn(-1)", lambda: cc.CalibratorOn(-1))
