"""Camera (ICameraV4) through the real alpyca client: exposures, abort/stop, cooler, values, flags.

Phases that must be observed are held deterministically rather than raced: a long exposure at
time scale 1 stays in Exposing, and the ``ReadoutStuck`` control state holds Reading.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from functools import partial
from typing import Any

import numpy as np
import pytest
import requests
from alpaca.camera import Camera, CameraStates, SensorType
from alpaca.exceptions import (
    DriverException,
    InvalidOperationException,
    InvalidValueException,
    NotConnectedException,
    NotImplementedException,
)
from alpaca.telescope import GuideDirections

from emulator import Emulator
from emulator.config import ConfigError
from support import wait_for as _wait_for

SMALL = {"type": "camera", "width": 120, "height": 80, "star_count": 20, "connected": True}


def _emu(time_scale: float = 100, **options: Any) -> Emulator:
    return Emulator({"devices": [{**SMALL, **options}]}, time_scale=time_scale, seed=5)


def _image_error(emu: Emulator) -> int:
    """ImageArray's ErrorNumber, fetched as JSON.

    alpyca 3.1.3 cannot report an ImageArray error sent in ImageBytes form (section 8.6.2): its
    ``_build_imagedata_array`` calls ``.decode`` on a str and raises AttributeError. So error
    cases are read with plain requests; test_images checks the ImageBytes error form itself.
    """
    return requests.get(f"{emu.url}/api/v1/camera/0/imagearray", timeout=10).json()["ErrorNumber"]


wait_for = partial(_wait_for, timeout=20.0, interval=0.01)


@pytest.fixture
def cam_emu():
    with _emu() as emu:
        yield emu, Camera(emu.address, 0)


@pytest.fixture
def slow_cam():
    """Time scale 1: a 1000 s exposure stays in Exposing for the whole test."""
    with _emu(time_scale=1, readout_time_s=0.3) as emu:
        yield emu, Camera(emu.address, 0)


def test_identity_and_static_properties(cam_emu):
    emu, cam = cam_emu
    assert cam.InterfaceVersion == 4
    assert (cam.CameraXSize, cam.CameraYSize) == (120, 80)
    assert (cam.NumX, cam.NumY, cam.StartX, cam.StartY, cam.BinX, cam.BinY) == (120, 80, 0, 0, 1, 1)
    assert cam.SensorType == SensorType.Monochrome
    assert cam.MaxADU == 65535
    assert cam.ExposureMin == 0.0 and cam.ExposureMax == 3600.0 and cam.ExposureResolution > 0
    assert cam.PixelSizeX == pytest.approx(3.76)
    assert cam.FullWellCapacity == pytest.approx(65535.0)
    assert cam.CameraState == CameraStates.cameraIdle
    assert cam.ImageReady is False
    assert cam.ReadoutModes == ["Normal", "Fast"] and cam.ReadoutMode == 0
    assert (cam.GainMin, cam.GainMax, cam.Gain) == (0, 500, 100)
    with pytest.raises(NotImplementedException):
        cam.Gains
    with pytest.raises(NotImplementedException):
        cam.BayerOffsetX  # monochrome
    with pytest.raises(NotImplementedException):
        cam.FastReadout  # CanFastReadout is False
    # ImageArrayVariant must answer NotImplemented in Alpaca (the OpenAPI file says so)
    assert requests.get(f"{emu.url}/api/v1/camera/0/imagearrayvariant", timeout=5).json()["ErrorNumber"] == 0x400


def test_exposure_runs_exposing_reading_idle(cam_emu):
    emu, cam = cam_emu
    emu.set_state("camera", 0, ReadoutStuck=True)  # hold Reading so it can be observed
    cam.StartExposure(2.0, True)
    assert cam.ImageReady is False
    wait_for(lambda: cam.CameraState == CameraStates.cameraReading, what="Reading")
    assert 0 <= cam.PercentCompleted <= 100
    assert cam.ImageReady is False
    assert _image_error(emu) == 0x40B
    with pytest.raises(InvalidOperationException):
        cam.StartExposure(1.0, True)  # still busy
    names = {d["Name"]: d["Value"] for d in cam.DeviceState}
    assert names["CameraState"] == 3 and names["ImageReady"] is False and "PercentCompleted" in names
    emu.set_state("camera", 0, ReadoutStuck=False)
    wait_for(lambda: cam.ImageReady, what="ImageReady")
    assert cam.CameraState == CameraStates.cameraIdle
    with pytest.raises(InvalidOperationException):
        cam.PercentCompleted  # only valid while exposing or reading
    assert cam.LastExposureDuration == pytest.approx(2.0)
    start = cam.LastExposureStartTime
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?", start)
    datetime.fromisoformat(start)
    image = np.array(cam.ImageArray)
    assert image.shape == (120, 80)
    assert image.min() >= 0 and image.max() <= 65535
    state = {d["Name"]: d["Value"] for d in cam.DeviceState}
    assert set(state) >= {"CameraState", "CCDTemperature", "CoolerPower", "HeatSinkTemperature", "ImageReady", "IsPulseGuiding", "TimeStamp"}
    assert state["ImageReady"] is True


def test_exposing_state_and_percent(slow_cam):
    emu, cam = slow_cam
    cam.StartExposure(1000.0, True)
    assert cam.CameraState == CameraStates.cameraExposing
    assert 0 <= cam.PercentCompleted < 10
    with pytest.raises(InvalidOperationException):
        cam.StartExposure(1.0, True)
    cam.AbortExposure()


def test_stop_exposure_keeps_what_was_exposed(slow_cam):
    emu, cam = slow_cam
    cam.StartExposure(1000.0, True)
    time.sleep(0.2)
    cam.StopExposure()
    assert cam.CameraState in (CameraStates.cameraReading, CameraStates.cameraIdle)
    wait_for(lambda: cam.ImageReady, timeout=10, what="ImageReady after StopExposure")  # 0.3 s readout
    assert 0.1 < cam.LastExposureDuration < 100
    assert np.array(cam.ImageArray).shape == (120, 80)
    cam.StopExposure()  # idle: no error


def test_abort_exposure_discards_the_image(slow_cam):
    emu, cam = slow_cam
    cam.AbortExposure()  # idle: no error
    cam.StartExposure(1000.0, True)
    cam.AbortExposure()
    assert cam.CameraState == CameraStates.cameraIdle
    assert cam.ImageReady is False
    assert _image_error(emu) == 0x40B
    with pytest.raises(InvalidOperationException):
        cam.LastExposureDuration  # nothing has completed
    with pytest.raises(InvalidOperationException):
        cam.LastExposureStartTime


def test_abort_after_a_good_image_clears_it_only_when_busy(cam_emu):
    emu, cam = cam_emu
    cam.StartExposure(1.0, True)
    wait_for(lambda: cam.ImageReady)
    cam.AbortExposure()  # idle: the finished image stays
    assert cam.ImageReady is True
    emu.set_state("camera", 0, ReadoutStuck=True)
    cam.StartExposure(1.0, True)
    assert cam.ImageReady is False  # a new exposure replaces the old image
    wait_for(lambda: cam.CameraState == CameraStates.cameraReading)
    cam.AbortExposure()
    assert cam.CameraState == CameraStates.cameraIdle and cam.ImageReady is False


def test_bad_values_are_invalid_value(cam_emu):
    emu, cam = cam_emu
    for duration in (-1.0, 3601.0):
        with pytest.raises(InvalidValueException):
            cam.StartExposure(duration, True)
    for setter, value in (("BinX", 0), ("BinX", 5), ("BinY", -1), ("Gain", 501), ("Offset", -1), ("ReadoutMode", 2), ("SetCCDTemperature", -300.0)):
        with pytest.raises(InvalidValueException):
            setattr(cam, setter, value)
    # subframes are checked at StartExposure, not when set
    cam.NumX = 121
    with pytest.raises(InvalidValueException):
        cam.StartExposure(1.0, True)
    cam.NumX = 120
    cam.StartX = -1
    with pytest.raises(InvalidValueException):
        cam.StartExposure(1.0, True)
    cam.StartX = 0
    cam.BinX = 2  # binned sensor is 60 x 40: the full-frame NumX/NumY no longer fit
    with pytest.raises(InvalidValueException):
        cam.StartExposure(1.0, True)
    cam.NumX, cam.NumY, cam.StartX, cam.StartY = 50, 30, 10, 10
    cam.StartExposure(1.0, True)
    wait_for(lambda: cam.ImageReady)
    assert np.array(cam.ImageArray).shape == (50, 30)
    # PulseGuide: a direction outside 0..3 (alpyca sends the number as given)
    r = requests.put(f"{emu.url}/api/v1/camera/0/pulseguide", data={"Direction": "7", "Duration": "100"}, timeout=5)
    assert r.json()["ErrorNumber"] == 0x401
    with pytest.raises(InvalidValueException):
        cam.PulseGuide(GuideDirections.guideNorth, -5)


def test_symmetric_and_asymmetric_binning():
    with _emu() as emu:
        cam = Camera(emu.address, 0)
        cam.BinX = 2
        assert (cam.BinX, cam.BinY) == (2, 2)  # CanAsymmetricBin is False: setting one sets both
        cam.BinY = 3
        assert (cam.BinX, cam.BinY) == (3, 3)
    with _emu(can_asymmetric_bin=True, max_bin_y=2) as emu:
        cam = Camera(emu.address, 0)
        cam.BinX = 4
        cam.BinY = 2
        assert (cam.BinX, cam.BinY) == (4, 2)
        with pytest.raises(InvalidValueException):
            cam.BinY = 3
        cam.NumX, cam.NumY = 30, 40
        cam.StartExposure(0.5, False)
        wait_for(lambda: cam.ImageReady)
        assert np.array(cam.ImageArray).shape == (30, 40)


def test_not_connected():
    with Emulator({"devices": [{"type": "camera", "width": 64, "height": 48}]}) as emu:
        cam = Camera(emu.address, 0)
        assert cam.Connected is False
        for read in (lambda: cam.CameraState, lambda: cam.CCDTemperature, lambda: cam.DeviceState):
            with pytest.raises(NotConnectedException):
                read()
        assert _image_error(emu) == 0x407
        with pytest.raises(AttributeError):  # the alpyca 3.1.3 defect described in _image_error
            cam.ImageArray
        with pytest.raises(NotConnectedException):
            cam.StartExposure(1.0, True)
        assert cam.InterfaceVersion == 4  # needs no connection


def test_cooler_approaches_setpoint_exponentially():
    with _emu(time_scale=100, cooler_time_constant_s=10.0) as emu:  # tau = 0.1 s of wall time
        cam = Camera(emu.address, 0)
        assert cam.CCDTemperature == pytest.approx(15.0)
        assert cam.CoolerOn is False and cam.CoolerPower == 0.0
        cam.SetCCDTemperature = -10.0
        assert cam.SetCCDTemperature == -10.0
        cam.CoolerOn = True
        samples = [cam.CCDTemperature]
        wait_for(lambda: samples.append(cam.CCDTemperature) or abs(samples[-1] + 10.0) < 0.05, what="setpoint")
        assert all(b <= a + 1e-9 for a, b in zip(samples, samples[1:])), "cooling is monotonic"
        assert samples[0] > samples[-1]
        power_settled = cam.CoolerPower
        assert power_settled == pytest.approx(100 * 25 / 40, abs=1)  # holding 25 degrees below ambient
        assert cam.HeatSinkTemperature > 15.0  # the hot side runs above ambient
        names = {d["Name"] for d in cam.DeviceState}
        assert {"CCDTemperature", "CoolerPower", "HeatSinkTemperature"} <= names
        # a setpoint the cooler cannot reach: it settles at ambient - 40
        cam.SetCCDTemperature = -40.0
        wait_for(lambda: abs(cam.CCDTemperature + 25.0) < 0.05, what="cooler limit")
        assert cam.CoolerPower == pytest.approx(100.0)
        cam.CoolerOn = False
        wait_for(lambda: abs(cam.CCDTemperature - 15.0) < 0.05, what="warm-up")
        assert cam.CoolerPower == 0.0


def test_exponential_shape_on_the_model():
    with _emu(time_scale=1, cooler_time_constant_s=50.0) as emu:
        cam = emu.device("camera", 0)
        with cam.lock:
            cam.put_setccdtemperature(-5.0)
            cam.put_cooleron(True)
            t0 = cam._anchor_time
            # one time constant later, 1/e of the gap remains
            assert cam._temperature(t0 + 50.0) == pytest.approx(-5.0 + 20.0 / np.e)
            assert cam._temperature(t0 + 500.0) == pytest.approx(-5.0, abs=1e-3)
            # flat out while pulling down (50 s time constant at scale 1: the gap is still ~20 degrees)
            assert cam.coolerpower() == 100.0
            assert cam.heatsinktemperature() == pytest.approx(15.0 + 5.0)


def test_capability_flags_off():
    options = dict(
        can_set_ccd_temperature=False,
        can_get_cooler_power=False,
        can_abort_exposure=False,
        can_stop_exposure=False,
        can_pulse_guide=False,
        has_shutter=False,
        supports_sub_exposure=False,
        gain_mode="none",
        offset_mode="none",
    )
    with _emu(**options) as emu:
        cam = Camera(emu.address, 0)
        assert (cam.CanSetCCDTemperature, cam.CanGetCoolerPower, cam.CanAbortExposure, cam.CanStopExposure, cam.CanPulseGuide, cam.HasShutter) == (
            False, False, False, False, False, False,
        )
        for call in (
            lambda: cam.AbortExposure(),
            lambda: cam.StopExposure(),
            lambda: cam.PulseGuide(GuideDirections.guideEast, 10),
            lambda: cam.IsPulseGuiding,
            lambda: cam.CoolerOn,
            lambda: cam.CoolerPower,
            lambda: cam.HeatSinkTemperature,
            lambda: cam.SetCCDTemperature,
            lambda: cam.Gain,
            lambda: cam.GainMin,
            lambda: cam.Offset,
            lambda: cam.OffsetMax,
            lambda: cam.SubExposureDuration,
        ):
            with pytest.raises(NotImplementedException):
                call()
        assert cam.CCDTemperature == pytest.approx(15.0)  # a sensor reading without a cooler
        names = {d["Name"] for d in cam.DeviceState}
        assert "CoolerPower" not in names and "IsPulseGuiding" not in names and "CameraState" in names


def test_index_modes_fast_readout_and_bayer():
    options = dict(gain_mode="index", gains=["ISO 100", "ISO 800"], gain=1, offset_mode="index", offset=0, can_fast_readout=True, sensor="rggb", bayer_offset_x=1)
    with _emu(**options) as emu:
        cam = Camera(emu.address, 0)
        assert cam.Gains == ["ISO 100", "ISO 800"] and cam.Gain == 1
        cam.Gain = 0
        assert cam.Gain == 0
        with pytest.raises(InvalidValueException):
            cam.Gain = 2
        with pytest.raises(NotImplementedException):
            cam.GainMax
        assert cam.Offsets == ["Low", "Medium", "High"]
        with pytest.raises(NotImplementedException):
            cam.OffsetMin
        assert cam.CanFastReadout is True and cam.FastReadout is False
        cam.FastReadout = True
        assert cam.FastReadout is True
        with pytest.raises(NotImplementedException):
            cam.ReadoutModes
        assert cam.SensorType == SensorType.RGGB
        assert (cam.BayerOffsetX, cam.BayerOffsetY) == (1, 0)
        cam.StartExposure(1.0, True)
        wait_for(lambda: cam.ImageReady)
        assert np.array(cam.ImageArray).shape == (120, 80)  # Bayer data is Rank 2


def test_pulse_guide(slow_cam):
    emu, cam = slow_cam
    assert cam.IsPulseGuiding is False
    cam.PulseGuide(GuideDirections.guideWest, 1500)
    assert cam.IsPulseGuiding is True
    wait_for(lambda: not cam.IsPulseGuiding, timeout=10, what="pulse end")


def test_sub_exposure_duration(cam_emu):
    emu, cam = cam_emu
    assert cam.SubExposureDuration == 1.0
    r = requests.put(f"{emu.url}/api/v1/camera/0/subexposureduration", data={"SubExposureDuration": "2.5"}, timeout=5)
    assert r.json()["ErrorNumber"] == 0
    assert cam.SubExposureDuration == 2.5
    r = requests.put(f"{emu.url}/api/v1/camera/0/subexposureduration", data={"SubExposureDuration": "0"}, timeout=5)
    assert r.json()["ErrorNumber"] == 0x401
    # alpyca 3.1.3 sends the key as 'SubexposureDuration'; PUT keys are case-sensitive, so that is a 400
    r = requests.put(f"{emu.url}/api/v1/camera/0/subexposureduration", data={"SubexposureDuration": "2"}, timeout=5)
    assert r.status_code == 400 and "SubExposureDuration" in r.text


def test_simulated_failure_and_control_state(cam_emu):
    emu, cam = cam_emu
    state = emu.get_state("camera", 0)
    assert state["ReadoutStuck"] is False and state["ExposureFails"] is False and state["ExposureCount"] == 0
    emu.set_state("camera", 0, ExposureFails=True)
    cam.StartExposure(1.0, True)
    wait_for(lambda: cam.CameraState == CameraStates.cameraError, what="Error state")
    with pytest.raises(DriverException):
        cam.ImageReady
    assert _image_error(emu) == 0x40B
    assert emu.get_state("camera", 0)["CameraState"] == 5  # DeviceState leaves out the failing ImageReady
    cam.AbortExposure()
    assert cam.CameraState == CameraStates.cameraIdle
    emu.set_state("camera", 0, ExposureFails=False, AmbientTemperature=5)
    cam.StartExposure(1.0, True)
    wait_for(lambda: cam.ImageReady)
    assert emu.get_state("camera", 0)["ExposureCount"] == 2
    wait_for(lambda: cam.CCDTemperature < 14.0, what="the sensor following the ambient temperature down")
    with pytest.raises(TypeError):
        emu.set_state("camera", 0, ReadoutStuck="yes")


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="gain"):
        Emulator({"devices": [{"type": "camera", "gain": 9999}]})
    with pytest.raises(ConfigError, match=r"devices\[0\]\.sensor"):
        Emulator({"devices": [{"type": "camera", "sensor": "cmyk"}]})
    with pytest.raises(ConfigError, match="unknown key"):
        Emulator({"devices": [{"type": "camera", "colour": True}]})
