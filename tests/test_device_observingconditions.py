"""ObservingConditions through the real alpyca client: plausible, deterministic weather for a seed,
sensor subsets, AveragePeriod, Refresh/TimeSinceLastUpdate, pins, NotConnected and InvalidValue."""

from __future__ import annotations

import math
import time

import pytest
import requests
from alpaca.exceptions import InvalidValueException, NotConnectedException, NotImplementedException
from alpaca.observingconditions import ObservingConditions

from emulator import Emulator
from emulator.config import ConfigError
from emulator.sim.devices.observingconditions import SENSORS, dew_point

# physical bounds every sensor must respect, whatever the seed
RANGES = {
    "CloudCover": (0, 100),
    "DewPoint": (-80, 60),
    "Humidity": (0, 100),
    "Pressure": (300, 1100),
    "RainRate": (0, 500),
    "SkyBrightness": (0, 200000),
    "SkyQuality": (5, 25),
    "SkyTemperature": (-100, 60),
    "StarFWHM": (0.1, 30),
    "Temperature": (-60, 60),
    "WindDirection": (0, 360),
    "WindGust": (0, 150),
    "WindSpeed": (0, 150),
}


def oc_config(seed: int = 1, **options) -> dict:
    return {"emulator": {"seed": seed}, "devices": [{"type": "observingconditions", **options}]}


def connected(emu: Emulator, n: int = 0) -> ObservingConditions:
    oc = ObservingConditions(emu.address, n)
    oc.Connected = True
    return oc


def read_all(oc: ObservingConditions) -> dict[str, float]:
    return {name: getattr(oc, name) for name in SENSORS}


@pytest.fixture
def oc_emu():
    with Emulator(oc_config(seed=7), time_scale=100) as emu:
        yield emu


def test_every_sensor_readable_and_plausible(oc_emu):
    oc = connected(oc_emu)
    assert oc.InterfaceVersion == 2
    values = read_all(oc)
    for name, value in values.items():
        low, high = RANGES[name]
        assert isinstance(value, float), name
        assert low <= value <= high, (name, value)
        assert oc.SensorDescription(name)
        assert 0.0 <= oc.TimeSinceLastUpdate(name) < 15.0  # sensors update every 15 simulated s
    assert oc.AveragePeriod == 0.0
    assert values["DewPoint"] <= values["Temperature"]
    assert values["WindGust"] >= values["WindSpeed"]
    assert oc.Name and oc.Description


def test_dew_point_consistent_with_temperature_and_humidity():
    # a frozen clock in effect (scale 0.001, hourly updates): all reads see the same update
    with Emulator(oc_config(update_interval_s=3600), time_scale=0.001) as emu:
        oc = connected(emu)
        t, h, dp = oc.Temperature, oc.Humidity, oc.DewPoint
        assert dp == pytest.approx(dew_point(t, h), abs=1e-9)
    assert dew_point(20.0, 50.0) == pytest.approx(9.26, abs=0.05)
    assert dew_point(15.0, 100.0) == pytest.approx(15.0, abs=0.01)


def test_same_seed_same_weather_over_http():
    # At scale 0.001 simulated time stands nearly still, so both emulators report their update at t=0.
    cfg = oc_config(seed=42, update_interval_s=600)
    with Emulator(cfg, time_scale=0.001) as a, Emulator(cfg, time_scale=0.001) as b:
        va, vb = read_all(connected(a)), read_all(connected(b))
    assert va == vb
    with Emulator(oc_config(seed=43, update_interval_s=600), time_scale=0.001) as c:
        vc = read_all(connected(c))
    differing = [name for name in SENSORS if vc[name] != va[name]]
    assert len(differing) >= 8, differing  # a different seed gives different weather


def test_same_seed_same_weather_at_same_simulated_time():
    with Emulator(oc_config(seed=5)) as a, Emulator(oc_config(seed=5)) as b, Emulator(oc_config(seed=6)) as c:
        da, db, dc = (e.device("observingconditions") for e in (a, b, c))
        for t in (0.0, 61.5, 3600.0, 86400.0 * 3.3):
            assert da.weather_at(t) == db.weather_at(t)
            assert da.weather_at(t) != dc.weather_at(t)
        # it drifts: an hour later the weather is different
        assert da.weather_at(0.0)["Temperature"] != da.weather_at(3600.0)["Temperature"]


