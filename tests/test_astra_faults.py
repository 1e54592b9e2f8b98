"""AlpacaDevice under the emulator's fault injection: what is retried, what is never re-sent, how errors are told apart."""

from __future__ import annotations

import re
import time

import pytest
import requests

from astra.alpaca_device_process import RemoteDeviceError
from emulator import Emulator
from support import wait_until
from test_astra_support import (  # noqa: F401 - the module-level leak check is a fixture
    no_device_process_left,
    running_device,
)


def _count(emu: Emulator, device_type: str, member: str, verb: str) -> int:
    return emu.traffic.count(device_type=device_type, member=member, verb=verb)


def test_dropped_answer_to_startexposure_is_not_resent_and_is_ambiguous():
    with Emulator() as emu, running_device(emu.address, "Camera") as (dev, col):
        dev.get("Name")
        emu.faults.add({"match": {"device_type": "camera", "member": "startexposure", "verb": "PUT"},
                        "action": {"kind": "drop", "phase": "response"}, "trigger": {"count": 1}})
        with pytest.raises(RemoteDeviceError) as info:
            dev.get("StartExposure", Duration=0.5, Light=True)
        err = info.value
        assert err.cause == "dropped" and err.ambiguous is True and err.attempts == 1
        assert "ambiguous" in str(err)
        assert wait_until(lambda: _count(emu, "camera", "startexposure", "PUT") == 1, 5)
        time.sleep(0.3)
        assert _count(emu, "camera", "startexposure", "PUT") == 1  # never re-sent
        assert emu.device("camera")._exposure_count == 1  # and the camera did act
        assert not [t for t in col.logs("warning") if "retry" in t]


def test_hung_method_times_out_ambiguous_without_resend():
    with Emulator() as emu, running_device(emu.address, "Focuser", http_timeout=0.5) as (dev, col):
        dev.get("Name")
        emu.faults.add({"match": {"device_type": "focuser", "member": "move", "verb": "PUT"},
                        "action": {"kind": "hang", "max_s": 2}, "trigger": {"count": 1}})
        with pytest.raises(RemoteDeviceError) as info:
            dev.get("Move", Position=1234)
        assert (info.value.cause, info.value.ambiguous, info.value.attempts) == ("timeout", True, 1)
        assert wait_until(lambda: _count(emu, "focuser", "move", "PUT") == 1, 5)  # logged once its fate is known
        assert _count(emu, "focuser", "move", "PUT") == 1


def test_hung_read_is_retried_and_succeeds():
    with Emulator() as emu, running_device(emu.address, "Focuser", http_timeout=0.5) as (dev, col):
        dev.get("Name")
        emu.faults.add({"match": {"device_type": "focuser", "member": "position", "verb": "GET"},
                        "action": {"kind": "hang", "max_s": 2}, "trigger": {"count": 1}})
        assert isinstance(dev.get("Position"), int)
        assert wait_until(lambda: any("Position: timeout" in t and "retry 1/2" in t for t in col.logs("warning")), 5)


def test_refused_method_is_retried_and_reaches_the_server_once():
    retry = {"tries": 6, "backoff_s": 0.2, "backoff_factor": 2.0, "max_backoff_s": 1.0}
    with Emulator() as emu, running_device(emu.address, "Focuser", retry=retry) as (dev, col):
        dev.get("Name")
        emu.faults.add({"match": {"device_type": "management"}, "action": {"kind": "down", "duration_s": 0.5},
                        "trigger": {"count": 1}})
        with pytest.raises(requests.ConnectionError):  # this request starts the outage
            requests.get(f"{emu.url}/management/apiversions", timeout=2)
        dev.get("Move", Position=2000)  # refused while down: provably never sent, so retried
        assert _count(emu, "focuser", "move", "PUT") == 1
        assert any("Move: refused" in t for t in col.logs("warning"))


def test_http_status_and_ascom_errors_are_never_retried():
    with Emulator() as emu, running_device(emu.address, "Focuser") as (dev, col):
        dev.get("Name")
        emu.faults.add({"match": {"device_type": "focuser", "member": "temperature"},
                        "action": {"kind": "http_status", "status": 500, "body": "boom"}, "trigger": {"count": 1}})
        with pytest.raises(RemoteDeviceError) as info:
            dev.get("Temperature")
        assert (info.value.cause, info.value.http_status, info.value.attempts) == ("http_status", 500, 1)
        assert _count(emu, "focuser", "temperature", "GET") == 1
        emu.faults.add({"match": {"device_type": "focuser", "member": "ismoving"},
                        "action": {"kind": "ascom_error", "number": "0x40B", "message": "busy"}, "trigger": {"count": 1}})
        with pytest.raises(RemoteDeviceError) as info:
            dev.get("IsMoving")
        err = info.value
        assert (err.cause, err.error_number, err.error_name, err.attempts) == ("ascom", 0x40B, "InvalidOperationException", 1)
        assert _count(emu, "focuser", "ismoving", "GET") == 1


