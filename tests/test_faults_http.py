"""HTTP-level fault actions, as the real alpyca client (and plain requests) sees them."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

import pytest
import requests
from alpaca.exceptions import AlpacaRequestException, NotConnectedException
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator
from emulator.faults import request_info

ISSAFE = "/api/v1/safetymonitor/0/issafe"


@pytest.fixture
def emu():
    with Emulator({"devices": [{"type": "safetymonitor", "connected": True}, {"type": "telescope"}]}) as e:
        yield e


def _timed_get(url: str) -> float:
    t = time.monotonic()
    r = requests.get(url, timeout=10)
    assert r.status_code == 200
    return time.monotonic() - t


def test_latency_adds_ms(emu):
    url = emu.url + ISSAFE
    base = statistics.median(_timed_get(url) for _ in range(5))
    with emu.faults.add(match={"member": "issafe"}, action={"kind": "latency", "ms": 300}):
        delayed = min(_timed_get(url) for _ in range(3))
        mon = SafetyMonitor(emu.address, 0)
        t = time.monotonic()
        assert mon.IsSafe is True  # alpyca gets the right answer, late
        assert time.monotonic() - t >= 0.3
    assert delayed >= 0.3
    assert delayed - base < 0.3 + 0.03


def test_latency_jitter_is_seeded_and_bounded(emu):
    with emu.faults.add(action={"kind": "latency", "ms": 50, "jitter_ms": 100}, match={"member": "issafe"}):
        times = [_timed_get(emu.url + ISSAFE) for _ in range(3)]
    assert all(0.05 <= t for t in times)
    # The delays themselves, as the rules decide them (no wall-clock measurement involved).
    first = _jitter_delays(emu, seed=3)
    assert all(0.05 <= d <= 0.15 for d in first), first
    assert max(first) - min(first) > 0.03  # it does jitter
    assert _jitter_delays(emu, seed=3) == first  # same seed, same delays
    assert _jitter_delays(emu, seed=4) != first
    child = subprocess.run(  # and in another process, whatever its hash seed
        [sys.executable, "-c", _JITTER_CHILD],
        capture_output=True,
        text=True,
        timeout=50,
        env={**os.environ, "PYTHONHASHSEED": "4321"},
    )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1]) == first


def _jitter_delays(emu: Emulator, seed: int, n: int = 20) -> list[float]:
    with emu.faults.add(action={"kind": "latency", "ms": 50, "jitter_ms": 100}, trigger={"seed": seed}):
        info = request_info("GET", ISSAFE)
        return [emu.faults.evaluate(info).reply_delay_s for _ in range(n)]  # downstream: the answer waits


_JITTER_CHILD = f"""
import json
from emulator import Emulator
from emulator.faults import request_info
emu = Emulator({{"devices": [{{"type": "safetymonitor"}}]}})  # not started: its rules decide all the same
with emu.faults.add(action={{"kind": "latency", "ms": 50, "jitter_ms": 100}}, trigger={{"seed": 3}}):
    print(json.dumps([emu.faults.evaluate(request_info("GET", "{ISSAFE}")).reply_delay_s for _ in range(20)]))
