"""SafetyMonitor: IsSafe, from the weather's thresholds or settable from the control API.

Without ``weather_limits`` IsSafe is the configured ``is_safe``. With them it is derived from what
the emulator's ObservingConditions device reports now (its sensors' last update, as a client would
read them): unsafe while any threshold is crossed, and unsafe when the weather station or a sensor
a threshold needs is missing (a monitor that cannot see the weather does not call it safe). The
control API's ``IsSafe`` overrides both until it is set to null again, so the weather can still
turn on cue. Disconnected, IsSafe is False, as ASCOM requires.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from emulator.sim.devices.base import Device, DeviceConfig, get

#: threshold key -> (sensor, True if the sensor must stay at or below it, False if at or above)
_LIMITS: dict[str, tuple[str, bool]] = {
    "max_cloud_cover": ("CloudCover", True),
    "max_rain_rate": ("RainRate", True),
    "max_wind_speed": ("WindSpeed", True),
    "max_wind_gust": ("WindGust", True),
    "max_humidity": ("Humidity", True),
    "max_star_fwhm": ("StarFWHM", True),
    "min_sky_quality": ("SkyQuality", False),
}


class WeatherLimits(BaseModel):
    """Thresholds on the ObservingConditions readings; unset ones are not checked."""

    model_config = ConfigDict(extra="forbid")
    max_cloud_cover: float | None = Field(None, ge=0, le=100, description="Unsafe above this CloudCover (%)")
    max_rain_rate: float | None = Field(None, ge=0, description="Unsafe above this RainRate (mm/h; 0: any rain)")
    max_wind_speed: float | None = Field(None, ge=0, description="Unsafe above this WindSpeed (m/s)")
    max_wind_gust: float | None = Field(None, ge=0, description="Unsafe above this WindGust (m/s)")
    max_humidity: float | None = Field(None, ge=0, le=100, description="Unsafe above this Humidity (%)")
    max_star_fwhm: float | None = Field(None, gt=0, description="Unsafe above this StarFWHM (arcsec)")
    min_sky_quality: float | None = Field(None, ge=0, description="Unsafe below this SkyQuality (mag/arcsec^2)")

    @model_validator(mode="after")
    def _some_threshold(self) -> "WeatherLimits":
        if not self.thresholds():
            raise ValueError(f"weather_limits needs at least one threshold: {', '.join(_LIMITS)}")
        return self

    def thresholds(self) -> dict[str, float]:
        return {key: v for key in _LIMITS if (v := getattr(self, key)) is not None}


class SafetyMonitorConfig(DeviceConfig):
    type: Literal["safetymonitor"] = "safetymonitor"
    is_safe: bool = Field(True, description="Initial IsSafe (without weather_limits)")
    weather_limits: WeatherLimits | None = Field(
        None,
        description="Derive IsSafe from the ObservingConditions device: {max_cloud_cover = 70, max_rain_rate = 0, "
        "max_wind_speed = 12, ...}",
    )


class SafetyMonitor(Device):
    device_type = "safetymonitor"
    type_name = "SafetyMonitor"
    interface_version = 3
    config_class = SafetyMonitorConfig
    state_names = ("IsSafe",)

    def __init__(self, config: SafetyMonitorConfig, clock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self.config: SafetyMonitorConfig = config
        self._override: bool | None = None  # set from the control API; wins over everything else

    def unsafe_reasons(self) -> list[str]:
        """Why the weather is unsafe now (empty: safe, or no weather_limits)."""
        limits = self.config.weather_limits
        if limits is None:
            return []
        station = self.site.first("observingconditions") if self.site is not None else None
        if station is None:
            return ["no ObservingConditions device to read the weather from"]
        with station.lock:
            readings = station.readings()
            present = set(station.config.sensors)
        reasons = []
        for key, threshold in limits.thresholds().items():
            sensor, at_most = _LIMITS[key]
            if sensor not in present:
                reasons.append(f"no {sensor} sensor for {key}")
                continue
            value = readings[sensor]
            if (value > threshold) if at_most else (value < threshold):
                reasons.append(f"{sensor} {value:g} is {'above' if at_most else 'below'} {key} = {threshold:g}")
        return reasons

    def _safe(self) -> bool:
        """What IsSafe answers while connected."""
        if self._override is not None:
            return self._override
        if self.config.weather_limits is None:
            return self.config.is_safe
        return not self.unsafe_reasons()

    @get("issafe", connection=False)
    def issafe(self) -> bool:
        # ASCOM: IsSafe must be False, not an error, while disconnected.
        return self.connected and self._safe()

    def extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"IsSafe": self._safe(), "IsSafeOverride": self._override}
        if self.config.weather_limits is not None:
            state["UnsafeReasons"] = self.unsafe_reasons()
        return state

    @staticmethod
    def _check_override(value: Any) -> None:
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"state 'IsSafe' must be true, false or null (back to the weather), got {value!r}")

    def _set_override(self, value: Any) -> None:
        self._check_override(value)
        self._override = value

    def set_state(self, values: dict[str, Any]) -> None:
        """As the base, but IsSafe is checked before anything is applied."""
        if "IsSafe" in values:
            self._check_override(values["IsSafe"])
        super().set_state(values)

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        setters["IsSafe"] = (object, self._set_override)
        return setters
