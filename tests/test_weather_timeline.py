"""The scripted weather timeline and the SafetyMonitor's thresholds on it, through alpyca.

Each read is bracketed by the simulation clock (sim time just before and just after it), so a
check says exactly what the sensor may report in that window and never depends on how fast the
machine is.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from alpaca.observingconditions import ObservingConditions
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator
from emulator.config import ConfigError
from support import wait_for

CONTINUOUS = {"update_interval_s": 0}  # sensors report the instant they are read


def weather(timeline: list[dict], limits: dict | None = None, time_scale: float = 1000, **oc: Any) -> Emulator:
    devices: list[dict] = [{"type": "observingconditions", "connected": True, "timeline": timeline, **CONTINUOUS, **oc}]
    if limits is not None:
        devices.append({"type": "safetymonitor", "connected": True, "weather_limits": limits})
    return Emulator({"devices": devices}, time_scale=time_scale)


def bracketed(emu: Emulator, read: Callable[[], Any]) -> tuple[float, Any, float]:
    before = emu.clock.now()
    value = read()
    return before, value, emu.clock.now()


def test_a_linear_timeline_interpolates_on_the_simulation_clock():
    with weather([{"at_s": 0, "CloudCover": 0.0, "WindSpeed": 2.0}, {"at_s": 1000, "CloudCover": 100.0}]) as emu:
        oc = ObservingConditions(emu.address, 0)
        for _ in range(5):
            before, value, after = bracketed(emu, lambda: oc.CloudCover)
            assert before / 10.0 - 1e-6 <= value <= after / 10.0 + 1e-6
        assert oc.WindSpeed == pytest.approx(2.0)  # one point: held for all time
        wait_for(lambda: emu.clock.now() > 1000, what="the end of the timeline")
        assert oc.CloudCover == pytest.approx(100.0)  # the last value holds after the last point
        assert oc.RainRate == pytest.approx(2.0)  # derived from the scripted cloud, as from drifting cloud


def test_a_stepped_timeline_holds_each_value_until_the_next_point():
    with weather([{"at_s": 0, "Humidity": 40.0}, {"at_s": 200, "Humidity": 90.0}], timeline_mode="step") as emu:
        oc = ObservingConditions(emu.address, 0)
        seen = []
        while emu.clock.now() < 400:
            seen.append(bracketed(emu, lambda: oc.Humidity))
        for before, value, after in seen:
            if after < 200:
                assert value == pytest.approx(40.0)
            elif before >= 200:
                assert value == pytest.approx(90.0)
            else:
                assert value in (pytest.approx(40.0), pytest.approx(90.0))


def test_the_safety_monitor_goes_unsafe_when_the_timeline_crosses_a_threshold():
    timeline = [{"at_s": 0, "CloudCover": 10.0, "WindSpeed": 3.0}, {"at_s": 300, "CloudCover": 95.0}]
    with weather(timeline, {"max_cloud_cover": 70, "max_wind_speed": 12}, timeline_mode="step") as emu:
        sm = SafetyMonitor(emu.address, 0)
        seen = []
        while emu.clock.now() < 500:
            seen.append(bracketed(emu, lambda: sm.IsSafe))
        assert any(after < 300 for _, _, after in seen) and any(before > 300 for before, _, _ in seen)
        for before, safe, after in seen:
            if after < 300:
                assert safe is True, f"unsafe at sim {before:.1f}..{after:.1f} s, before the clouds came"
            elif before >= 300:
                assert safe is False, f"safe at sim {before:.1f}..{after:.1f} s, under 95 % cloud"
        reasons = emu.get_state("safetymonitor")["UnsafeReasons"]
        assert reasons == ["CloudCover 95 is above max_cloud_cover = 70"]


def test_rain_wind_and_the_sensors_last_update():
    # sensors update every 60 s: IsSafe follows what they report, not the weather between updates
    timeline = [{"at_s": 0, "RainRate": 0.0, "WindSpeed": 4.0}, {"at_s": 100, "RainRate": 0.5, "WindSpeed": 20.0}]
    devices = [
        {"type": "observingconditions", "connected": True, "timeline": timeline, "timeline_mode": "step",
         "update_interval_s": 60},
        {"type": "safetymonitor", "connected": True, "weather_limits": {"max_rain_rate": 0, "max_wind_speed": 15}},
    ]
    with Emulator({"devices": devices}, time_scale=1000) as emu:
        sm = SafetyMonitor(emu.address, 0)
        seen = []
        while emu.clock.now() < 200:
            seen.append(bracketed(emu, lambda: sm.IsSafe))
        for before, safe, after in seen:
            if after < 120:  # the first update at or after 100 s is at 120 s
                assert safe is True
            elif before >= 120:
                assert safe is False
        reasons = emu.get_state("safetymonitor")["UnsafeReasons"]
        assert reasons == ["RainRate 0.5 is above max_rain_rate = 0", "WindSpeed 20 is above max_wind_speed = 15"]


def test_the_control_api_override_still_wins_and_null_gives_it_back_to_the_weather():
    with weather([{"at_s": 0, "CloudCover": 90.0}], {"max_cloud_cover": 50}) as emu:
        sm = SafetyMonitor(emu.address, 0)
        assert sm.IsSafe is False
        emu.set_state("safetymonitor", IsSafe=True)
        assert sm.IsSafe is True and emu.get_state("safetymonitor")["IsSafeOverride"] is True
        emu.set_state("safetymonitor", IsSafe=None)
        assert sm.IsSafe is False
        with pytest.raises(TypeError, match="IsSafe"):
            emu.set_state("safetymonitor", IsSafe="maybe")
        # a pin on the weather station wins over the timeline, and the monitor sees it
        emu.set_state("observingconditions", CloudCover=10.0)
        assert sm.IsSafe is True


def test_no_weather_station_or_a_missing_sensor_is_unsafe():
    limits = {"max_cloud_cover": 70}
    with Emulator({"devices": [{"type": "safetymonitor", "connected": True, "weather_limits": limits}]}) as emu:
        assert SafetyMonitor(emu.address, 0).IsSafe is False
        assert "no ObservingConditions" in emu.get_state("safetymonitor")["UnsafeReasons"][0]
    devices = [{"type": "observingconditions", "sensors": ["Temperature"]},
               {"type": "safetymonitor", "connected": True, "weather_limits": limits}]
    with Emulator({"devices": devices}) as emu:
        assert SafetyMonitor(emu.address, 0).IsSafe is False
        assert emu.get_state("safetymonitor")["UnsafeReasons"] == ["no CloudCover sensor for max_cloud_cover"]


@pytest.mark.parametrize(
    ("device", "key"),
    [
        ({"type": "observingconditions", "timeline": [{"at_s": 10, "CloudCover": 1}, {"at_s": 5, "CloudCover": 2}]},
         r"timeline\[1\]\.at_s = 5 must be later than timeline\[0\]\.at_s = 10"),
        ({"type": "observingconditions", "timeline": [{"at_s": 0, "CloudCover": 150}]}, r"devices\[0\]\.timeline\[0\]\.CloudCover"),
        ({"type": "observingconditions", "timeline": [{"at_s": 0, "Clouds": 50}]}, r"devices\[0\]\.timeline\[0\]\.Clouds"),
        ({"type": "observingconditions", "timeline": [{"at_s": 0}]}, r"devices\[0\]\.timeline\[0\]: .*at least one sensor"),
        ({"type": "observingconditions", "timeline_mode": "cubic"}, r"devices\[0\]\.timeline_mode"),
        ({"type": "safetymonitor", "weather_limits": {"max_clouds": 50}}, r"devices\[0\]\.weather_limits\.max_clouds"),
        ({"type": "safetymonitor", "weather_limits": {"max_cloud_cover": 150}}, r"devices\[0\]\.weather_limits\.max_cloud_cover"),
        ({"type": "safetymonitor", "weather_limits": {}}, r"devices\[0\]\.weather_limits: .*at least one threshold"),
    ],
)
def test_bad_weather_config_names_the_key(device, key):
    with pytest.raises(ConfigError, match=key):
        Emulator({"devices": [device]})
