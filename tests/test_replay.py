"""Record a session (through the proxy, or at the emulator) and replay it against a server.

Real emulators, a real proxy, alpyca clients; the replay really sends every request again.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
from alpaca.dome import Dome
from alpaca.filterwheel import FilterWheel
from alpaca.focuser import Focuser
from alpaca.safetymonitor import SafetyMonitor
from alpaca.switch import Switch
from alpaca.telescope import Telescope

from emulator import Emulator
from emulator.serve.recording import RecordingError, read_recording
from proxy import Proxy
from proxy.replay import replay

SEED = 7  # one device of each type, seeded
#: Generous: these tests are about values, not the machine's speed (timing has its own test).
LOOSE_MS = 5000


def night(address: str) -> None:
    """A short session as an observatory program would make it, with alpyca."""
    focuser, wheel, dome = Focuser(address, 0), FilterWheel(address, 0), Dome(address, 0)
    weather, switch, scope = SafetyMonitor(address, 0), Switch(address, 0), Telescope(address, 0)
    for device in (focuser, wheel, dome, weather, switch, scope):
        device.Connected = True
    assert focuser.MaxStep > 0
    focuser.Position
    focuser.IsMoving
    wheel.Names
    wheel.Position
    dome.ShutterStatus
    weather.IsSafe
    switch.GetSwitchValue(0)
    switch.SetSwitchValue(0, switch.MinSwitchValue(0))
    switch.GetSwitchValue(0)
    scope.SiderealTime  # moves with the clock: its value is not compared by default
    scope.Tracking
    focuser.Position
    try:
        focuser.Move(-5)  # an ASCOM error, recorded and replayed like any answer
    except Exception:  # noqa: BLE001
        pass


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "night.jsonl"
    with Emulator(seed=SEED) as upstream, Proxy(upstream.address, record=path) as proxy:
        night(proxy.address)
        requests.get(f"{proxy.url}/emulator/v1/traffic", timeout=10)  # the control API: not recorded
        assert proxy.recorder.exchanges == len(proxy.traffic)
    return path


def test_a_recording_holds_every_exchange(recording):
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    assert {"time", "method", "path", "query", "form", "status", "content_type", "body", "duration_s"} <= set(lines[0])
    assert not any(line["path"].startswith("/emulator/") for line in lines)
    put = next(line for line in lines if line["path"] == "/api/v1/switch/0/setswitchvalue")
    assert put["method"] == "PUT" and "Id=0" in put["form"] and "ClientTransactionID=" in put["form"]
    move = next(line for line in lines if line["path"] == "/api/v1/focuser/0/move")
    assert json.loads(move["body"])["ErrorNumber"] != 0
    assert [e.path for e in read_recording(recording)] == [line["path"] for line in lines]


def test_replayed_against_the_same_configuration_nothing_differs(recording):
    with Emulator(seed=SEED) as target:
        report = replay(str(recording), target.url, speed=4, tolerance_ms=LOOSE_MS)
    assert report.exchanges > 20
    assert report.ok, report.text()


def test_replayed_after_a_rule_changed_one_member_exactly_that_member_differs(recording):
    with Emulator(seed=SEED) as target, Proxy(target.address) as proxy:
        proxy.faults.add({"match": {"device_type": "focuser", "member": "position"}, "action": {"kind": "ascom_error", "number": "0x500"}})
        report = replay(str(recording), proxy.url, speed=None, tolerance_ms=LOOSE_MS)
    assert report.members() == {("GET", "/api/v1/focuser/0/position")}, report.text()
    assert {d.what for d in report.differences} == {"error_number", "keys"}  # 0 -> 0x500, and no Value
    assert "#" in report.text() and "0x500" in report.text()


def test_timing_beyond_the_tolerance_is_a_difference(recording):
    with Emulator(seed=SEED) as target, Proxy(target.address) as proxy:
        proxy.faults.add({"match": {"device_type": "dome", "member": "shutterstatus"}, "action": {"kind": "latency", "ms": 1500}})
        report = replay(str(recording), proxy.url, speed=None, tolerance_ms=1000)
    timing = [d for d in report.differences if d.what == "timing"]
    assert {(d.method, d.path) for d in timing} >= {("GET", "/api/v1/dome/0/shutterstatus")}
    assert all(d.replayed >= 1.5 for d in timing if d.path.endswith("shutterstatus"))
    values = [d for d in report.differences if d.what != "timing"]
    assert not values, report.text()


def test_time_varying_values_are_compared_only_when_asked(recording):
    with Emulator(seed=SEED) as target:
        everything = replay(str(recording), target.url, speed=None, tolerance_ms=None, compare_all=True)
        ignoring_more = replay(str(recording), target.url, speed=None, tolerance_ms=None, ignore=["focuser/position", "switch/0/*"])
    assert ("GET", "/api/v1/telescope/0/siderealtime") in everything.members()
    assert ignoring_more.ok, ignoring_more.text()


def test_the_emulator_records_too(tmp_path):
    path = tmp_path / "emu.jsonl"
    with Emulator(seed=SEED, record=path) as emu:
        night(emu.address)
        requests.get(f"{emu.url}/api/v1/camera/0/imagearray", headers={"Accept": "application/imagebytes"}, timeout=10)
    exchanges = read_recording(path)
    assert exchanges[-1].path == "/api/v1/camera/0/imagearray"
    with Emulator(seed=SEED) as target:
        report = replay(str(path), target.url, speed=None, tolerance_ms=None)
    assert report.ok, report.text()


def test_the_replay_command_exits_1_on_differences(recording, tmp_path):
    command = [sys.executable, "-m", "proxy.cli", "replay", str(recording), "--fast", "--tolerance-ms", str(LOOSE_MS)]
    with Emulator(seed=SEED) as target:
        same = subprocess.run([*command, "--against", target.url], capture_output=True, text=True, timeout=60)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no differences" in same.stdout
    with Emulator(seed=SEED) as target, Proxy(target.address) as proxy:
        proxy.faults.add({"match": {"member": "ismoving"}, "action": {"kind": "ascom_error"}})
        changed = subprocess.run([*command, "--against", proxy.url], capture_output=True, text=True, timeout=60)
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "/api/v1/focuser/0/ismoving: error_number 0 -> 0x500" in changed.stdout


def test_a_broken_recording_is_named_with_its_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"time": 1, "method": "GET", "path": "/x", "status": 200}\n{"time": 2, "method": "GET"}\n')
    with pytest.raises(RecordingError, match=r"bad.jsonl:2: missing key 'path'"):
        read_recording(bad)
    bad.write_text("not json\n")
    out = subprocess.run([sys.executable, "-m", "proxy.cli", "replay", str(bad), "--against", "127.0.0.1:1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "bad.jsonl:1: not a JSON line" in out.stderr
