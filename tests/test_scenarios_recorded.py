"""``alpaca-scenarios from-recording``: a recorded session becomes a scenario that validates and runs.

The recording is real (an alpyca session through the proxy, recorded); the scenario made from it
is loaded by the scenario schema and run by the real runner against a fresh emulator.
"""

from __future__ import annotations

import tomllib

import pytest

from emulator import Emulator
from emulator.serve.recording import read_recording
from proxy import Proxy
from scenarios.cli import main as scenarios_main
from scenarios.recorded import scenario_from_recording, toml_value
from scenarios.runner import run_scenario
from scenarios.schema import load_file

from test_replay import night


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "night.jsonl"
    with Emulator(seed=3) as upstream, Proxy(upstream.address, record=path) as proxy:
        night(proxy.address)
    return path


@pytest.mark.timeout(120)
def test_the_scenario_made_from_a_recording_validates_and_runs(recording, tmp_path, capsys):
    out = tmp_path / "night.toml"
    assert scenarios_main(["from-recording", str(recording), "-o", str(out), "--seed", "3"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert '# action = { kind = "ascom_error"' in text  # the fault section to edit
    [scenario] = load_file(out)
    assert {d.name for d in scenario.devices} == {"focuser0", "filterwheel0", "dome0", "safetymonitor0", "switch0", "telescope0"}
    kinds = [(s.do, s.member) for s in scenario.steps]
    assert ("set", "Connected") not in kinds  # the AlpacaDevice connects by itself
    assert ("call", "SetSwitchValue") in kinds and ("get", "GetSwitchValue") in kinds
    move = next(s for s in scenario.steps if getattr(s, "member", None) == "Move")
    assert move.expect.error_number is not None  # the recorded ASCOM error is expected
    position = next(s for s in scenario.steps if getattr(s, "member", None) == "Position")
    assert position.expect.value is not None
    sidereal = next(s for s in scenario.steps if getattr(s, "member", None) == "SiderealTime")
    assert sidereal.expect.value is None and sidereal.expect.ok is True  # moves with time: not pinned
    verdict = run_scenario(scenario, str(out))
    assert verdict.passed, verdict.report()


def test_a_fault_uncommented_makes_the_rehearsal_fail_where_it_acts(recording, tmp_path):
    text = scenario_from_recording(read_recording(recording), "night-under-a-fault", "night.jsonl", seed=3)
    lines = text.splitlines()
    start = lines.index("# [[scenario.steps]]")
    for i in range(start, start + 6):
        lines[i] = lines[i][2:].split("   #")[0]
    lines[start + 3] = 'match = { device_type = "focuser", member = "position" }'
    path = tmp_path / "faulted.toml"
    path.write_text("\n".join(lines) + "\n")
    [scenario] = load_file(path)
    verdict = run_scenario(scenario, str(path))
    assert not verdict.passed
    failed = verdict.report()
    assert "Position" in failed


def test_toml_values_round_trip():
    doc = {"a": [1, 2.5, "x\"y", True, None is None], "b": {"Id": 0, "odd key": "é"}}
    assert tomllib.loads(f"v = {toml_value(doc)}")["v"] == doc


def test_a_recording_without_device_calls_is_refused(tmp_path, capsys):
    path = tmp_path / "mgmt.jsonl"
    path.write_text('{"time": 1, "method": "GET", "path": "/management/apiversions", "status": 200, "body": "{}"}\n')
    assert scenarios_main(["from-recording", str(path), "-o", str(tmp_path / "x.toml")]) == 2
    assert "no device calls" in capsys.readouterr().err
