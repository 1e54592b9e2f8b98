"""ObservingConditions: every sensor is either implemented and in range or NotImplemented."""

from __future__ import annotations

from typing import Any, Iterator

from conform.behaviour.base import expect_error, expect_refused, in_range, make, optional, require
from conform.checks import Check, Level
from conform.context import DeviceContext

#: Sensor -> plausible physical range.
SENSORS = {
    "CloudCover": (0, 100),
    "DewPoint": (-100, 100),
    "Humidity": (0, 100),
    "Pressure": (0, 1500),
    "RainRate": (0, 10000),
    "SkyBrightness": (0, 1e9),
    "SkyQuality": (-30, 30),
    "SkyTemperature": (-100, 100),
    "StarFWHM": (0, 1000),
    "Temperature": (-100, 100),
    "WindDirection": (0, 360),
    "WindGust": (0, 1000),
    "WindSpeed": (0, 1000),
}


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "sensors in range", "temperature", _sensors)
    yield make(ctx, "sensor descriptions", "sensordescription", _descriptions)
    yield make(ctx, "negative average period refused", "averageperiod", _bad_period)
    yield make(ctx, "refresh", "refresh", _refresh, level=Level.ISSUE)


def _sensors(ctx: DeviceContext, oc: Any) -> None:
    in_range("AveragePeriod", oc.AveragePeriod, 0, 1e6)
    for name, (low, high) in SENSORS.items():
        value = optional(lambda name=name: getattr(oc, name))
        if value is not None:
            in_range(name, value, low, high)


def _descriptions(ctx: DeviceContext, oc: Any) -> None:
    implemented = [n for n in SENSORS if optional(lambda n=n: getattr(oc, n)) is not None]
    for name in implemented:
        text = oc.SensorDescription(name)
        require(isinstance(text, str), f"SensorDescription({name}) must be a string, got {text!r}")
        age = oc.TimeSinceLastUpdate(name)
        require(isinstance(age, (int, float)) and (age >= 0 or age == -1), f"TimeSinceLastUpdate({name}) must be >= 0 (or -1), got {age!r}")
    expect_error(0x401, "SensorDescription('NoSuchSensor')", lambda: oc.SensorDescription("NoSuchSensor"))


def _bad_period(ctx: DeviceContext, oc: Any) -> None:
    before = oc.AveragePeriod
    expect_refused(ctx, "PUT", "averageperiod", [("AveragePeriod", "-1")], "AveragePeriod = -1")
    require(oc.AveragePeriod == before, f"a refused AveragePeriod changed it from {before} to {oc.AveragePeriod}")


def _refresh(ctx: DeviceContext, oc: Any) -> None:
    optional(oc.Refresh)
