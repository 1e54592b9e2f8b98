"""astra's error classes: one per cause, each keeping its request; what a caller can ``except``."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time

import pytest

from astra import errors
from astra.alpaca_device_process import (
    AlpacaDevice,
    AlpacaDeviceError,
    AlpacaDeviceIPCError,
    DeviceDead,
    DeviceTimeout,
    RemoteAscomError,
    RemoteDeviceError,
    RemoteOther,
    Request,
)
from astra.retry import RETRYABLE_CAUSES
from emulator import Emulator
from support import wait_until
from test_astra_support import (  # noqa: F401 - the module-level leak check is a fixture
    no_device_process_left,
    running_device,
)

IPC = {"timeout": errors.DeviceTimeout, "dead": errors.DeviceDead, "stopped": errors.DeviceStopped,
       "closed": errors.ChannelClosed, "broken": errors.BrokenChannel}
REMOTE = {"ascom": errors.RemoteAscomError, "http_status": errors.RemoteHTTPStatus, "refused": errors.RemoteRefused,
          "timeout": errors.RemoteTimeout, "dropped": errors.RemoteDropped, "malformed": errors.RemoteMalformed,
          "other": errors.RemoteOther}


# -- the classes ---------------------------------------------------------------------------------------


def test_the_classes_are_the_one_list_of_reasons_and_causes():
    assert sorted(errors.IPC_REASONS) == sorted(IPC)
    assert sorted(errors.REMOTE_CAUSES) == sorted(REMOTE)
    for reason, cls in IPC.items():
        err = AlpacaDeviceIPCError.of(reason, "x")
        assert type(err) is cls and err.reason == reason and isinstance(err, AlpacaDeviceIPCError)
    for cause, cls in REMOTE.items():
        err = RemoteDeviceError.from_fields({"cause": cause, "method": "Position", "device_name": "f"})
        assert type(err) is cls and err.cause == cause and isinstance(err, RemoteDeviceError)
    for causes in RETRYABLE_CAUSES.values():  # the retry table speaks of known causes only
        assert causes <= set(errors.REMOTE_CAUSES)


def test_unknown_reasons_and_causes_are_refused():
    with pytest.raises(ValueError, match="reason"):
        AlpacaDeviceIPCError("x", reason="asleep")
    with pytest.raises(ValueError, match="reason"):
        DeviceTimeout("x", reason="dead")  # a class has its own reason
    with pytest.raises(ValueError, match="cause"):
        RemoteDeviceError.from_fields({"cause": "gremlins"})
    assert AlpacaDeviceIPCError("x", reason="dead").reason == "dead"  # the base class, as before


@pytest.mark.parametrize("cls", [*IPC.values(), *REMOTE.values()])
def test_every_error_pickles_with_its_class_request_and_fields(cls):
    request = Request("get", "Move", (), {"Position": 12})
    if issubclass(cls, RemoteDeviceError):
        err = cls("boom", error_number=0x401, ambiguous=True, method="Move", device_name="f", remote_message="m",
                  attempts=2, request=request)
        err.remote_traceback = "Traceback (most recent call last):\n  ...\nValueError: m\n"
    else:
        err = cls("boom", request=request, device_name="f")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls and str(back) == "boom"
    assert back.request == request and back.method == "Move" and back.device_name == "f"
    if isinstance(err, RemoteDeviceError):
        assert back.fields() == err.fields()
        assert "ValueError: m" in str(back.__cause__)  # the traceback text is the cause again
    else:
        assert back.reason == err.reason


def test_for_request_keeps_the_class_and_adds_the_request():
    failure = DeviceDead("[f] the device process died (exit code -9)", device_name="f")
    request = Request("set", "TempComp", (True,))
    err = failure.for_request(request, "while waiting for set TempComp")
    assert type(err) is DeviceDead and err.request == request and err.method == "TempComp"
    assert str(err) == "[f] the device process died (exit code -9) (while waiting for set TempComp)"
    assert failure.request is None  # the shared failure itself is not changed


def test_a_direct_back_side_call_keeps_its_request():
    dev = AlpacaDevice("127.0.0.1:1", "Focuser", 0, "focus", None, retry={"tries": 1})

    class Broken:
        def Move(self, Position):
            raise RuntimeError("stuck")

    dev.device = Broken()
    with pytest.raises(RemoteOther) as info:
        dev.get__("Move", Position=5)
    assert info.value.request == Request("get", "Move", (), {"Position": 5})


# -- through a device process --------------------------------------------------------------------------


def test_a_caller_can_except_the_timeout_class_and_read_the_request():
    with Emulator() as emu, running_device(emu.address, "Focuser") as (dev, col):
        dev.get("Name")
        emu.faults.add({"match": {"device_type": "focuser", "member": "move"}, "action": {"kind": "latency", "ms": 1500},
                        "trigger": {"count": 1}})
        try:
            dev.call("Move", {"Position": 1234}, timeout=0.3)
        except DeviceTimeout as err:
            caught = err
        else:
            pytest.fail("no DeviceTimeout")
        assert caught.reason == "timeout" and isinstance(caught, AlpacaDeviceIPCError)
        assert caught.request == Request("call", "Move", (), {"Position": 1234})  # call() makes a "call" request
        assert (caught.request.op, caught.request.member, caught.request.kwargs) == ("call", "Move", {"Position": 1234})
        assert caught.method == "Move" and caught.device_name == "test-Focuser"


def test_a_remote_error_keeps_member_and_arguments():
    with Emulator() as emu, running_device(emu.address, "Focuser") as (dev, col):
        with pytest.raises(RemoteAscomError) as info:
            dev.get("Move", Position=10_000_000)
        err = info.value
        assert err.request == Request("get", "Move", (), {"Position": 10_000_000})
        assert err.error_number == 0x401 and "Traceback" in str(err.__cause__)
        emu.faults.add({"match": {"device_type": "focuser", "member": "tempcomp", "verb": "PUT"},
                        "action": {"kind": "ascom_error", "number": "0x40B", "message": "busy"}, "trigger": {"count": 1}})
        with pytest.raises(RemoteAscomError) as info:
            dev.set("TempComp", True)
        assert info.value.request == Request("set", "TempComp", (True,))
        assert pickle.loads(pickle.dumps(info.value)).request == info.value.request


def test_an_unknown_op_is_answered_by_the_op_table():
    with Emulator() as emu, running_device(emu.address, "Focuser") as (dev, col):
        with pytest.raises(RemoteOther, match="unknown request 'warp'") as info:
            dev._request(Request("warp", "Drive", (9,)))
        assert info.value.request == Request("warp", "Drive", (9,))
        assert dev.get("Name") == "Rehearsal Focuser 0"


def test_a_dead_child_fails_every_pending_call_at_once_with_one_cause():
    members = ["Position", "Temperature", "IsMoving", "MaxStep"]
    with Emulator() as emu, running_device(emu.address, "Focuser", workers=4, call_timeout=30) as (dev, col):
        dev.get("Name")
        rule = emu.faults.add({"match": {"device_type": "focuser", "verb": "GET"}, "action": {"kind": "latency", "ms": 20000}})
        outcome: dict[str, BaseException] = {}
        finished: dict[str, float] = {}

        def call(member: str) -> None:
            try:
                dev.get(member)
            except BaseException as exc:
                outcome[member] = exc
            finished[member] = time.monotonic()

        threads = [threading.Thread(target=call, args=(m,)) for m in members]
        for t in threads:
            t.start()
        assert wait_until(lambda: rule.fired == len(members), 10)  # all four are held by the server
        killed_at = time.monotonic()
        os.kill(dev.pid, signal.SIGKILL)
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
        failure = dev._channel.failure
        assert isinstance(failure, DeviceDead) and "-9" in str(failure)
        for member in members:
            err = outcome[member]
            assert type(err) is DeviceDead and err.reason == "dead"
            assert err.__cause__ is failure  # one cause for all
            assert err.request == Request("get", member, (), {})  # each keeps its own request
            assert finished[member] - killed_at < 1.0
        with pytest.raises(DeviceDead) as later:
            dev.get("Name")
        assert later.value.__cause__ is failure and later.value.request.member == "Name"


def test_errors_of_both_families_are_alpacadeviceerrors():
    for cls in [*IPC.values(), *REMOTE.values()]:
        assert issubclass(cls, AlpacaDeviceError)
