"""``--profile omnisim`` driven the way suites written for ASCOM's OmniSim drive OmniSim.

Such suites (alpyca's own is the model here) read every device's settings from
``GET /simulator/v1/{type}/0/xmlprofile`` (the XML in the envelope's Value; each value through
``ast.literal_eval``, else the raw string), compare what the device answers with them, and exercise
each device with real alpyca clients. The same is done here against a served emulator, with waits
judged by events instead of OmniSim's wall-clock sleeps (the profile runs faster here).
"""

from __future__ import annotations

import ast
import math
import xml.etree.ElementTree as ET

import pytest
import requests
from alpaca.camera import Camera, SensorType
from alpaca.covercalibrator import CalibratorStatus, CoverCalibrator, CoverStatus
from alpaca.dome import Dome, ShutterState
from alpaca.exceptions import NotImplementedException
from alpaca.filterwheel import FilterWheel
from alpaca.focuser import Focuser
from alpaca.management import configureddevices
from alpaca.observingconditions import ObservingConditions
from alpaca.rotator import Rotator
from alpaca.safetymonitor import SafetyMonitor
from alpaca.switch import Switch
from alpaca.telescope import AlignmentModes, GuideDirections, PierSide, Telescope, TelescopeAxes

from emulator import Emulator
from support import wait_for

TIMEOUT = 10
TYPES = ["camera", "covercalibrator", "dome", "filterwheel", "focuser", "observingconditions", "rotator", "safetymonitor", "switch", "telescope"]


def get_settings(url: str, device_type: str, number: int = 0) -> dict:
    """What an OmniSim-targeted suite's conftest does with the xmlprofile."""
    resp = requests.get(f"{url}/simulator/v1/{device_type}/{number}/xmlprofile", params={"ClientTransactionID": "4"}, timeout=TIMEOUT)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/json"), resp.text
    body = resp.json()
    assert body["ErrorNumber"] == 0 and body["ClientTransactionID"] == 4
    out = {}
    for pair in ET.fromstring(body["Value"]).iter("SettingsPair"):
        key, text = pair.find("Key").text, pair.find("Value").text
        try:
            out[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key] = text
    return out


@pytest.fixture(scope="module")
def omnisim():
    with Emulator(profile="omnisim", time_scale=20) as emu:
        yield emu


def connected(cls, emu):
    dev = cls(emu.address, 0)
    dev.Connected = True
    return dev


# -- the server ----------------------------------------------------------------------------------


def test_device_set_names_and_numbers(omnisim):
    host, port = omnisim.address.split(":")
    devices = configureddevices(f"{host}:{port}")
    assert sorted(d["DeviceType"].lower() for d in devices) == TYPES
    assert all(d["DeviceNumber"] == 0 for d in devices)
    names = {d["DeviceType"]: d["DeviceName"] for d in devices}
    assert names["Focuser"] == "Alpaca Focuser Simulator" and names["Telescope"] == "Alpaca Telescope Simulator"


def test_common_members_as_the_suites_expect(omnisim):
    d = connected(SafetyMonitor, omnisim)
    assert d.Connected
    assert d.Description == "ASCOM SafetyMonitor Simulator Driver"
    assert d.DriverInfo == ["SafetyMonitor Simulator Drivers"]  # alpyca splits DriverInfo at commas
    assert d.DriverVersion == "0.4"
    assert d.InterfaceVersion == 3
    assert d.Name == "Alpaca Safety Monitor Simulator"
    assert d.SupportedActions == []
    s = get_settings(omnisim.url, "safetymonitor")
    assert f"{d.IsSafe}" == str(s["SafetyMonitor"])


def test_every_type_has_an_xmlprofile_with_its_interface_version(omnisim):
    for device_type in TYPES:
        s = get_settings(omnisim.url, device_type)
        assert s["InterfaceVersion"] == omnisim.device(device_type).interface_version
        assert isinstance(s["UniqueID"], str) and s["UniqueID"]


