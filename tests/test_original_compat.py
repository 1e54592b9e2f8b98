"""The original controller's call patterns through real device processes on a served emulator."""

from __future__ import annotations

import pytest

from astra.alpaca_device_process import BadArguments, DeviceMethod, RemoteAscomError
from emulator import Emulator
from support import wait_until
from test_astra_support import no_device_process_left, running_device  # noqa: F401 - leak check fixture

pytestmark = pytest.mark.alpyca_compat
METHODS = ["spawn", "fork"]


@pytest.mark.parametrize("start_method", METHODS)
def test_no_kwargs_calls_at_once_and_wrong_arguments_never_reach_the_server(start_method):
    with Emulator(time_scale=100) as emu, running_device(emu.address, "Dome", start_method=start_method) as (dome, _):
        with pytest.raises(BadArguments) as info:
            dome.get("OpenShutter", Foo=1)
        err = info.value
        assert isinstance(err, TypeError) and err.ambiguous is False and err.attempts == 1
        with pytest.raises(BadArguments):
            dome.get("ShutterStatus", Foo=1)  # a property takes no arguments
        assert emu.traffic.count(device_type="dome", member="openshutter") == 0
        assert emu.traffic.count(device_type="dome", member="shutterstatus") == 0
        assert dome.get("OpenShutter", no_kwargs=True) is None
        assert emu.traffic.count(device_type="dome", member="openshutter") == 1
        assert wait_until(lambda: dome.get("ShutterStatus") == 0, 10)  # open


@pytest.mark.parametrize("start_method", METHODS)
def test_get_of_a_method_hands_back_a_callable_that_calls_through_the_pipe(start_method):
    cfg = {"devices": [{"type": "camera", "can_abort_exposure": False}]}
    with Emulator(cfg, time_scale=100) as emu, running_device(emu.address, "Camera", start_method=start_method) as (cam, _):
        abort = cam.get("AbortExposure")
        assert isinstance(abort, DeviceMethod)
        assert emu.traffic.count(device_type="camera", member="abortexposure") == 0
        with pytest.raises(RemoteAscomError) as info:  # a failed call still fails, typed
            abort()
        assert info.value.error_number == 0x400
        assert emu.traffic.count(device_type="camera", member="abortexposure") == 1
        start = cam.get("StartExposure")
        assert start(Duration=0.1, Light=True) is None
        assert emu.traffic.count(device_type="camera", member="startexposure") == 1


@pytest.mark.parametrize("start_method", METHODS)
def test_cached_poll_latest_is_the_poll_cache(start_method):
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor", start_method=start_method) as (dev, _):
        dev.start_poll("IsSafe", 0.1)
        assert wait_until(lambda: dev.poll_latest(), 10)
        assert dev._cached_poll_latest is dev._cache
        cached = {"CCDTemperature": {"value": -10.0, "datetime": None}}
        dev._cached_poll_latest = cached
        dev.stop_poll()
        dev.stop(timeout=5)
        assert dev.poll_latest() == cached
