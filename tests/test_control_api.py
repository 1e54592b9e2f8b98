"""The /emulator/v1 control API end to end, over real HTTP, plus --no-control and --control-token."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import falcon.testing
import pytest
import requests
from alpaca.exceptions import AlpacaRequestException
from alpaca.safetymonitor import SafetyMonitor

from emulator import Emulator

CONFIG = {"devices": [{"type": "safetymonitor", "connected": True}, {"type": "camera"}]}


@pytest.fixture
def emu():
    with Emulator(CONFIG) as e:
        yield e


def test_faults_end_to_end(emu):
    base = emu.url + "/emulator/v1"
    mon = SafetyMonitor(emu.address, 0)
    assert requests.get(base + "/faults", timeout=5).json() == []
    r = requests.post(
        base + "/faults",
        json={"name": "outage", "match": {"device_type": "safetymonitor", "member": "issafe"}, "action": {"kind": "http_status", "status": 503}},
        timeout=5,
    )
    assert r.status_code == 201
    rule = r.json()
    assert rule["id"] and rule["name"] == "outage" and rule["action"]["status"] == 503
    with pytest.raises(AlpacaRequestException):
        mon.IsSafe
    listed = requests.get(base + "/faults", timeout=5).json()
    assert [x["id"] for x in listed] == [rule["id"]] and listed[0]["fired"] == 1
    assert requests.get(f"{base}/faults/{rule['id']}", timeout=5).json()["matched"] == 1
    assert requests.delete(f"{base}/faults/{rule['id']}", timeout=5).status_code == 200
    assert mon.IsSafe is True
    r = requests.delete(f"{base}/faults/{rule['id']}", timeout=5)
    assert r.status_code == 404 and "error" in r.json()
    for _ in range(2):
        requests.post(base + "/faults", json={"action": {"kind": "bad_json"}}, timeout=5)
    assert requests.delete(base + "/faults", timeout=5).json() == {"removed": 2}
    assert emu.faults.list() == []


def test_delete_one_rule_keeps_the_others(emu):
    base = emu.url + "/emulator/v1/faults"
    ids = [requests.post(base, json={"name": n, "action": {"kind": "bad_json"}}, timeout=5).json()["id"] for n in "abc"]
    assert requests.delete(f"{base}/{ids[1]}", timeout=5).json() == {"removed": ids[1]}
    assert [x["id"] for x in requests.get(base, timeout=5).json()] == [ids[0], ids[2]]
    assert [r.id for r in emu.faults.list()] == [ids[0], ids[2]]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"action": {"kind": "latency", "ms": "soon"}}, "action.ms"),
        ({"action": {"kind": "nonsense"}}, "action.kind"),
        ({"match": {"device_number": -1}, "action": {"kind": "bad_json"}}, "match.device_number"),
        ({"action": {"kind": "bad_json"}, "trigger": {"every": 0}}, "trigger.every"),
        ({"action": {"kind": "bad_json"}, "extra": 1}, "extra"),
    ],
)
def test_bad_rule_is_a_4xx_naming_the_field(emu, body, field):
    r = requests.post(emu.url + "/emulator/v1/faults", json=body, timeout=5)
    assert 400 <= r.status_code < 500
    doc = r.json()
    assert field in [e["field"] for e in doc["errors"]] and field in doc["error"]
    assert emu.faults.list() == []


def test_not_json_and_not_an_object(emu):
    r = requests.post(emu.url + "/emulator/v1/faults", data=b"{nope", timeout=5)
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = requests.post(emu.url + "/emulator/v1/faults", json=[1, 2], timeout=5)
    assert r.status_code == 400 and "error" in r.json()


def test_state_get_put(emu):
    url = emu.url + "/emulator/v1/devices/safetymonitor/0/state"
    assert requests.get(url, timeout=5).json()["IsSafe"] is True
    r = requests.put(url, json={"IsSafe": False}, timeout=5)
    assert r.status_code == 200 and r.json()["IsSafe"] is False
    assert SafetyMonitor(emu.address, 0).IsSafe is False
    r = requests.put(url, json={"IsSafe": "no"}, timeout=5)
    assert r.status_code == 400 and "IsSafe" in r.json()["error"]
    r = requests.put(url, json={"IsSafe": True, "Weather": 3}, timeout=5)
    assert r.status_code == 400 and "Weather" in r.json()["error"]
    assert emu.get_state("safetymonitor")["IsSafe"] is False  # nothing applied
    assert requests.get(emu.url + "/emulator/v1/devices/safetymonitor/5/state", timeout=5).status_code == 404
    assert requests.get(emu.url + "/emulator/v1/devices/toaster/0/state", timeout=5).status_code == 404


def test_traffic_get_filter_delete(emu):
    mon = SafetyMonitor(emu.address, 0)
    mon.IsSafe
    mon.Name
    requests.get(emu.url + "/api/v1/camera/0/name", timeout=5)
    url = emu.url + "/emulator/v1/traffic"
    assert len(requests.get(url, timeout=5).json()) == 3
    only = requests.get(url, params={"device_type": "safetymonitor", "member": "issafe"}, timeout=5).json()
    assert len(only) == 1 and only[0]["member"] == "issafe" and only[0]["status"] == 200
    latest = requests.get(url, params={"limit": 2}, timeout=5).json()
    assert [(e["device_type"], e["member"]) for e in latest] == [("safetymonitor", "name"), ("camera", "name")]  # the most recent
    r = requests.get(url, params={"device_number": "zero"}, timeout=5)
    assert r.status_code == 400 and r.json()["field"] == "device_number"
    assert requests.get(url, params={"colour": "red"}, timeout=5).status_code == 400
    assert requests.delete(url, timeout=5).json() == {"removed": 3}
    assert requests.get(url, timeout=5).json() == []


def test_reset_restores_state_and_removes_rules(emu):
    emu.set_state("safetymonitor", IsSafe=False)
    emu.faults.add(action={"kind": "bad_json"})
    r = requests.post(emu.url + "/emulator/v1/reset", timeout=5)
    assert r.status_code == 200
    assert emu.faults.list() == []
    assert SafetyMonitor(emu.address, 0).IsSafe is True


def test_unknown_control_path_is_json_404(emu):
    r = requests.get(emu.url + "/emulator/v1/nothing", timeout=5)
    assert r.status_code == 404 and "error" in r.json()


def test_no_control():
    with Emulator(CONFIG, control=False) as emu:
        r = requests.get(emu.url + "/emulator/v1/faults", timeout=5)
        assert r.status_code == 400 and r.headers["Content-Type"].startswith("text/plain")  # just a bad Alpaca path
        assert emu.faults.list() == []  # Python control still works
        emu.faults.add(action={"kind": "bad_json"})


def test_control_token():
    with Emulator(CONFIG, control_token="s3cret") as emu:
        url = emu.url + "/emulator/v1/faults"
        assert requests.get(url, timeout=5).status_code == 401
        assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
        assert requests.get(url, headers={"Authorization": "Bearer s3cret"}, timeout=5).status_code == 200
        assert requests.get(url, headers={"X-Control-Token": "s3cret"}, timeout=5).status_code == 200
        # the Alpaca API itself needs no token
        assert requests.get(emu.url + "/api/v1/camera/0/name", timeout=5).status_code == 200


def _non_loopback_ip() -> str | None:
    for target in ("192.0.2.1", "10.254.254.254", "198.51.100.1"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((target, 9))  # no packet is sent; this only picks the outgoing interface
            ip = s.getsockname()[0]
        except OSError:
            continue
        finally:
            s.close()
        if not ip.startswith("127.") and ip != "0.0.0.0":
            return ip
    return None


def test_control_refused_beyond_loopback_without_token():
    with Emulator(CONFIG, host="0.0.0.0") as emu:
        # Falcon's test client can claim any client address: the decision itself
        client = falcon.testing.TestClient(emu.app)
        assert client.simulate_get("/emulator/v1/faults", remote_addr="10.1.2.3").status_code == 403
        assert client.simulate_get("/emulator/v1/faults", remote_addr="127.0.0.1").status_code == 200
        ip = _non_loopback_ip()
        if ip is None:
            pytest.skip("no non-loopback interface to connect from")
        r = requests.get(f"http://{ip}:{emu.port}/emulator/v1/faults", timeout=5)
        assert r.status_code == 403 and "control-token" in r.json()["error"]
        assert requests.get(f"http://{ip}:{emu.port}/api/v1/camera/0/name", timeout=5).status_code == 200


def test_control_beyond_loopback_with_token():
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback interface to connect from")
    with Emulator(CONFIG, host="0.0.0.0", control_token="t") as emu:
        r = requests.get(f"http://{ip}:{emu.port}/emulator/v1/faults", headers={"Authorization": "Bearer t"}, timeout=5)
        assert r.status_code == 200


def _serve(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator.cli", "--port", "0", "--no-discovery", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("listening on "):
            return proc, line.split()[-1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"alpaca-emulator did not start: {proc.stderr.read()}")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    for f in (proc.stdout, proc.stderr):
        f.close()


def test_cli_control_token_and_no_control():
    proc, url = _serve("--control-token", "abc")
    try:
        assert requests.get(url + "/emulator/v1/faults", timeout=5).status_code == 401
        r = requests.post(
            url + "/emulator/v1/faults", json={"action": {"kind": "http_status", "status": 500}}, headers={"Authorization": "Bearer abc"}, timeout=5
        )
        assert r.status_code == 201
        assert requests.get(url + "/api/v1/camera/0/name", timeout=5).status_code == 500
    finally:
        _stop(proc)
    proc, url = _serve("--no-control")
    try:
        assert requests.get(url + "/emulator/v1/faults", timeout=5).status_code == 400
    finally:
        _stop(proc)


def test_readme_walkthrough_rule_shape(emu):
    """The exact rule the README's curl call posts."""
    r = requests.post(
        emu.url + "/emulator/v1/faults",
        json={"match": {"device_type": "safetymonitor", "member": "issafe"}, "action": {"kind": "ascom_error", "number": 1031, "message": "weather station unplugged"}},
        timeout=5,
    )
    assert r.status_code == 201
    from alpaca.exceptions import NotConnectedException

    with pytest.raises(NotConnectedException, match="unplugged"):
        SafetyMonitor(emu.address, 0).IsSafe