@pytest.mark.parametrize("seed", [0, 1, 2, 99, 12345])
def test_drift_stays_plausible_and_smooth_for_two_days(seed):
    with Emulator(oc_config(seed=seed)) as emu:
        dev = emu.device("observingconditions")
        previous = None
        for step in range(0, 2 * 86400, 300):
            w = dev.weather_at(float(step))
            for name, value in w.items():
                low, high = RANGES[name]
                assert math.isfinite(value) and low <= value <= high, (seed, step, name, value)
            assert w["DewPoint"] <= w["Temperature"] + 1e-9
            assert w["WindGust"] >= w["WindSpeed"]
            if previous is not None:
                # smooth: five minutes never change temperature or pressure by much
                assert abs(w["Temperature"] - previous["Temperature"]) < 1.0
                assert abs(w["Pressure"] - previous["Pressure"]) < 1.0
            previous = w


def test_sensor_subset_others_not_implemented():
    with Emulator(oc_config(sensors=["Temperature", "Humidity", "RainRate"]), time_scale=100) as emu:
        oc = connected(emu)
        assert isinstance(oc.Temperature, float) and isinstance(oc.RainRate, float)
        for name in ("CloudCover", "DewPoint", "WindSpeed", "SkyQuality"):
            with pytest.raises(NotImplementedException):
                getattr(oc, name)
            with pytest.raises(NotImplementedException):
                oc.SensorDescription(name)
            with pytest.raises(NotImplementedException):
                oc.TimeSinceLastUpdate(name)
        body = requests.get(f"{emu.url}/api/v1/observingconditions/0/devicestate", timeout=5).json()
        names = [item["Name"] for item in body["Value"]]
        assert names == ["Humidity", "RainRate", "Temperature", "TimeStamp"]


def test_unknown_sensor_name_is_invalid_value(oc_emu):
    oc = connected(oc_emu)
    for bad in ("Temp", "Rain Rate", ""):
        with pytest.raises(InvalidValueException):
            oc.SensorDescription(bad)
    with pytest.raises(InvalidValueException):
        oc.TimeSinceLastUpdate("Visibility")
    # an empty name asks for the latest update of any sensor (every 15 simulated s)
    assert 0.0 <= oc.TimeSinceLastUpdate("") < 15.0
    # a missing SensorName is a protocol error, not a device error
    r = requests.get(f"{oc_emu.url}/api/v1/observingconditions/0/sensordescription", timeout=5)
    assert r.status_code == 400


def test_average_period_get_put_and_range(oc_emu):
    connected(oc_emu)
    url = f"{oc_emu.url}/api/v1/observingconditions/0/averageperiod"
    for good in ("0", "0.25", "24"):
        body = requests.put(url, data={"AveragePeriod": good}, timeout=5).json()
        assert body["ErrorNumber"] == 0, body
        assert requests.get(url, timeout=5).json()["Value"] == float(good)
    for bad in ("-0.1", "24.5"):
        body = requests.put(url, data={"AveragePeriod": bad}, timeout=5).json()
        assert body["ErrorNumber"] == 0x401, body
    assert requests.get(url, timeout=5).json()["Value"] == 24.0
    oc = ObservingConditions(oc_emu.address, 0)
    assert oc.AveragePeriod == 24.0
    values = read_all(oc)  # averaged readings stay plausible
    for name, value in values.items():
        assert RANGES[name][0] <= value <= RANGES[name][1], (name, value)


def test_averaging_smooths_the_fast_components():
    with Emulator(oc_config(seed=3)) as emu:
        dev = emu.device("observingconditions")
        instant = [dev.weather_at(float(t))["WindSpeed"] for t in range(0, 3600, 10)]
        dev.set_state({"AveragePeriod": 0.5})
        averaged = [dev.averaged_at(float(t))["WindSpeed"] for t in range(0, 3600, 10)]

        def roughness(xs: list[float]) -> float:
            return sum(abs(b - a) for a, b in zip(xs, xs[1:]))

        assert roughness(averaged) < roughness(instant)


