"""A device's settings as OmniSim's ``xmlprofile`` document, from its real configuration.

Test suites written for ASCOM's OmniSim read each device's settings from
``GET /simulator/v1/{device}/{n}/xmlprofile`` and compare what the device answers with them, so
the keys are OmniSim's and the values are written the way OmniSim (.NET) writes them: booleans
``True``/``False``, numbers in the invariant culture, lists comma-separated, indexed settings as
separate keys (``FilterNames 0``). The document is a serialised list of key/value pairs::

    <?xml version="1.0" encoding="utf-8"?>
    <ArrayOfSettingsPair xmlns:xsi="..." xmlns:xsd="...">
      <SettingsPair><Key>MaxStep</Key><Value>50000</Value></SettingsPair> ...

The values come from the device's configuration (and, for derived values such as a telescope's
aperture area, from the device's own getters), never from its moving state, so a changed option
shows here. Keys OmniSim has that model nothing here are left out; a few keys (a switch's name,
range and step) are ours in OmniSim's style, as OmniSim's own were not found.
"""

from __future__ import annotations

from typing import Any, Callable
from xml.sax.saxutils import escape

from emulator.sim.devices.base import Device

_HEAD = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<ArrayOfSettingsPair xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
)
_GAIN_MODES = {"none": 0, "index": 1, "value": 2}


