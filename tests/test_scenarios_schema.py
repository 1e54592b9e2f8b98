"""Scenario files: every mistake names the file, the scenario and the key; the library and the
template load; the committed JSON Schema is the one the models produce."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from scenarios.cli import main as cli_main
from scenarios.schema import ScenarioError, json_schema, json_schema_text, library_dir, load_file, load_text
from scenarios.steps.base import STEP_KINDS

GOOD = """
[[scenario]]
name = "ok"
description = "a valid scenario used as a base"
[[scenario.devices]]
name = "weather"
type = "SafetyMonitor"
[[scenario.steps]]
do = "get"
device = "weather"
member = "IsSafe"
expect = { value = true }
"""


def _error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_file(path)
    message = str(info.value)
    assert str(path) in message, message
    return message


def test_valid_scenario_loads_and_normalises_names() -> None:
    (sc,) = load_text(GOOD)
    assert sc.devices[0].type == "safetymonitor"
    assert sc.steps[0].member == "IsSafe"


def test_unknown_key_names_scenario_and_path(tmp_path: Path) -> None:
    msg = _error(GOOD + 'colour = "red"\n', tmp_path)
    assert "scenario 'ok'" in msg and "steps[0].colour: unknown key" in msg


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    msg = _error(GOOD.replace('type = "SafetyMonitor"', 'type = "SafetyMonitor"\ncall_timeout = "soon"'), tmp_path)
    assert "devices[0].call_timeout" in msg


def test_unknown_device_type(tmp_path: Path) -> None:
    msg = _error(GOOD.replace('type = "SafetyMonitor"', 'type = "Weathervane"'), tmp_path)
    assert "devices[0].type" in msg and "unknown device type 'Weathervane'" in msg


def test_unknown_member(tmp_path: Path) -> None:
    msg = _error(GOOD.replace('member = "IsSafe"', 'member = "IsSave"'), tmp_path)
    assert "steps[0].member: SafetyMonitor has no member 'IsSave'; did you mean one of IsSafe?" in msg


def test_unknown_device_reference(tmp_path: Path) -> None:
    msg = _error(GOOD.replace('device = "weather"', 'device = "rain"'), tmp_path)
    assert "unknown device 'rain'" in msg


def test_unknown_fault_kind_and_member(tmp_path: Path) -> None:
    fault = """
[[scenario.steps]]
do = "fault"
match = { device_type = "camera", member = "imagearay" }
action = { kind = "hnag" }
"""
    msg = _error(GOOD + fault, tmp_path)
    assert "steps[1].action.kind: unknown kind 'hnag'; valid kinds: latency, hang," in msg
    assert "steps[1].match: member 'imagearay' is not a member of camera" in msg


def test_bad_fault_parameter_caught_at_load(tmp_path: Path) -> None:
    fault = """
[[scenario.steps]]
do = "fault"
match = { device_type = "camera", member = "imagearray" }
action = { kind = "latency" }
"""
    msg = _error(GOOD + fault, tmp_path)
    assert "steps[1]" in msg and "action.ms" in msg


def test_unknown_step(tmp_path: Path) -> None:
    msg = _error(GOOD + '[[scenario.steps]]\ndo = "dance"\n', tmp_path)
    assert "scenario 'ok' (scenario[0]): steps[1].do: unknown step 'dance'; valid steps: " + ", ".join(STEP_KINDS) in msg


def test_a_key_spelled_like_a_tag_stays_in_the_path(tmp_path: Path) -> None:
    """``call`` (await), ``fault`` (remove_fault) and ``expect.http_status`` are keys, though steps
    and fault action kinds have those names as tags, which pydantic puts into its error paths."""
    steps = """
[[scenario.steps]]
do = "get"
device = "weather"
member = "IsSafe"
expect = { http_status = "x" }
[[scenario.steps]]
do = "await"
call = 3
[[scenario.steps]]
do = "remove_fault"
fault = 3
[[scenario.steps]]
do = "fault"
action = { kind = "http_status", status = "x" }
"""
    msg = _error(GOOD + steps, tmp_path)
    assert "steps[1].expect.http_status: Input should be a valid integer" in msg
    assert "steps[2].call: Input should be a valid string" in msg
    assert "steps[3].fault: Input should be a valid string" in msg
    assert "steps[4].action.status: Input should be a valid integer" in msg


def test_dangling_label(tmp_path: Path) -> None:
    msg = _error(GOOD + '[[scenario.steps]]\ndo = "remove_fault"\nfault = "nope"\n', tmp_path)
    assert "no earlier step is labelled 'nope'" in msg


def test_scenario_without_expectation_is_refused(tmp_path: Path) -> None:
    msg = _error(GOOD.replace("expect = { value = true }", ""), tmp_path)
    assert "no expectation" in msg


def test_bad_toml_names_file(tmp_path: Path) -> None:
    msg = _error("[[scenario]\nname = 1", tmp_path)
    assert "not valid TOML" in msg


def test_second_scenario_named_by_index(tmp_path: Path) -> None:
    msg = _error(GOOD + GOOD.replace('name = "ok"', 'name = "two"').replace("IsSafe", "Nope"), tmp_path)
    assert "scenario 'two' (scenario[1])" in msg
    assert "scenario 'ok'" not in msg


def test_bundled_library_loads_with_descriptions() -> None:
    names = []
    for path in sorted(library_dir().glob("*.toml")):
        for sc in load_file(path):
            assert len(sc.description.split()) >= 8, sc.name
            names.append(sc.name)
    assert len(names) >= 25
    assert len(set(names)) == len(names)


def test_library_validates_against_published_schema() -> None:
    import tomllib

    schema = json_schema()
    for path in sorted(library_dir().glob("*.toml")):
        jsonschema.validate(tomllib.loads(path.read_text(encoding="utf-8")), schema)


def test_committed_schema_is_current() -> None:
    committed = (Path(__file__).parents[1] / "scenarios" / "scenario.schema.json").read_text(encoding="utf-8")
    assert json.loads(committed) == json.loads(json_schema_text()), "run: alpaca-scenarios schema -o scenarios/scenario.schema.json"


def test_cli_new_writes_a_valid_annotated_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_main(["new", "my-rehearsal"]) == 0
    text = (tmp_path / "my-rehearsal.toml").read_text(encoding="utf-8")
    assert "#" in text and 'name = "my-rehearsal"' in text
    (sc,) = load_file(tmp_path / "my-rehearsal.toml")
    assert sc.devices and sc.steps
    assert cli_main(["new", "my-rehearsal"]) == 1  # never overwrites silently


def test_cli_list_and_check(capsys) -> None:
    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "night-weather-turns" in out and "retry-dropped-startexposure-not-resent" in out
    assert cli_main(["check"]) == 0


def test_cli_check_reports_errors(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('member = "IsSafe"', 'member = "IsSave"'), encoding="utf-8")
    assert cli_main(["check", str(bad)]) == 1
    assert "IsSave" in capsys.readouterr().err
