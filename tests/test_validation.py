"""One formatter for every pydantic error: key paths as the user wrote them, readable problems."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from emulator.config import ConfigError, EmulatorConfig, config_from_dict
from emulator.faults import ACTION_KINDS
from emulator.sim.devices import DEVICE_CLASSES
from emulator.validation import describe_errors, format_loc, union_tags


def test_union_tags_finds_every_discriminated_union():
    assert union_tags(EmulatorConfig) == {"type": tuple(DEVICE_CLASSES), "kind": ACTION_KINDS}


def test_paths_leave_out_union_tags_and_name_each_problem():
    bad = {
        "emulator": {"time_scal": 1},
        "devices": [{"type": "telescop"}, {"number": 1}, {"type": "camera", "number": "x"}],
        "faults": [{"action": {"kind": "latency", "ms": -1}}, {"action": {"kind": "explode"}}, {"action": {}}],
    }
    with pytest.raises(ValidationError) as info:
        EmulatorConfig.model_validate(bad)
    errors = dict(describe_errors(info.value, union_tags(EmulatorConfig), nouns={"type": "device type"}))
    assert errors["emulator.time_scal"] == "unknown key"
    assert errors["devices[0].type"].startswith("unknown device type 'telescop'; valid device types: camera, ")
    assert errors["devices[1].type"] == "missing; valid device types: " + ", ".join(DEVICE_CLASSES)
    assert "devices[2].number" in errors  # not devices[2].camera.number
    assert errors["faults[0].action.ms"] == "Input should be greater than or equal to 0"
    assert errors["faults[1].action.kind"].startswith("unknown kind 'explode'; valid kinds: latency, ")
    assert errors["faults[2].action.kind"] == "missing; valid kinds: " + ", ".join(ACTION_KINDS)


def test_config_error_lists_every_problem_under_its_source():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"devices": [{"type": "focuser", "number": -1}], "extra": 1}, "night.toml")
    lines = str(info.value).splitlines()
    assert lines[0] == "night.toml: invalid configuration"
    assert "  devices[0].number: Input should be greater than or equal to 0" in lines
    assert "  extra: unknown key" in lines


def test_format_loc():
    assert format_loc(("steps", 1, "hang", "fault", "action", "latency", "ms"), {"hang", "latency"}) == "steps[1].fault.action.ms"
    assert format_loc(("x", "function-after[_check(), Model]", "y")) == "x.y"
    assert format_loc((), empty="(rule)") == "(rule)"