def test_malformed_answers_have_their_own_cause():
    with Emulator() as emu, running_device(emu.address, "Focuser") as (dev, col):
        dev.get("Name")
        emu.faults.add({"match": {"device_type": "focuser", "member": "maxstep"}, "action": {"kind": "bad_json"},
                        "trigger": {"count": 1}})
        with pytest.raises(RemoteDeviceError) as info:
            dev.get("MaxStep")
        assert info.value.cause == "malformed" and info.value.attempts == 1
        emu.faults.add({"match": {"device_type": "focuser", "member": "maxstep"},
                        "action": {"kind": "missing_key", "key": "ErrorNumber"}, "trigger": {"count": 1}})
        with pytest.raises(RemoteDeviceError) as info:
            dev.get("MaxStep")
        assert info.value.cause == "malformed" and info.value.remote_type == "KeyError"
        assert dev.get("MaxStep") == 50000


def test_polling_rides_out_a_3_s_refuse_and_resumes_by_itself():
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor", poll_max_backoff_s=0.4) as (dev, col):
        dev.start_poll("IsSafe", 0.1)
        assert wait_until(lambda: dev.poll_latest(), 5)
        emu.faults.add({"match": {"device_type": "safetymonitor", "member": "issafe"},
                        "action": {"kind": "refuse", "duration_s": 3}, "trigger": {"count": 1}})
        started = time.monotonic()
        assert wait_until(lambda: dev.poll_latest()["IsSafe"]["error"], 5)
        during = dev.poll_latest()["IsSafe"]
        good_before = during["datetime"]
        assert wait_until(lambda: dev.poll_latest()["IsSafe"]["failures"] >= 2, 5)
        assert dev.poll_latest()["IsSafe"]["datetime"] == good_before  # staleness grows during the outage
        assert dev.poll_list() == ["IsSafe"]  # the poll thread did not give up
        assert wait_until(lambda: dev.poll_latest()["IsSafe"]["error"] is None, 10)
        assert time.monotonic() - started >= 2.5  # it came back after the outage, not through it
        after = dev.poll_latest()["IsSafe"]
        assert after["value"] is True and after["datetime"] > good_before
        count = emu.traffic.count(device_type="safetymonitor", member="issafe")
        assert wait_until(lambda: emu.traffic.count(device_type="safetymonitor", member="issafe") >= count + 3, 5)
        assert wait_until(lambda: any("poll IsSafe recovered" in t for t in col.logs("info")), 5)


def test_polling_backs_off_during_an_outage():
    """A 3 s refuse at 20 Hz polling: the failed reads back off (about 6), they do not hammer (60)."""
    with Emulator() as emu, running_device(emu.address, "SafetyMonitor", poll_max_backoff_s=1.0) as (dev, col):
        dev.start_poll("IsSafe", 0.05)
        assert wait_until(lambda: dev.poll_latest(), 5)
        emu.faults.add({"match": {"device_type": "safetymonitor", "member": "issafe"},
                        "action": {"kind": "refuse", "duration_s": 3}, "trigger": {"count": 1}})
        assert wait_until(lambda: any("poll IsSafe recovered" in t for t in col.logs("info")), 15)
        text = next(t for t in col.logs("info") if "poll IsSafe recovered" in t)
        failed = int(re.search(r"after (\d+) failed reads", text).group(1))
        assert 2 <= failed <= 15, f"{failed} failed reads in a 3 s outage polled at 20 Hz"


def test_hung_image_download_times_out_instead_of_wedging_the_process():
    cfg = {"devices": [{"type": "camera", "width": 64, "height": 48, "readout_time_s": 0.0}]}
    with Emulator(cfg) as emu, running_device(emu.address, "Camera", image_timeout=0.5, retry={"tries": 1}) as (dev, col):
        dev.get("StartExposure", Duration=0.05, Light=True)
        assert wait_until(lambda: dev.get("ImageReady"), 5)
        emu.faults.add({"match": {"device_type": "camera", "member": "imagearray"}, "action": {"kind": "hang", "max_s": 5},
                        "trigger": {"count": 1}})
        t0 = time.monotonic()
        with pytest.raises(RemoteDeviceError) as info:
            dev.get("ImageArray")  # alpyca itself would wait forever, holding its process-wide lock
        assert info.value.cause == "timeout" and time.monotonic() - t0 < 5
        image = dev.get("ImageArray")
        assert len(image) == 64 and len(image[0]) == 48
        assert dev.get("Name") == "Rehearsal Camera 0"
