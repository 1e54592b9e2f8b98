"""The original controller's call patterns through real device processes on a served emulator."""

from __future__ import annotations

import functools
from importlib import metadata

import pytest

from astra import alpyca
from astra.alpaca_device_process import AlpacaDevice, BadArguments, DeviceMethod, RemoteAscomError
from astra.server import DeviceServer
from emulator import Emulator
from support import wait_until
from test_astra_support import no_device_process_left, running_device  # noqa: F401 - leak check fixture

pytestmark = pytest.mark.alpyca_compat
METHODS = ["spawn", "fork"]
ALPYCA_MAJOR = int(metadata.version("alpyca").split(".")[0])
PLATFORM7_MEMBERS = ("Connect", "Connecting", "Disconnect")


class _Absent:
    """A class attribute that is not there: reading it raises AttributeError, as on alpyca 2.0.x."""

    def __get__(self, obj, owner=None):
        raise AttributeError("absent, as in alpyca 2.0.x")


@functools.cache
def without_platform7(cls: type) -> type:
    """The real alpyca class ``cls`` with Connect/Connecting/Disconnect taken away, and nothing else."""
    return type(cls.__name__, (cls,), {name: _Absent() for name in PLATFORM7_MEMBERS})


class _Platform7LessServer(DeviceServer):
    """The device process's server, with the real alpyca device object made into its stripped class."""

    def make_device(self):
        device = super().make_device()
        device.__class__ = without_platform7(type(device))
        return device


class Platform7LessDevice(AlpacaDevice):
    server_class = _Platform7LessServer


def put_counts(emu, device_type):
    return {m: emu.traffic.count(device_type=device_type, member=m, verb="PUT") for m in ("connect", "connected")}


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


def test_the_stripped_class_is_a_real_alpyca_class_without_platform7():
    from alpaca.dome import Dome

    stripped = without_platform7(Dome)
    dev = stripped("127.0.0.1:1", 0)
    assert isinstance(dev, Dome) and not alpyca.has_platform7(dev)
    assert not any(hasattr(dev, name) for name in PLATFORM7_MEMBERS)
    assert alpyca.has_platform7(Dome("127.0.0.1:1", 0)) is (ALPYCA_MAJOR >= 3)


@pytest.mark.parametrize("start_method", METHODS)
def test_a_client_without_connect_connects_with_connected_true(start_method):
    """A Platform 7 device (DomeV3) and a client without Connect/Connecting: PUT connected, never connect."""
    with Emulator() as emu, running_device(emu.address, "Dome", start_method=start_method,
                                           device_class=Platform7LessDevice) as (dome, queue):
        assert dome.get("InterfaceVersion") == 3  # the device has Connect; the client does not
        assert put_counts(emu, "dome") == {"connect": 0, "connected": 1}
        assert emu.device("dome").connected
        assert any("has no Connect/Connecting: connecting with Connected = True" in line for line in queue.logs())


@pytest.mark.parametrize("start_method", METHODS)
def test_the_installed_alpyca_connects_as_its_version_allows(start_method):
    """alpyca 2.0.x (the CI job of its own): Connected = True on the wire; alpyca 3.x: Connect."""
    with Emulator() as emu, running_device(emu.address, "Dome", start_method=start_method) as (dome, _):
        assert dome.get("Connected") is True
        counts = put_counts(emu, "dome")
        if ALPYCA_MAJOR < 3:
            assert counts == {"connect": 0, "connected": 1}
        else:
            assert counts == {"connect": 1, "connected": 0}