"""


def test_http_status_503(emu):
    emu.faults.add(match={"member": "issafe"}, action={"kind": "http_status", "status": 503, "body": "maintenance"})
    with pytest.raises(AlpacaRequestException) as info:
        SafetyMonitor(emu.address, 0).IsSafe
    assert info.value.number == 503 and "maintenance" in info.value.message
    r = requests.get(emu.url + ISSAFE, timeout=5)
    assert r.status_code == 503 and r.text == "maintenance" and r.headers["Content-Type"].startswith("text/plain")


def test_bad_json_is_a_decode_error(emu):
    emu.faults.add(match={"member": "issafe"}, action={"kind": "bad_json"})
    with pytest.raises(ValueError):  # requests' JSONDecodeError is a ValueError
        SafetyMonitor(emu.address, 0).IsSafe
    r = requests.get(emu.url + ISSAFE, timeout=5)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.text)


def test_bad_content_type(emu):
    emu.faults.add(match={"member": "issafe"}, action={"kind": "bad_content_type"})
    r = requests.get(emu.url + ISSAFE, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert r.json()["Value"] is True  # body intact: only the header lies (alpyca does not notice)


def test_missing_key(emu):
    with emu.faults.add(match={"member": "issafe"}, action={"kind": "missing_key", "key": "Value"}):
        with pytest.raises(KeyError):
            SafetyMonitor(emu.address, 0).IsSafe
    with emu.faults.add(match={"member": "issafe"}, action={"kind": "missing_key", "key": "ErrorNumber"}):
        doc = requests.get(emu.url + ISSAFE, timeout=5).json()
        assert "ErrorNumber" not in doc and doc["Value"] is True


def test_wrong_type(emu):
    emu.faults.add(match={"member": "issafe"}, action={"kind": "wrong_type"})
    value = SafetyMonitor(emu.address, 0).IsSafe
    assert not isinstance(value, bool)  # a string "true": truthy, but not a bool


def test_wrong_transaction_id(emu):
    emu.faults.add(match={"member": "issafe"}, action={"kind": "wrong_transaction_id"})
    doc = requests.get(emu.url + ISSAFE, params={"ClientTransactionID": 41}, timeout=5).json()
    assert doc["ClientTransactionID"] != 41 and doc["ServerTransactionID"] == 0


def test_ascom_error_not_connected(emu):
    emu.faults.add(match={"member": "issafe"}, action={"kind": "ascom_error", "number": "0x407", "message": "cable out"})
    with pytest.raises(NotConnectedException, match="cable out"):
        SafetyMonitor(emu.address, 0).IsSafe
    doc = requests.get(emu.url + ISSAFE, params={"ClientTransactionID": 9}, timeout=5).json()
    assert doc["ErrorNumber"] == 0x407 and doc["ClientTransactionID"] == 9 and doc["ServerTransactionID"] > 0
    assert "Value" not in doc


def test_ascom_error_on_imagearray_speaks_imagebytes_when_asked():
    """An injected error on ImageArray comes back in the encoding the client asked for."""
    import struct

    with Emulator({"devices": [{"type": "camera", "connected": True}]}) as e:
        e.faults.add(match={"member": "imagearray"}, action={"kind": "ascom_error", "number": 1035, "message": "readout jammed"})
        url = e.url + "/api/v1/camera/0/imagearray"
        r = requests.get(url, params={"ClientTransactionID": 5}, headers={"Accept": "application/imagebytes"}, timeout=5)
        assert r.headers["Content-Type"] == "application/imagebytes"
        version, number, client_tx, server_tx, data_start = struct.unpack_from("<iiIIi", r.content)
        assert (version, number, client_tx, data_start) == (1, 1035, 5, 44) and server_tx > 0
        assert r.content[44:] == b"readout jammed"
        doc = requests.get(url, timeout=5).json()  # no Accept: the JSON envelope
        assert doc["ErrorNumber"] == 1035 and doc["ErrorMessage"] == "readout jammed"


def test_truncate(emu):
    emu.faults.add(match={"member": "issafe"}, action={"kind": "truncate"})
    with pytest.raises(requests.exceptions.RequestException):  # ChunkedEncodingError: IncompleteRead
        SafetyMonitor(emu.address, 0).IsSafe
    assert emu.traffic.entries(member="issafe")[-1].outcome == "truncated"


def test_slow_body(emu):
    size = len(requests.get(emu.url + ISSAFE, timeout=5).content)
    emu.faults.add(match={"member": "issafe"}, action={"kind": "slow_body", "bytes_per_s": 200})
    t = time.monotonic()
    assert SafetyMonitor(emu.address, 0).IsSafe is True  # intact, just slow
    assert time.monotonic() - t >= 0.9 * size / 200


def test_fault_on_one_member_leaves_others_alone(emu):
    emu.faults.add(match={"device_type": "safetymonitor", "member": "issafe"}, action={"kind": "http_status", "status": 500})
    mon = SafetyMonitor(emu.address, 0)
    assert mon.Name  # another member of the same device
    assert requests.get(emu.url + "/api/v1/telescope/0/name", timeout=5).status_code == 200
    with pytest.raises(AlpacaRequestException):
        mon.IsSafe


def test_content_faults_reach_a_streamed_json_image():
    """A JSON ImageArray is streamed in chunks; a response-content fault still sees the whole reply."""
    from support import wait_for

    cam_cfg = {"type": "camera", "connected": True, "width": 40, "height": 30, "readout_time_s": 0}
    with Emulator({"devices": [cam_cfg]}, time_scale=100) as e:
        url = e.url + "/api/v1/camera/0"
        requests.put(url + "/startexposure", data={"Duration": "0.1", "Light": "true"}, timeout=5)
        wait_for(lambda: requests.get(url + "/imageready", timeout=5).json()["Value"], what="the image")
        intact = requests.get(url + "/imagearray", timeout=5).json()
        with e.faults.add(match={"member": "imagearray"}, action={"kind": "missing_key", "key": "Value"}):
            doc = requests.get(url + "/imagearray", timeout=5).json()
        assert "Value" in intact and "Value" not in doc and doc["Rank"] == 2 and doc["ErrorNumber"] == 0
        with e.faults.add(match={"member": "imagearray"}, action="bad_json"):
            r = requests.get(url + "/imagearray", timeout=5)
        assert r.content.startswith(b"<<not JSON>> ") and int(r.headers["Content-Length"]) == len(r.content)


def test_traffic_log_keeps_the_devices_error_number_under_a_content_fault(emu):
    """The log says what the device answered; the fired rule says how the reply was broken."""
    emu.faults.add(name="garble", match={"member": "devicestate"}, action="bad_json")
    requests.get(emu.url + "/api/v1/telescope/0/devicestate", timeout=5)  # not connected: 0x407
    (entry,) = emu.traffic.entries(member="devicestate")
    assert (entry.status, entry.error_number, entry.rules) == (200, 0x407, ["garble"])