def value_text(value: Any) -> str:
    """A setting's value as .NET writes it (invariant culture, ``True``/``False``, lists with commas)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (list, tuple)):
        return ",".join(value_text(v) for v in value)
    return str(value)


def document(pairs: list[tuple[str, Any]]) -> str:
    """The XML text of ``(key, value)`` pairs, in order."""
    body = "".join(
        f"<SettingsPair><Key>{escape(key)}</Key><Value>{escape(value_text(value))}</Value></SettingsPair>"
        for key, value in pairs
    )
    return f"{_HEAD}{body}</ArrayOfSettingsPair>"


def settings(device: Device, unique_id: str) -> list[tuple[str, Any]]:
    """OmniSim's settings of ``device``: the common ones, then its type's."""
    c = device.config
    common = [
        ("UniqueID", unique_id),
        ("InterfaceVersion", device.interface_version),
        ("ConnectDelay", int(round(c.connect_delay_s * 1000))),
    ]
    return common + _BY_TYPE[device.device_type](device)


def _camera(d: Any) -> list[tuple[str, Any]]:
    c = d.config
    return [
        ("CameraXSize", c.width), ("CameraYSize", c.height),
        ("PixelSizeX", c.pixel_size_x_um), ("PixelSizeY", c.pixel_size_y_um),
        ("FullWellCapacity", float(d.fullwellcapacity())), ("MaxADU", c.max_adu), ("ElectronsPerADU", c.electrons_per_adu),
        ("CanAsymmetricBin", c.can_asymmetric_bin), ("MaxBinX", c.max_bin_x), ("MaxBinY", c.max_bin_y),
        ("HasShutter", c.has_shutter), ("SensorName", c.sensor_name), ("SensorType", d.sensortype()),
        ("BayerOffsetX", c.bayer_offset_x), ("BayerOffsetY", c.bayer_offset_y),
        ("HasCooler", c.has_cooler), ("CanSetCCDTemperature", c.can_set_ccd_temperature),
        ("CanGetCoolerPower", c.can_get_cooler_power), ("SetCCDTemperature", c.set_ccd_temperature_c),
        ("CoolerAmbientTemperature", c.ambient_temperature_c), ("CoolerSetPointMinimum", c.setpoint_min_c),
        ("CoolerDeltaTMax", c.cooler_max_delta_c),
        ("CanAbortExposure", c.can_abort_exposure), ("CanStopExposure", c.can_stop_exposure),
        ("MinExposure", c.exposure_min_s), ("MaxExposure", c.exposure_max_s), ("ExposureResolution", c.exposure_resolution_s),
        ("ApplyNoise", c.noise_level > 0), ("CanPulseGuide", c.can_pulse_guide), ("CanFastReadout", c.can_fast_readout),
        ("ReadoutModes", c.readout_modes),
        ("GainMode", _GAIN_MODES[c.gain_mode]), ("GainMin", c.gain_min), ("GainMax", c.gain_max), ("Gains", c.gains), ("Gain", c.gain),
        ("OffsetMode", _GAIN_MODES[c.offset_mode]), ("OffsetMin", c.offset_min), ("OffsetMax", c.offset_max),
        ("Offsets", c.offsets), ("Offset", c.offset),
        ("HasSubExposure", c.supports_sub_exposure),
    ]


def _covercalibrator(d: Any) -> list[tuple[str, Any]]:
    c = d.config
    cover = {"closed": "Closed", "open": "Open", "unknown": "Unknown"}[c.cover_initial] if c.has_cover else "NotPresent"
    return [
        ("Cover Initialisation State", cover),
        ("Calibrator Initialisation State", "Off" if c.has_calibrator else "NotPresent"),
        ("Maximum Brightness", c.max_brightness),
        ("Cover Opening Time", c.cover_travel_s),
        ("Calibrator Stablisation Time", c.warmup_s),
    ]


def _dome(d: Any) -> list[tuple[str, Any]]:
    c = d.config
    return [
        ("CanFindHome", c.can_find_home), ("CanPark", c.can_park), ("CanSetAltitude", c.can_set_altitude),
        ("CanSetAzimuth", c.can_set_azimuth), ("CanSetPark", c.can_set_park), ("CanSetShutter", c.can_set_shutter),
        ("CanSyncAzimuth", c.can_sync_azimuth), ("HomeAzimuth", c.home_azimuth), ("ParkAzimuth", c.park_azimuth),
        ("SlewRate", c.azimuth_rate_deg_s),
    ]


def _filterwheel(d: Any) -> list[tuple[str, Any]]:
    c = d.config
    names, offsets = d.names(), d.focusoffsets()
    pairs: list[tuple[str, Any]] = [
        ("Slots", len(names)), ("FilterChangeTimeInterval", int(round(c.slot_time_s * 1000))),
        ("ImplementsNames", c.implements_names), ("ImplementsOffsets", c.focus_offsets is not None),
        ("PreemptMoves", True),
    ]
    pairs += [(f"FilterNames {i}", name) for i, name in enumerate(names)]
    pairs += [(f"FocusOffsets {i}", offset) for i, offset in enumerate(offsets)]
    return pairs


def _focuser(d: Any) -> list[tuple[str, Any]]:
    c = d.config
    start = c.initial_position if c.initial_position is not None else c.max_step // 2
    return [
        ("Absolute", c.absolute), ("MaxIncrement", d.maxincrement()), ("MaxStep", c.max_step), ("Position", start),
        ("StepSize", c.step_size_um if c.step_size_um is not None else 0), ("CanStepSize", c.step_size_um is not None),
        ("CanHalt", c.can_halt), ("Synchronous", c.synchronous),
        ("TempProbe", c.temperature_available), ("Temperature", c.temperature_c),
        ("TempMax", c.temperature_c + c.temperature_swing_c), ("TempMin", c.temperature_c - c.temperature_swing_c),
        ("TempComp", False), ("TempCompAvailable", c.temp_comp_available),
        ("TempSteps", abs(c.tempcomp_steps_per_c)), ("SettleTime", 0),
    ]


def _observingconditions(d: Any) -> list[tuple[str, Any]]:
    c = d.config
    pairs: list[tuple[str, Any]] = [("Average Period", c.average_period_h), ("Sensor Read Period", c.update_interval_s)]
    for sensor in c.sensors:
        if sensor == "DewPoint":
            continue  # OmniSim has no settings for DewPoint: it is worked out from temperature and humidity
        pinned = sensor in c.pinned
        pairs += [(f"{sensor}Override", pinned), (f"{sensor}Override Value", c.pinned.get(sensor, 0.0))]
    return pairs


def _rotator(d: Any) -> list[tuple[str, Any]]:
    c = d.config
    return [
        ("CanReverse", c.can_reverse), ("Reverse", c.reverse),
        ("StepSize", c.step_size_deg if c.step_size_deg is not None else 0), ("RotationRate", c.speed_deg_s),
        ("Position", (c.initial_mechanical_position + c.sync_offset_deg) % 360.0),
    ]


def _safetymonitor(d: Any) -> list[tuple[str, Any]]:
    return [("SafetyMonitor", d.config.is_safe)]


def _switch(d: Any) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = [("NumSwitches", len(d.config.switches))]
    for i, s in enumerate(d.config.switches):
        value = s.value if s.value is not None else s.min
        pairs += [
            (f"Name Switch{i}", s.name), (f"Description Switch{i}", s.description),
            (f"Minimum Switch{i}", s.min), (f"Maximum Switch{i}", s.max), (f"StepSize Switch{i}", s.step),
            (f"CanWrite Switch{i}", s.can_write), (f"Value Switch{i}", value),
            (f"CanAsync Switch{i}", s.can_async), (f"Duration Switch{i}", s.async_delay_s if s.can_async else 0.0),
        ]
    return pairs


def _telescope(d: Any) -> list[tuple[str, Any]]:
    c = d.config
    home_alt, home_az = d._home_altaz
    return [
        ("AlignMode", int(d.alignmentmode())), ("Aperture", c.aperture_diameter_m), ("ApertureArea", d.aperturearea()),
        ("FocalLength", c.focal_length_m), ("EquatorialSystem", d.equatorialsystem()), ("Refraction", c.does_refraction),
        ("Latitude", c.site_latitude), ("Longitude", c.site_longitude), ("Elevation", c.site_elevation),
        ("HomeAltitude", home_alt), ("HomeAzimuth", home_az),
        ("CanFindHome", c.can_find_home), ("CanPark", c.can_park), ("CanUnpark", c.can_unpark), ("CanSetPark", c.can_set_park),
        ("CanPulseGuide", c.can_pulse_guide), ("CanSetGuideRates", c.can_set_guide_rates),
        ("CanSetEquRates", c.can_set_rates), ("CanSetPointingState", c.can_set_pier_side), ("CanSetTracking", c.can_set_tracking),
        ("CanSlew", c.can_slew), ("CanSlewAsync", c.can_slew_async), ("CanSlewAltAz", c.can_slew_altaz),
        ("CanSlewAltAzAsync", c.can_slew_altaz_async), ("CanSync", c.can_sync), ("CanSyncAltAz", c.can_sync_altaz),
        ("CanMoveAxis", c.can_move_axis), ("MaxSlewRate", c.slew_rate_deg_s),
    ]


_BY_TYPE: dict[str, Callable[[Any], list[tuple[str, Any]]]] = {
    "camera": _camera,
    "covercalibrator": _covercalibrator,
    "dome": _dome,
    "filterwheel": _filterwheel,
    "focuser": _focuser,
    "observingconditions": _observingconditions,
    "rotator": _rotator,
    "safetymonitor": _safetymonitor,
    "switch": _switch,
    "telescope": _telescope,
}
