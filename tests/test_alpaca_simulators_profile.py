"""``--profile alpaca-simulators``: the original controller's simulator, driven as its tests drive it.

Its device set (seven types, number 0, connected, before Platform 7, fast) through real alpyca
clients, and each of its control endpoints (``GET /``, ``GET /reload``, ``/sunlight``, the
writable IsSafe) through requests on a served emulator; under the default profile none of them
exists. "Fast" is judged by deadlines that the default settings (a 60 s slew, a 20 s shutter, a
60 s cooler time constant at time scale 1) could not meet.
"""

from __future__ import annotations

import pytest
import requests
from alpaca.camera import Camera
from alpaca.dome import Dome, ShutterState
from alpaca.filterwheel import FilterWheel
from alpaca.focuser import Focuser
from alpaca.management import configureddevices
from alpaca.observingconditions import ObservingConditions
from alpaca.safetymonitor import SafetyMonitor
from alpaca.telescope import Telescope

from emulator import Emulator
from emulator.sim import interfaces
from support import wait_for
from test_cli import STOP_DEADLINE, read_until, spawn

TIMEOUT = 10
FAST = 10.0  # s: what "fast" must beat, with a wide margin for a loaded machine
CLASSES = {
    "camera": Camera, "dome": Dome, "filterwheel": FilterWheel, "focuser": Focuser,
    "observingconditions": ObservingConditions, "safetymonitor": SafetyMonitor, "telescope": Telescope,
}
ENVELOPE_KEYS = {"ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage"}


@pytest.fixture
def sims():
    with Emulator(profile="alpaca-simulators") as emu:
        yield emu


def put_issafe(emu: Emulator, value: str, **extra: str) -> requests.Response:
    return requests.put(f"{emu.url}/api/v1/safetymonitor/0/issafe", data={"IsSafe": value, **extra}, timeout=TIMEOUT)


# -- the device set --------------------------------------------------------------------------------


def test_seven_devices_named_numbered_and_before_platform_7(sims):
    devices = configureddevices(sims.address)
    assert sorted(d["DeviceType"].lower() for d in devices) == sorted(CLASSES)
    assert all(d["DeviceNumber"] == 0 for d in devices)
    for d in devices:
        assert d["DeviceName"] == f"Simulator {d['DeviceType']}"
    for device_type, cls in CLASSES.items():
        version = cls(sims.address, 0).InterfaceVersion
        assert version == interfaces.PLATFORM7[device_type] - 1, device_type  # the last before Platform 7
        r = requests.put(f"{sims.url}/api/v1/{device_type}/0/connect", timeout=TIMEOUT)
        assert r.status_code == 400, device_type  # no Platform 7 members at all


def test_devices_are_connected_at_start(sims):
    for device_type, cls in CLASSES.items():
        assert cls(sims.address, 0).Connected is True, device_type


def test_slews_shutter_cooling_focuser_and_wheel_are_fast(sims):
    scope = Telescope(sims.address, 0)
    scope.SlewToAltAzAsync(180.0, 30.0)  # from the pole's side of the sky to the south: ~100 degrees
    wait_for(lambda: not scope.Slewing, "the telescope slew", timeout=FAST)
    assert abs(scope.Azimuth - 180.0) < 0.5 and abs(scope.Altitude - 30.0) < 0.5

    dome = Dome(sims.address, 0)
    dome.OpenShutter()
    wait_for(lambda: dome.ShutterStatus == ShutterState.shutterOpen, "the shutter to open", timeout=FAST)
    dome.SlewToAzimuth(180.0)
    wait_for(lambda: not dome.Slewing and abs(dome.Azimuth - 180.0) < 0.5, "the dome slew", timeout=FAST)

    cam = Camera(sims.address, 0)
    cam.CoolerOn = True
    cam.SetCCDTemperature = -10.0
    wait_for(lambda: abs(cam.CCDTemperature + 10.0) < 0.5, "the camera to cool to -10 C", timeout=FAST)

    foc = Focuser(sims.address, 0)
    foc.Move(0)
    wait_for(lambda: not foc.IsMoving and foc.Position == 0, "the focuser move", timeout=FAST)

    wheel = FilterWheel(sims.address, 0)
    wheel.Position = 3
    wait_for(lambda: wheel.Position == 3, "the filter wheel", timeout=FAST)


# -- GET / -----------------------------------------------------------------------------------------


def test_root_is_200_with_the_server_and_its_devices(sims):
    r = requests.get(f"{sims.url}/", timeout=TIMEOUT)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["ServerName"] == "Alpaca Simulators"
    assert body["Devices"] == configureddevices(sims.address)


# -- GET /reload -----------------------------------------------------------------------------------


def test_reload_puts_every_device_and_the_sunlight_back(sims):
    dome, foc, mon = Dome(sims.address, 0), Focuser(sims.address, 0), SafetyMonitor(sims.address, 0)
    start = foc.Position
    dome.OpenShutter()
    foc.Move(start - 1000)
    assert put_issafe(sims, "false").status_code == 200
    assert requests.put(f"{sims.url}/sunlight", params={"state": "true"}, timeout=TIMEOUT).status_code == 200
    wait_for(lambda: dome.ShutterStatus == ShutterState.shutterOpen and foc.Position == start - 1000, "the changes")
    assert mon.IsSafe is False and sims.registry.observatory.sunlight is True

    r = requests.get(f"{sims.url}/reload", timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"message": "State config reloaded"}
    assert dome.ShutterStatus == ShutterState.shutterClosed
    assert foc.Position == start
    assert mon.IsSafe is True
    assert sims.registry.observatory.sunlight is None
    assert dome.Connected is True  # connected again, as configured


