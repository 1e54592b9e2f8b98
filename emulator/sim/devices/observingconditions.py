"""ObservingConditions (IObservingConditionsV2): weather that drifts plausibly and deterministically.

Every sensor is a pure function of simulated time: smooth sums of sines whose phases come from
the emulator seed, around baselines from the config. Two emulators with the same seed therefore
read the same weather at the same simulated time, and a different seed gives different weather.
Derived sensors follow their causes (DewPoint from Temperature and Humidity by the Magnus
formula, SkyTemperature and rain from cloud, gusts above the wind speed), also when a cause is
pinned. Sensors report what they measured at their last update (every ``update_interval_s``, or
at Refresh), which is what TimeSinceLastUpdate describes.

A scripted weather timeline (``timeline``: points ``{at_s, CloudCover, RainRate, ...}`` on the
simulation clock, interpolated linearly or held stepwise, per sensor between the points that name
it, the first value before the first point and the last after the last) replaces the drift of
the sensors it names, for all time; the sensors derived from them follow. It is how a rehearsal
makes the weather turn on cue, and a SafetyMonitor with ``weather_limits`` turns unsafe with it.

For rehearsals any sensor can be pinned from the control API (``{"RainRate": 5.0}``) and
unpinned again (``{"RainRate": None}``); a pin takes effect at once.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from emulator.sim.clock import SimClock
from emulator.sim.devices.base import Device, DeviceConfig, get, put
from emulator.sim.errors import InvalidValue, check_range

SensorName = Literal[
    "CloudCover",
    "DewPoint",
    "Humidity",
    "Pressure",
    "RainRate",
    "SkyBrightness",
    "SkyQuality",
    "SkyTemperature",
    "StarFWHM",
    "Temperature",
    "WindDirection",
    "WindGust",
    "WindSpeed",
]
#: every sensor ObservingConditions defines, in the Literal's order (one list, so the two cannot drift)
SENSORS: tuple[str, ...] = get_args(SensorName)
_BY_LOWER = {name.lower(): name for name in SENSORS}

DEFAULT_DESCRIPTIONS: dict[str, str] = {
    "CloudCover": "Simulated cloud sensor: percentage of the sky covered by cloud (0-100 %)",
    "DewPoint": "Simulated dew point (deg C), derived from temperature and humidity",
    "Humidity": "Simulated relative humidity sensor (0-100 %)",
    "Pressure": "Simulated barometer: station pressure (hPa), not reduced to sea level",
    "RainRate": "Simulated rain gauge (mm/h)",
    "SkyBrightness": "Simulated sky light meter (lux)",
    "SkyQuality": "Simulated sky quality meter (mag/arcsec^2)",
    "SkyTemperature": "Simulated infrared sky thermometer (deg C)",
    "StarFWHM": "Simulated seeing monitor: star FWHM (arcsec)",
    "Temperature": "Simulated ambient air thermometer (deg C)",
    "WindDirection": "Simulated wind vane: direction the wind blows from (deg, N=0, E=90)",
    "WindGust": "Simulated anemometer: peak 3 s gust over the last 2 minutes (m/s)",
    "WindSpeed": "Simulated anemometer: wind speed (m/s)",
}

#: Number of samples that average a sensor over AveragePeriod.
_AVERAGE_SAMPLES = 9

# (amplitude scale, period in simulated seconds) of each sensor's drift components
_WAVES: dict[str, tuple[tuple[float, float], ...]] = {
    "Temperature": ((3.0, 86400.0), (1.5, 10800.0), (0.4, 1200.0)),
    "Humidity": ((15.0, 86400.0), (6.0, 7200.0), (2.0, 900.0)),
    "Pressure": ((4.0, 259200.0), (1.0, 10800.0), (0.2, 1500.0)),
    "CloudCover": ((30.0, 21600.0), (15.0, 3600.0), (5.0, 600.0)),
    "WindSpeed": ((2.0, 10800.0), (1.2, 900.0), (0.5, 120.0)),
    "WindGust": ((0.1, 300.0), (0.05, 47.0)),
    "WindDirection": ((50.0, 14400.0), (15.0, 1300.0), (5.0, 170.0)),
    "SkyBrightness": ((0.2, 3600.0), (1.0, 43200.0)),
    "SkyTemperature": ((0.5, 1800.0),),
    "StarFWHM": ((0.4, 7200.0), (0.2, 600.0), (0.1, 97.0)),
}


class WeatherPoint(BaseModel):
    """One point of the scripted weather: the sensors it names have these values at ``at_s``."""

    model_config = ConfigDict(extra="forbid")
    at_s: float = Field(..., ge=0, description="Simulated seconds since the emulator started (in a scenario: since its timeline's first step)")
    CloudCover: float | None = Field(None, ge=0, le=100, description="%")
    DewPoint: float | None = Field(None, ge=-80, le=60, description="deg C")
    Humidity: float | None = Field(None, ge=0, le=100, description="%")
    Pressure: float | None = Field(None, ge=300, le=1100, description="hPa")
    RainRate: float | None = Field(None, ge=0, le=1000, description="mm/h")
    SkyBrightness: float | None = Field(None, ge=0, le=200000, description="lux")
    SkyQuality: float | None = Field(None, ge=0, le=30, description="mag/arcsec^2")
    SkyTemperature: float | None = Field(None, ge=-100, le=60, description="deg C")
    StarFWHM: float | None = Field(None, gt=0, le=30, description="arcsec")
    Temperature: float | None = Field(None, ge=-60, le=60, description="deg C")
    WindDirection: float | None = Field(None, ge=0, lt=360, description="deg, where the wind blows from")
    WindGust: float | None = Field(None, ge=0, le=150, description="m/s")
    WindSpeed: float | None = Field(None, ge=0, le=150, description="m/s")

    @model_validator(mode="after")
    def _names_a_sensor(self) -> "WeatherPoint":
        if not self.values():
            raise ValueError(f"a timeline point needs at least one sensor value besides at_s ({', '.join(SENSORS)})")
        return self

    def values(self) -> dict[str, float]:
        return {name: v for name in SENSORS if (v := getattr(self, name)) is not None}


class ObservingConditionsConfig(DeviceConfig):
    type: Literal["observingconditions"] = "observingconditions"
    sensors: list[SensorName] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(SENSORS),
        description="Sensors this device has; the others answer NotImplemented",
    )
    update_interval_s: float = Field(
        15.0, ge=0, le=86400, description="Simulated seconds between sensor updates (0: continuous)"
    )
    average_period_h: float = Field(0.0, ge=0, description="Initial AveragePeriod (hours; 0 = instantaneous)")
    max_average_period_h: float = Field(24.0, ge=0, le=8760, description="Largest AveragePeriod accepted (hours)")
    pinned: dict[SensorName, float] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="Sensor values held fixed from the start, e.g. {RainRate = 5.0}"
    )
    sensor_descriptions: dict[SensorName, str] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="SensorDescription overrides, by sensor name"
    )
    temperature_c: float = Field(10.0, ge=-60, le=60, description="Mean air temperature (deg C)")
    humidity_pct: float = Field(55.0, ge=0, le=100, description="Mean relative humidity (%)")
    pressure_hpa: float = Field(1000.0, ge=300, le=1100, description="Mean station pressure (hPa)")
    cloud_cover_pct: float = Field(20.0, ge=0, le=100, description="Mean cloud cover (%); rain falls above 80 %")
    wind_speed_ms: float = Field(3.0, ge=0, le=100, description="Mean wind speed (m/s)")
    wind_direction_deg: float = Field(220.0, ge=0, lt=360, description="Mean wind direction (deg)")
    seeing_arcsec: float = Field(2.0, gt=0, le=20, description="Mean star FWHM (arcsec)")
    timeline: list[WeatherPoint] = Field(
        default_factory=list,
        description="Scripted weather: [{at_s = 0, CloudCover = 10}, {at_s = 600, CloudCover = 95, RainRate = 2}]; "
        "replaces the drift of the sensors it names",
    )
    timeline_mode: Literal["linear", "step"] = Field(
        "linear", description="Between timeline points: linear interpolation, or each value held until the next point"
    )

    @model_validator(mode="after")
    def _timeline_in_order(self) -> "ObservingConditionsConfig":
        for i in range(1, len(self.timeline)):
            if self.timeline[i].at_s <= self.timeline[i - 1].at_s:
                raise ValueError(
                    f"timeline[{i}].at_s = {self.timeline[i].at_s:g} must be later than "
                    f"timeline[{i - 1}].at_s = {self.timeline[i - 1].at_s:g} (points in time order)"
                )
        return self


class WeatherTimeline:
    """The scripted values of each sensor the timeline names, as a function of simulated time."""

    def __init__(self, points: list[WeatherPoint], mode: str) -> None:
        self.step = mode == "step"
        self.tracks: dict[str, list[tuple[float, float]]] = {}
        for point in points:
            for name, value in point.values().items():
                self.tracks.setdefault(name, []).append((point.at_s, value))

    def value(self, name: str, t: float) -> float | None:
        """The scripted value of ``name`` at ``t``, or None when the timeline does not name it."""
        track = self.tracks.get(name)
        if track is None:
            return None
        if t <= track[0][0]:
            return track[0][1]
        for (t0, v0), (t1, v1) in zip(track, track[1:]):
            if t < t1:
                if self.step:
                    return v0
                frac = (t - t0) / (t1 - t0)
                if name == "WindDirection":  # circular: the shorter way round
                    return (v0 + ((v1 - v0 + 180.0) % 360.0 - 180.0) * frac) % 360.0
                return v0 + (v1 - v0) * frac
        return track[-1][1]


def dew_point(temperature_c: float, humidity_pct: float) -> float:
    """Dew point (deg C) by the Magnus formula; never above the temperature."""
    b, c = 17.62, 243.12
    t = _clamp(temperature_c, -100.0, 100.0)  # a pinned absurd temperature must not break the maths
    gamma = math.log(_clamp(humidity_pct, 0.1, 100.0) / 100.0) + b * t / (c + t)
    return min(c * gamma / (b - gamma), temperature_c)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


class ObservingConditions(Device):
    device_type = "observingconditions"
    type_name = "ObservingConditions"
    interface_version = 2
    config_class = ObservingConditionsConfig
    state_names = SENSORS

    def __init__(self, config: ObservingConditionsConfig, clock: SimClock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self.config: ObservingConditionsConfig = config
        # seeded phases, drawn in a fixed order so the same seed always gives the same weather
        self._phases = {
            name: tuple(self.rng.uniform(0.0, 2.0 * math.pi) for _ in waves) for name, waves in _WAVES.items()
        }
        self._average_period_h = config.average_period_h
        self._pins: dict[str, float] = dict(config.pinned)
        self._timeline = WeatherTimeline(config.timeline, config.timeline_mode)
        self._refreshed_at = -math.inf
        self._cache: tuple[tuple[Any, ...], dict[str, float]] | None = None

    # -- the weather -----------------------------------------------------------------------------

    def _wave(self, name: str, t: float) -> float:
        """Sum of the sensor's sines at time ``t``; each unit-amplitude sine scaled by its weight."""
        return sum(
            amp * math.sin(2.0 * math.pi * t / period + phase)
            for (amp, period), phase in zip(_WAVES[name], self._phases[name])
        )

    def weather_at(self, t: float) -> dict[str, float]:
        """Instantaneous value of every sensor at simulated time ``t``, pins applied."""
        cfg, pins, timeline = self.config, self._pins, self._timeline

        def value(name: str, compute: Callable[[], float]) -> float:
            if name in pins:
                return pins[name]
            scripted = timeline.value(name, t - self.clock.timeline0)
            return compute() if scripted is None else scripted

        w: dict[str, float] = {}
        w["Temperature"] = value("Temperature", lambda: _clamp(cfg.temperature_c + self._wave("Temperature", t), -60, 60))
        w["Humidity"] = value("Humidity", lambda: _clamp(cfg.humidity_pct + self._wave("Humidity", t), 3, 100))
        w["DewPoint"] = value("DewPoint", lambda: dew_point(w["Temperature"], w["Humidity"]))
        w["Pressure"] = value("Pressure", lambda: _clamp(cfg.pressure_hpa + self._wave("Pressure", t), 300, 1100))
        w["CloudCover"] = value("CloudCover", lambda: _clamp(cfg.cloud_cover_pct + self._wave("CloudCover", t), 0, 100))
        w["RainRate"] = value("RainRate", lambda: round(max(0.0, w["CloudCover"] - 80.0) * 0.1, 3))
        w["WindSpeed"] = value("WindSpeed", lambda: max(0.0, cfg.wind_speed_ms + self._wave("WindSpeed", t)))
        w["WindGust"] = value(
            "WindGust", lambda: w["WindSpeed"] * (1.25 + self._wave("WindGust", t)) + (0.3 if w["WindSpeed"] > 0 else 0.0)
        )
        w["WindDirection"] = value(
            "WindDirection",
            lambda: (cfg.wind_direction_deg + self._wave("WindDirection", t)) % 360.0 if w["WindSpeed"] > 0 else 0.0,
        )

        def sky_lux() -> float:
            moon = 0.08 * max(0.0, math.sin(2.0 * math.pi * t / 43200.0 + self._phases["SkyBrightness"][1]))
            glow = 0.002 * (1.0 + 0.2 * math.sin(2.0 * math.pi * t / 3600.0 + self._phases["SkyBrightness"][0]))
            return (glow + moon) * (1.0 + w["CloudCover"] / 100.0)

        w["SkyBrightness"] = value("SkyBrightness", sky_lux)
        w["SkyQuality"] = value(
            "SkyQuality", lambda: _clamp(22.0 - 2.5 * math.log10(max(w["SkyBrightness"], 1e-6) / 0.002), 10.0, 23.0)
        )
        w["SkyTemperature"] = value(
            "SkyTemperature",
            lambda: w["Temperature"] - 3.0 - 25.0 * (1.0 - w["CloudCover"] / 100.0) + self._wave("SkyTemperature", t),
        )
        w["StarFWHM"] = value(
            "StarFWHM",
            lambda: _clamp(cfg.seeing_arcsec + self._wave("StarFWHM", t) + 0.08 * w["WindSpeed"], 0.5, 20.0),
        )
        return w

    def averaged_at(self, t: float) -> dict[str, float]:
        """Sensor values at ``t`` averaged over AveragePeriod (instantaneous when it is 0)."""
        period_s = self._average_period_h * 3600.0
        if period_s <= 0:
            return self.weather_at(t)
        samples = [self.weather_at(t - period_s * i / (_AVERAGE_SAMPLES - 1)) for i in range(_AVERAGE_SAMPLES)]
        out = {name: sum(s[name] for s in samples) / len(samples) for name in SENSORS}
        # direction is circular: average the wind vectors, not the angles
        x = sum(s["WindSpeed"] * math.cos(math.radians(s["WindDirection"])) for s in samples)
        y = sum(s["WindSpeed"] * math.sin(math.radians(s["WindDirection"])) for s in samples)
        out["WindDirection"] = math.degrees(math.atan2(y, x)) % 360.0 if (x or y) else 0.0
        for name, pinned in self._pins.items():
            out[name] = pinned
        return out

    def last_update(self) -> float:
        """Simulated time of the latest sensor update: the update schedule or a Refresh."""
        now = self.clock.now()
        interval = self.config.update_interval_s
        scheduled = now if interval <= 0 else math.floor(now / interval) * interval
        return max(scheduled, self._refreshed_at)

    def readings(self) -> dict[str, float]:
        """What the sensors report now: values measured at their last update."""
        t = self.last_update()
        key = (t, self._average_period_h, tuple(sorted(self._pins.items())))
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self.averaged_at(t))
        return self._cache[1]

    def reading(self, name: str) -> float:
        self._require_sensor(name, name)
        return float(self.readings()[name])

    def _require_sensor(self, name: str, member: str) -> None:
        self._require(name in self.config.sensors, member, f"this device has no {name} sensor")

    def _sensor_name(self, raw: str) -> str:
        name = _BY_LOWER.get(raw.strip().lower())
        if name is None:
            raise InvalidValue(f"'{raw}' is not an ObservingConditions sensor name; valid: {', '.join(SENSORS)}")
        return name

    # -- members ---------------------------------------------------------------------------------

    @get("averageperiod")
    def get_averageperiod(self) -> float:
        return self._average_period_h

    @put("averageperiod", AveragePeriod=float)
    def put_averageperiod(self, AveragePeriod: float) -> None:
        check_range("AveragePeriod", AveragePeriod, 0.0, self.config.max_average_period_h)
        self._average_period_h = AveragePeriod

    def _sensor_member(name: str):  # noqa: N805 - a class-body helper, not a method
        def read(self: "ObservingConditions") -> float:
            return self.reading(name)

        read.__name__ = name.lower()
        read.__doc__ = f"{name}: {DEFAULT_DESCRIPTIONS[name]}."
        return get(name.lower())(read)

    cloudcover = _sensor_member("CloudCover")
    dewpoint = _sensor_member("DewPoint")
    humidity = _sensor_member("Humidity")
    pressure = _sensor_member("Pressure")
    rainrate = _sensor_member("RainRate")
    skybrightness = _sensor_member("SkyBrightness")
    skyquality = _sensor_member("SkyQuality")
    skytemperature = _sensor_member("SkyTemperature")
    starfwhm = _sensor_member("StarFWHM")
    temperature = _sensor_member("Temperature")
    winddirection = _sensor_member("WindDirection")
    windgust = _sensor_member("WindGust")
    windspeed = _sensor_member("WindSpeed")
    del _sensor_member

    @put("refresh")
    def refresh(self) -> None:
        self._refreshed_at = self.clock.now()

    @get("sensordescription", SensorName=str)
    def sensordescription(self, SensorName: str) -> str:
        name = self._sensor_name(SensorName)
        self._require_sensor(name, f"SensorDescription({name})")
        return self.config.sensor_descriptions.get(name, DEFAULT_DESCRIPTIONS[name])

    @get("timesincelastupdate", SensorName=str)
    def timesincelastupdate(self, SensorName: str) -> float:
        # An empty name asks for the most recent update of any sensor (all update together here).
        if SensorName.strip():
            name = self._sensor_name(SensorName)
            self._require_sensor(name, f"TimeSinceLastUpdate({name})")
        return max(0.0, self.clock.now() - self.last_update())

    # -- simulation-only state -------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        return {"Pinned": dict(self._pins), "AveragePeriod": self._average_period_h}

    @staticmethod
    def _check_pin(name: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"state {name!r} must be a finite number (pin) or null (unpin), got {value!r}")

    def _pin(self, name: str, value: Any) -> None:
        self._check_pin(name, value)
        if value is None:
            self._pins.pop(name, None)
        else:
            self._pins[name] = float(value)

    def set_state(self, values: dict[str, Any]) -> None:
        """As the base, but pins and AveragePeriod are checked before anything is applied."""
        for name in SENSORS:
            if name in values:
                self._check_pin(name, values[name])
        period = values.get("AveragePeriod")
        if isinstance(period, (int, float)) and not 0.0 <= period <= self.config.max_average_period_h:
            raise ValueError(f"AveragePeriod must be 0 to {self.config.max_average_period_h} hours, got {period}")
        super().set_state(values)

    def _set_pins(self, pins: dict) -> None:
        unknown = [k for k in pins if k not in SENSORS]
        if unknown:
            raise KeyError(f"unknown sensors {unknown} in Pinned; sensors: {', '.join(SENSORS)}")
        self._pins.clear()
        for name, value in pins.items():
            self._pin(name, value)

    def _set_average_period(self, hours: float) -> None:
        if not 0.0 <= hours <= self.config.max_average_period_h:
            raise ValueError(f"AveragePeriod must be 0 to {self.config.max_average_period_h} hours, got {hours}")
        self._average_period_h = hours

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        for name in self.config.sensors:
            setters[name] = (object, lambda v, name=name: self._pin(name, v))
        setters["Pinned"] = (dict, self._set_pins)
        setters["AveragePeriod"] = (float, self._set_average_period)
        return setters