# -- camera --------------------------------------------------------------------------------------


def test_camera_properties_match_the_profile(omnisim):
    d, s = connected(Camera, omnisim), get_settings(omnisim.url, "camera")
    assert s["CanFastReadout"] is False and "ReadoutModes" in s
    assert d.InterfaceVersion >= 3
    for prop, key in [("CameraXSize", "CameraXSize"), ("CameraYSize", "CameraYSize"), ("CanAbortExposure", "CanAbortExposure"),
                      ("CanAsymmetricBin", "CanAsymmetricBin"), ("CanFastReadout", "CanFastReadout"), ("CanGetCoolerPower", "CanGetCoolerPower"),
                      ("CanPulseGuide", "CanPulseGuide"), ("CanSetCCDTemperature", "CanSetCCDTemperature"), ("ElectronsPerADU", "ElectronsPerADU"),
                      ("ExposureMax", "MaxExposure"), ("ExposureMin", "MinExposure"), ("ExposureResolution", "ExposureResolution"),
                      ("FullWellCapacity", "FullWellCapacity"), ("HasShutter", "HasShutter"), ("MaxADU", "MaxADU"), ("MaxBinX", "MaxBinX"),
                      ("MaxBinY", "MaxBinY"), ("PixelSizeX", "PixelSizeX"), ("PixelSizeY", "PixelSizeY"), ("SensorName", "SensorName")]:
        assert getattr(d, prop) == s[key], prop
    assert d.ReadoutModes == s["ReadoutModes"].split(",")
    assert d.SensorType == SensorType(s["SensorType"])
    assert s["HasCooler"] and d.CanSetCCDTemperature and d.CanGetCoolerPower
    assert s["GainMode"] == 1 and s["OffsetMode"] == 1
    assert d.Gains == s["Gains"].split(",")
    d.Gain = 0
    assert d.Gain == 0
    assert d.Offsets == s["Offsets"].split(",")
    d.Offset = 0
    assert d.Offset == 0


def test_camera_image_capture(omnisim):
    d, s = connected(Camera, omnisim), get_settings(omnisim.url, "camera")
    assert s["SensorType"] == 0
    assert d.CameraXSize != d.CameraYSize and d.MaxBinX >= 2 and d.MaxBinY >= 2
    d.BinX = 2
    d.BinY = 2
    d.StartX = d.StartY = 0
    d.NumX = d.CameraXSize // 2
    d.NumY = d.CameraYSize // 2
    d.StartExposure(10.0, True)
    wait_for(lambda: d.ImageReady, what="the 10 s exposure", timeout=15, interval=0.05)
    img = d.ImageArray
    assert len(img) == d.NumX and len(img[0]) == d.NumY


@pytest.mark.parametrize(
    "mode, gain_mode",
    [("min-max", "value"), ("none", "none")],
)
def test_camera_gain_modes_follow_the_config(mode, gain_mode):
    over = {"devices": [{"type": "camera", "gain_mode": gain_mode, "offset_mode": gain_mode, "gain": 50, "offset": 10}]}
    with Emulator(over, profile="omnisim") as emu:
        d, s = connected(Camera, emu), get_settings(emu.url, "camera")
        if mode == "min-max":
            assert s["GainMode"] == 2 and s["OffsetMode"] == 2
            assert (d.GainMin, d.GainMax, d.OffsetMin, d.OffsetMax) == (s["GainMin"], s["GainMax"], s["OffsetMin"], s["OffsetMax"])
            tg = d.GainMin + (d.GainMax - d.GainMin) // 2
            d.Gain = tg
            assert d.Gain == tg
            to = d.OffsetMin + (d.OffsetMax - d.OffsetMin) // 2
            d.Offset = to
            assert d.Offset == to
        else:
            assert s["GainMode"] == 0 and s["OffsetMode"] == 0
            for prop, pattern in [("Gain", ".*Gain[^s].*"), ("Offset", ".*Offset[^s].*"), ("GainMax", ".*GainMax.*"),
                                  ("GainMin", ".*GainMax.*"), ("Gains", ".*Gains.*"), ("OffsetMax", ".*OffsetMax.*"),
                                  ("OffsetMin", ".*OffsetMax.*"), ("Offsets", ".*Offsets.*")]:
                with pytest.raises(NotImplementedException, match=pattern):
                    getattr(d, prop)