def test_time_since_last_update_and_refresh():
    with Emulator(oc_config(update_interval_s=3600), time_scale=100) as emu:
        oc = connected(emu)
        assert 0.0 <= oc.TimeSinceLastUpdate("Temperature") < 3600.0
        start = time.monotonic()
        while oc.TimeSinceLastUpdate("Pressure") < 20.0 and time.monotonic() - start < 10:
            time.sleep(0.02)
        before = oc.TimeSinceLastUpdate("Pressure")
        assert before >= 20.0
        w0 = time.monotonic()
        oc.Refresh()
        after = oc.TimeSinceLastUpdate("Pressure")
        bound = (time.monotonic() - w0) * 100 + 1e-6
        assert after <= bound  # measured anew at the Refresh, not at the schedule
        assert oc.TimeSinceLastUpdate("") == pytest.approx(oc.TimeSinceLastUpdate("Temperature"), abs=50)


def test_pins_override_and_feed_derived_sensors(oc_emu):
    oc = connected(oc_emu)
    oc_emu.set_state("observingconditions", RainRate=5.0)
    assert oc.RainRate == 5.0
    state = oc_emu.set_state("observingconditions", Temperature=20.0, Humidity=50.0, CloudCover=100)
    assert state["Pinned"] == {"RainRate": 5.0, "Temperature": 20.0, "Humidity": 50.0, "CloudCover": 100.0}
    assert oc.Temperature == 20.0
    assert oc.DewPoint == pytest.approx(dew_point(20.0, 50.0))
    assert oc.SkyTemperature > 20.0 - 5.0  # overcast: the sky is nearly as warm as the air

    oc_emu.set_state("observingconditions", RainRate=None)
    assert oc.RainRate == pytest.approx(2.0)  # unpinned: rain now follows the 100 % cloud
    oc_emu.set_state("observingconditions", Pinned={})
    assert oc_emu.get_state("observingconditions")["Pinned"] == {}
    assert oc.Temperature != 20.0


def test_pins_from_config_and_bad_state(oc_emu):
    with Emulator(oc_config(pinned={"WindSpeed": 25.0}), time_scale=100) as emu:
        oc = connected(emu)
        assert oc.WindSpeed == 25.0
        assert oc.WindGust >= 25.0
    with pytest.raises(TypeError):
        oc_emu.set_state("observingconditions", Temperature=30.0, RainRate="heavy")
    assert oc_emu.get_state("observingconditions")["Pinned"] == {}  # a bad request changes nothing
    with pytest.raises(KeyError):
        oc_emu.set_state("observingconditions", Pinned={"Snow": 1.0})
    with pytest.raises(KeyError):
        oc_emu.set_state("observingconditions", Visibility=3.0)
    with pytest.raises(ValueError):
        oc_emu.set_state("observingconditions", AveragePeriod=100.0)


def test_not_connected(oc_emu):
    oc = ObservingConditions(oc_emu.address, 0)
    for name in (*SENSORS, "AveragePeriod", "DeviceState"):
        with pytest.raises(NotConnectedException):
            getattr(oc, name)
    with pytest.raises(NotConnectedException):
        oc.Refresh()
    with pytest.raises(NotConnectedException):
        oc.SensorDescription("Temperature")
    with pytest.raises(NotConnectedException):
        oc.TimeSinceLastUpdate("Temperature")


def test_devicestate_lists_every_sensor(oc_emu):
    connected(oc_emu)
    body = requests.get(f"{oc_emu.url}/api/v1/observingconditions/0/devicestate", timeout=5).json()
    assert body["ErrorNumber"] == 0
    names = [item["Name"] for item in body["Value"]]
    assert names == [*SENSORS, "TimeStamp"]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"devices\[0\]\.sensors"):
        Emulator(oc_config(sensors=["Temperature", "Visibility"]))
    with pytest.raises(ConfigError, match=r"devices\[0\]\.update_interval_s"):
        Emulator(oc_config(update_interval_s=-1))
