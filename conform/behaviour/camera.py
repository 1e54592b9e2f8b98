"""Camera: geometry and binning in range, invalid values refused, an exposure that completes."""

from __future__ import annotations

from typing import Any, Iterator

from conform.behaviour.base import expect_error, in_range, make, optional, require, skip_unless
from conform.checks import Check
from conform.context import DeviceContext


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "geometry in range", "cameraxsize", _geometry)
    yield make(ctx, "idle at rest", "camerastate", _idle)
    yield make(ctx, "invalid binning refused", "binx", _bad_bin)
    yield make(ctx, "gain within limits", "gain", _gain, needs=("gain",))
    yield make(ctx, "negative exposure refused", "startexposure", _bad_exposure, motion=True)
    yield make(ctx, "exposure completes", "startexposure", _exposure, motion=True)


def _geometry(ctx: DeviceContext, cam: Any) -> None:
    xs, ys = cam.CameraXSize, cam.CameraYSize
    require(xs > 0 and ys > 0, f"CameraXSize/CameraYSize must be positive, got {xs}x{ys}")
    mbx, mby = cam.MaxBinX, cam.MaxBinY
    require(mbx >= 1 and mby >= 1, f"MaxBinX/MaxBinY must be >= 1, got {mbx}/{mby}")
    in_range("BinX", cam.BinX, 1, mbx)
    in_range("BinY", cam.BinY, 1, mby)
    require(cam.NumX >= 1 and cam.NumX * cam.BinX <= xs, f"NumX {cam.NumX} does not fit CameraXSize {xs} at BinX {cam.BinX}")
    require(cam.NumY >= 1 and cam.NumY * cam.BinY <= ys, f"NumY {cam.NumY} does not fit CameraYSize {ys} at BinY {cam.BinY}")
    require(cam.PixelSizeX > 0 and cam.PixelSizeY > 0, "PixelSizeX/PixelSizeY must be positive")
    require(cam.MaxADU > 0, f"MaxADU must be positive, got {cam.MaxADU}")
    if ("GET", "exposuremin") in ctx.members:
        lo, hi = cam.ExposureMin, cam.ExposureMax
        require(0 <= lo <= hi, f"need 0 <= ExposureMin <= ExposureMax, got {lo}, {hi}")


def _idle(ctx: DeviceContext, cam: Any) -> None:
    state = cam.CameraState
    require(state in (0, 5), f"an idle camera's CameraState is Idle (0) (or Error, 5), got {state}")


def _bad_bin(ctx: DeviceContext, cam: Any) -> None:
    too_big = cam.MaxBinX + 1
    before = cam.BinX
    expect_error(0x401, f"BinX = {too_big} (MaxBinX + 1)", lambda: setattr(cam, "BinX", too_big))
    expect_error(0x401, "BinX = 0", lambda: setattr(cam, "BinX", 0))
    require(cam.BinX == before, f"a refused BinX changed BinX from {before} to {cam.BinX}")


def _gain(ctx: DeviceContext, cam: Any) -> None:
    gain = optional(lambda: cam.Gain)
    skip_unless(gain is not None, "Gain is not implemented")
    gmin, gmax = optional(lambda: cam.GainMin), optional(lambda: cam.GainMax)
    if gmin is not None and gmax is not None:
        in_range("Gain", gain, gmin, gmax)
        expect_error(0x401, f"Gain = {gmax + 1} (GainMax + 1)", lambda: setattr(cam, "Gain", gmax + 1))
    else:
        gains = cam.Gains
        in_range("Gain (an index into Gains)", gain, 0, len(gains) - 1)


def _bad_exposure(ctx: DeviceContext, cam: Any) -> None:
    expect_error(0x401, "StartExposure(Duration=-1)", lambda: cam.StartExposure(-1.0, True))


SUBFRAME = ("BinX", "BinY", "StartX", "StartY", "NumX", "NumY")


def _exposure(ctx: DeviceContext, cam: Any) -> None:
    """A small, short light frame; the subframe settings are restored afterwards."""
    saved = {name: getattr(cam, name) for name in SUBFRAME}
    try:
        _expose(ctx, cam)
    finally:
        for name in SUBFRAME:
            setattr(cam, name, saved[name])


def _expose(ctx: DeviceContext, cam: Any) -> None:
    cam.BinX = 1
    cam.BinY = 1
    cam.StartX, cam.StartY = 0, 0
    cam.NumX, cam.NumY = min(cam.CameraXSize, 64), min(cam.CameraYSize, 48)
    duration = max(cam.ExposureMin, 0.01) if ("GET", "exposuremin") in ctx.members else 0.01
    cam.StartExposure(duration, True)
    ctx.wait(lambda: cam.ImageReady, "ImageReady after StartExposure")
    require(cam.CameraState == 0, f"CameraState must be Idle (0) once the image is ready, got {cam.CameraState}")
    image = cam.ImageArray
    require(len(image) == cam.NumX and len(image[0]) == cam.NumY, f"ImageArray is {len(image)}x{len(image[0])}, expected NumX x NumY = {cam.NumX}x{cam.NumY}")
    in_range("LastExposureDuration", cam.LastExposureDuration, 0, duration * 10 + 1)