# -- telescope -----------------------------------------------------------------------------------


def _slewing_done(d) -> None:
    wait_for(lambda: not d.Slewing, what="the slew to end", timeout=20, interval=0.05)


def test_telescope_properties_match_the_profile(omnisim):
    d, s = connected(Telescope, omnisim), get_settings(omnisim.url, "telescope")
    assert d.AlignmentMode.value == s["AlignMode"]
    assert d.ApertureArea == s["ApertureArea"] and d.ApertureDiameter == s["Aperture"]
    for prop, key in [("CanFindHome", "CanFindHome"), ("CanPark", "CanPark"), ("CanPulseGuide", "CanPulseGuide"),
                      ("CanSetDeclinationRate", "CanSetEquRates"), ("CanSetGuideRates", "CanSetGuideRates"), ("CanSetPark", "CanSetPark"),
                      ("CanSetPierSide", "CanSetPointingState"), ("CanSetRightAscensionRate", "CanSetEquRates"),
                      ("CanSetTracking", "CanSetTracking"), ("CanSlew", "CanSlew"), ("CanSlewAltAz", "CanSlewAltAz"),
                      ("CanSlewAltAzAsync", "CanSlewAltAzAsync"), ("CanSlewAsync", "CanSlewAsync"), ("CanSync", "CanSync"),
                      ("CanSyncAltAz", "CanSyncAltAz"), ("CanUnpark", "CanUnpark"), ("DoesRefraction", "Refraction"),
                      ("SiteElevation", "Elevation"), ("SiteLatitude", "Latitude"), ("SiteLongitude", "Longitude")]:
        assert getattr(d, prop) == s[key], prop
    assert d.EquatorialSystem.value == s["EquatorialSystem"]
    d.SlewSettleTime = 5
    d.SlewSettleTime = 0
    assert d.SlewSettleTime == 0
    assert d.TrackingRates == [0, 3, 1, 2]


def test_telescope_equatorial_slews_and_pier_sides(omnisim):
    d = connected(Telescope, omnisim)
    assert d.AlignmentMode == AlignmentModes.algGermanPolar and d.CanSlew and d.CanSlewAsync
    if d.AtPark:
        d.Unpark()
    d.Tracking = True
    lst = d.SiderealTime
    d.TargetRightAscension = (lst + 2) % 24
    d.TargetDeclination = 45
    d.SlewToTargetAsync()
    assert d.Slewing
    _slewing_done(d)
    assert d.SideOfPier == PierSide.pierWest
    ra = (lst - 2) % 24
    d.SlewToCoordinatesAsync(ra, 40)
    assert d.Slewing
    assert d.TargetRightAscension == ra and d.TargetDeclination == 40
    _slewing_done(d)
    assert d.SideOfPier == PierSide.pierEast
    with pytest.raises(NotImplementedException):
        d.SlewToTarget()
    with pytest.raises(NotImplementedException):
        d.SlewToCoordinates(0, 0)


def test_telescope_park_and_home(omnisim):
    d, s = connected(Telescope, omnisim), get_settings(omnisim.url, "telescope")
    d.Unpark()
    d.Tracking = False
    d.SlewToAltAzAsync(120.0, 5.0)
    _slewing_done(d)
    d.SetPark()
    assert d.AtPark is False
    d.SlewToAltAzAsync(270.0, 30.0)
    _slewing_done(d)
    d.Park()
    wait_for(lambda: d.AtPark, what="AtPark", timeout=20, interval=0.05)
    assert abs((d.Azimuth - 120.0 + 180) % 360 - 180) < 0.1 and abs(d.Altitude - 5.0) < 0.1
    d.Unpark()
    d.FindHome()
    wait_for(lambda: d.AtHome, what="AtHome", timeout=20, interval=0.05)
    assert abs((d.Azimuth - s["HomeAzimuth"] + 180) % 360 - 180) < 0.1 and abs(d.Altitude - s["HomeAltitude"]) < 0.1