# -- /sunlight -------------------------------------------------------------------------------------


def test_sunlight_on_and_off_by_query_or_form(sims):
    url = f"{sims.url}/sunlight"
    assert requests.get(url, timeout=TIMEOUT).json() == {"sunlight": None}
    r = requests.put(url, params={"state": "true"}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.json() == {"message": "Sunlight simulation enabled"}
    assert sims.registry.observatory.sunlight is True
    assert requests.get(url, timeout=TIMEOUT).json() == {"sunlight": True}
    r = requests.put(url, data={"state": "False"}, timeout=TIMEOUT)  # a form field, any case of the value
    assert r.status_code == 200 and r.json() == {"message": "Sunlight simulation disabled"}
    assert sims.registry.observatory.sunlight is False
    assert requests.get(url, timeout=TIMEOUT).json() == {"sunlight": False}


@pytest.mark.parametrize("kwargs, fragment", [
    ({"params": {"state": "dusk"}}, "Parameter 'state' must be true or false, got 'dusk'"),
    ({"data": {"state": ""}}, "Parameter 'state' must be true or false"),
    ({}, "Missing parameter 'state'"),
])
def test_a_bad_sunlight_state_is_a_400_naming_it_and_changes_nothing(sims, kwargs, fragment):
    sims.registry.observatory.sunlight = True
    r = requests.put(f"{sims.url}/sunlight", timeout=TIMEOUT, **kwargs)
    assert r.status_code == 400 and fragment in r.text
    assert sims.registry.observatory.sunlight is True


# -- PUT /api/v1/safetymonitor/0/issafe ------------------------------------------------------------


def test_issafe_is_writable_and_reads_back(sims):
    mon = SafetyMonitor(sims.address, 0)
    assert mon.IsSafe is True
    r = put_issafe(sims, "FALSE", ClientTransactionID="17")  # values are case-insensitive
    assert r.status_code == 200
    body = r.json()
    assert set(body) == ENVELOPE_KEYS and "Value" not in body
    assert body["ClientTransactionID"] == 17 and body["ErrorNumber"] == 0 and body["ServerTransactionID"] > 0
    assert mon.IsSafe is False
    assert put_issafe(sims, "true").json()["ErrorNumber"] == 0
    assert mon.IsSafe is True
    assert sims.traffic.count(device_type="safetymonitor", member="issafe", verb="PUT") == 2


@pytest.mark.parametrize("data, fragment", [
    ({"IsSafe": "yes"}, "Parameter 'IsSafe' must be true or false, got 'yes'"),
    ({"issafe": "false"}, "Missing parameter 'IsSafe' (PUT form keys are case-sensitive)"),
    ({"IsSafe": "false", "ClientTransactionID": "-1"}, "ClientTransactionID must be an unsigned 32-bit integer"),
])
def test_a_bad_issafe_put_is_a_400_naming_the_parameter_and_changes_nothing(sims, data, fragment):
    r = requests.put(f"{sims.url}/api/v1/safetymonitor/0/issafe", data=data, timeout=TIMEOUT)
    assert r.status_code == 400 and fragment in r.text
    assert SafetyMonitor(sims.address, 0).IsSafe is True


def test_issafe_put_of_an_absent_device_is_a_400(sims):
    r = requests.put(f"{sims.url}/api/v1/safetymonitor/1/issafe", data={"IsSafe": "false"}, timeout=TIMEOUT)
    assert r.status_code == 400 and "safetymonitor device 1 does not exist" in r.text


# -- only under the profile ------------------------------------------------------------------------


def test_the_default_profile_serves_none_of_them():
    with Emulator({"devices": [{"type": "safetymonitor", "connected": True}]}) as emu:
        # / is the web panel there (HTML), not the original simulator's JSON
        assert requests.get(f"{emu.url}/", timeout=TIMEOUT).headers["Content-Type"].startswith("text/html")
        assert requests.put(f"{emu.url}/", timeout=TIMEOUT).status_code == 400
        for verb, path in [("GET", "/reload"), ("GET", "/sunlight"), ("PUT", "/sunlight?state=true")]:
            r = requests.request(verb, f"{emu.url}{path}", timeout=TIMEOUT)
            assert r.status_code == 400 and "not a valid Alpaca path" in r.text, path
        r = put_issafe(emu, "false")
        assert r.status_code == 400 and "does not accept PUT" in r.text
        assert emu.registry.observatory.sunlight is None and SafetyMonitor(emu.address, 0).IsSafe is True


def test_cli_serves_the_profile():
    proc = spawn("--port", "0", "--no-discovery", "--profile", "alpaca-simulators")
    try:
        url = read_until(proc, r"listening on (http://127\.0\.0\.1:\d+)").group(1)
        assert requests.get(f"{url}/", timeout=TIMEOUT).status_code == 200
        assert requests.get(f"{url}/api/v1/telescope/0/name", timeout=TIMEOUT).json()["Value"] == "Simulator Telescope"
    finally:
        proc.terminate()
        proc.communicate(timeout=STOP_DEADLINE)
    assert proc.returncode == 0