def test_telescope_moveaxis_rates_and_guiding(omnisim):
    d = connected(Telescope, omnisim)
    if d.AtPark:
        d.Unpark()
    assert d.CanMoveAxis(TelescopeAxes.axisPrimary)
    r = d.AxisRates(TelescopeAxes.axisPrimary)[1]
    assert (r.Minimum, r.Maximum) == (10, 20)
    d.Tracking = False
    ra1 = d.RightAscension
    d.MoveAxis(TelescopeAxes.axisPrimary, r.Minimum)
    wait_for(lambda: d.RightAscension != ra1, what="RA to move", timeout=5)
    d.MoveAxis(TelescopeAxes.axisPrimary, 0)
    d.Tracking = True
    d.RightAscensionRate = 0.01
    d.DeclinationRate = 0.02
    assert (d.RightAscensionRate, d.DeclinationRate) == (0.01, 0.02)
    d.RightAscensionRate = 0
    d.DeclinationRate = 0
    d.PulseGuide(GuideDirections.guideNorth, 500)
    assert d.IsPulseGuiding
    wait_for(lambda: not d.IsPulseGuiding, what="the pulse to end", timeout=5)


# -- focuser, filter wheel, rotator --------------------------------------------------------------


def test_focuser_properties_and_motion(omnisim):
    d, s = connected(Focuser, omnisim), get_settings(omnisim.url, "focuser")
    for prop in ("Absolute", "MaxIncrement", "MaxStep", "StepSize", "TempCompAvailable", "TempComp"):
        assert getattr(d, prop) == s[prop], prop
    assert s["TempProbe"] and s["Synchronous"] is False and s["CanHalt"]
    assert isinstance(d.Temperature, float)
    d.Move(s["MaxStep"] // 2 + 2000)
    wait_for(lambda: not d.IsMoving, what="the first move", timeout=15)
    assert d.Position == s["MaxStep"] // 2 + 2000
    d.Move(0)
    assert d.IsMoving  # asynchronous: Move returned at once
    d.Halt()
    assert not d.IsMoving and 0 < d.Position < s["MaxStep"] // 2 + 2000


def test_filterwheel_names_offsets_and_moves(omnisim):
    d, s = connected(FilterWheel, omnisim), get_settings(omnisim.url, "filterwheel")
    assert s["ImplementsNames"] and s["ImplementsOffsets"] and s["Slots"] > 4
    for i in range(s["Slots"]):
        assert d.Names[i] == s[f"FilterNames {i}"] and d.FocusOffsets[i] == s[f"FocusOffsets {i}"]
    d.Position = s["Slots"] - 2
    assert d.Position == -1
    wait_for(lambda: d.Position == s["Slots"] - 2, what="the wheel to arrive", timeout=10)


def test_rotator_as_the_suites_expect(omnisim):
    d, s = connected(Rotator, omnisim), get_settings(omnisim.url, "rotator")
    assert d.CanReverse and s["CanReverse"]
    d.Reverse = True
    assert d.Reverse
    d.Reverse = False
    assert d.StepSize == 0.75 == s["StepSize"]
    d.MoveMechanical(90.0)
    wait_for(lambda: not d.IsMoving, what="MoveMechanical", timeout=10)
    d.Sync(90.0)
    d.Move(45.0)
    assert d.TargetPosition == 135.0
    wait_for(lambda: not d.IsMoving, what="Move", timeout=10)
    d.MoveAbsolute(45.0)
    assert d.TargetPosition == 45.0
    d.Halt()
    assert not d.IsMoving


# -- dome, switch, weather, cover ------------------------------------------------------------------


def test_dome_as_the_suites_expect(omnisim):
    d, s = connected(Dome, omnisim), get_settings(omnisim.url, "dome")
    for prop in ("CanFindHome", "CanPark", "CanSetAltitude", "CanSetAzimuth", "CanSetPark", "CanSetShutter", "CanSyncAzimuth"):
        assert getattr(d, prop) == s[prop], prop
    assert d.CanSlave is False and d.Slaved is False
    d.OpenShutter()
    wait_for(lambda: d.ShutterStatus == ShutterState.shutterOpen, what="shutter open", timeout=10)
    d.SlewToAzimuth(90.0)
    d.SlewToAltitude(60.0)
    wait_for(lambda: not d.Slewing, what="the dome slew", timeout=15)
    assert (d.Azimuth, d.Altitude) == (90.0, 60.0)
    d.SyncToAzimuth(100.0)
    assert d.Azimuth == 100.0
    d.SlewToAzimuth(27.0)
    wait_for(lambda: not d.Slewing, what="the dome slew", timeout=15)
    d.SetPark()
    d.SlewToAzimuth(200.0)
    wait_for(lambda: not d.Slewing, what="the dome slew", timeout=15)
    d.Park()
    wait_for(lambda: d.AtPark, what="AtPark", timeout=15)
    assert d.Azimuth == 27.0
    d.FindHome()
    wait_for(lambda: d.AtHome, what="AtHome", timeout=15)
    d.CloseShutter()
    wait_for(lambda: d.ShutterStatus == ShutterState.shutterClosed, what="shutter closed", timeout=10)


def test_switch_as_the_suites_expect(omnisim):
    d, s = connected(Switch, omnisim), get_settings(omnisim.url, "switch")
    assert d.InterfaceVersion >= 3
    assert d.MaxSwitch == s["NumSwitches"]
    assert s["CanAsync Switch0"] and s["Duration Switch0"] == 3.0 and d.CanAsync(0)
    name = d.GetSwitchName(0)
    d.SetSwitchName(0, "renamed")
    assert d.GetSwitchName(0) == "renamed"
    d.SetSwitchName(0, name)
    assert (d.MinSwitchValue(0), d.MaxSwitchValue(0), d.SwitchStep(0)) == (0, 1, 1)
    d.SetSwitch(0, True)
    assert d.GetSwitch(0) is True
    d.SetAsync(0, False)
    assert d.StateChangeComplete(0) is False
    wait_for(lambda: d.StateChangeComplete(0), what="the asynchronous change", timeout=5)
    assert d.GetSwitch(0) is False
    assert (d.MinSwitchValue(3), d.MaxSwitchValue(3)) == (0, 255)
    d.SetSwitchValue(3, 157)
    assert d.GetSwitchValue(3) == 157
    d.SetAsyncValue(3, 42)
    wait_for(lambda: d.StateChangeComplete(3), what="the asynchronous value", timeout=5)
    assert d.GetSwitchValue(3) == 42


def test_observingconditions_overrides_are_returned_exactly(omnisim):
    d, s = connected(ObservingConditions, omnisim), get_settings(omnisim.url, "observingconditions")
    assert d.AveragePeriod <= s["Average Period"]
    for sensor in ("CloudCover", "Humidity", "Pressure", "RainRate", "SkyBrightness", "SkyQuality", "SkyTemperature",
                   "StarFWHM", "Temperature", "WindDirection", "WindGust", "WindSpeed"):
        assert s[f"{sensor}Override"] is True, sensor
        assert getattr(d, sensor) == s[f"{sensor}Override Value"], sensor
    assert d.TimeSinceLastUpdate("CloudCover") <= s["Sensor Read Period"]


def test_covercalibrator_as_the_suites_expect(omnisim):
    d, s = connected(CoverCalibrator, omnisim), get_settings(omnisim.url, "covercalibrator")
    assert s["Cover Initialisation State"] != "NotPresent" and s["Calibrator Initialisation State"] != "NotPresent"
    d.OpenCover()
    wait_for(lambda: not d.CoverMoving, what="the cover to open", timeout=10)
    assert d.CoverState == CoverStatus.Open
    d.CloseCover()
    assert d.CoverMoving
    d.HaltCover()
    assert d.CoverState == CoverStatus.Unknown
    assert d.MaxBrightness == s["Maximum Brightness"]
    d.CalibratorOn(s["Maximum Brightness"] // 2)
    wait_for(lambda: not d.CalibratorChanging, what="the lamp to warm up", timeout=10)
    assert d.CalibratorState == CalibratorStatus.Ready and d.Brightness == s["Maximum Brightness"] // 2
    d.CalibratorOff()
    wait_for(lambda: not d.CalibratorChanging, what="the lamp to go off", timeout=10)
    assert d.Brightness == 0


# -- the simulator endpoints -----------------------------------------------------------------------


def test_a_changed_setting_shows_in_the_xmlprofile():
    over = {"devices": [{"type": "focuser", "max_step": 8000, "max_increment": 8000, "initial_position": 100, "synchronous": True}]}
    with Emulator(over, profile="omnisim") as emu:
        s = get_settings(emu.url, "focuser")
        assert (s["MaxStep"], s["Position"], s["Synchronous"]) == (8000, 100, True)
        assert s["StepSize"] == 20 and s["Absolute"] is True  # the profile's, not overridden


def test_reset_and_restart_bring_the_configured_state_back():
    with Emulator(profile="omnisim", time_scale=100) as emu:
        d = connected(Focuser, emu)
        d.Move(30000)
        wait_for(lambda: not d.IsMoving, what="the move", timeout=10)
        for action in ("reset", "restart"):
            resp = requests.put(f"{emu.url}/simulator/v1/focuser/0/{action}", data={"ClientTransactionID": "9"}, timeout=TIMEOUT)
            body = resp.json()
            assert resp.status_code == 200 and body["ErrorNumber"] == 0 and body["ClientTransactionID"] == 9 and "Value" not in body
            d = connected(Focuser, emu)  # a fresh device starts disconnected, as OmniSim's does
            assert d.Position == 25000
            d.Move(30000)
            wait_for(lambda: not d.IsMoving, what="the move", timeout=10)
        assert emu.device("camera") is not None  # the other devices are untouched


@pytest.mark.parametrize(
    "verb, path, fragment",
    [
        ("GET", "/simulator/v1/focuser/1/xmlprofile", "does not exist"),
        ("GET", "/simulator/v1/telescop/0/xmlprofile", "does not exist"),
        ("GET", "/simulator/v1/focuser/0/reset", "takes PUT"),
        ("PUT", "/simulator/v1/focuser/0/xmlprofile", "takes GET"),
        ("GET", "/simulator/v1/focuser/0/maxstep", "not a simulator action"),
    ],
)
def test_simulator_endpoint_mistakes_are_400_text(omnisim, verb, path, fragment):
    resp = requests.request(verb, omnisim.url + path, timeout=TIMEOUT)
    assert resp.status_code == 400 and resp.headers["Content-Type"].startswith("text/plain")
    assert fragment in resp.text


def test_fault_rules_match_the_simulator_endpoints(omnisim):
    with omnisim.faults.add(match={"device_type": "simulator", "member": "xmlprofile"}, action={"kind": "http_status", "status": 503}) as rule:
        assert requests.get(f"{omnisim.url}/simulator/v1/camera/0/xmlprofile", timeout=TIMEOUT).status_code == 503
    assert rule.fired == 1
    assert math.isfinite(get_settings(omnisim.url, "camera")["PixelSizeX"])
