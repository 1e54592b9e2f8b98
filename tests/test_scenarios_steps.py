"""The step registry: one class per step kind (schema, description, load-time checks, run), every
kind registered once and in the schema, unknown kinds refused with the file, scenario and key,
fault steps as the emulator's own rule model, and the emulator-side kinds really run."""

from __future__ import annotations

import os
import subprocess
import sys
import typing
from pathlib import Path
from typing import Literal

import pytest

from emulator.faults.rules import Match, RuleSpec, Trigger, parse_rule
from scenarios.runner import run_scenario
from scenarios.schema import ScenarioError, json_schema, load_file, load_text
from scenarios.steps.base import STEP_KINDS, Check, Step, step_kind
from scenarios.steps.emulator import FaultStep
from scenarios.steps.kinds import STEP_CLASSES

HEAD = """
[[scenario]]
name = "every-kind"
description = "one step of each kind, to load and describe (not to run)"
[[scenario.devices]]
name = "weather"
type = "SafetyMonitor"
[[scenario.devices]]
name = "cam"
type = "Camera"
"""

#: One valid step of every kind, as a scenario file has them.
EVERY_KIND = {
    "get": 'device = "weather"\nmember = "IsSafe"\nexpect = { value = true }',
    "call": 'device = "cam"\nmember = "StartExposure"\nargs = { Duration = 1.0, Light = true }\nlabel = "bg"\nbackground = true',
    "set": 'device = "cam"\nmember = "BinX"\nvalue = 1',
    "force_poll": 'device = "weather"\nmember = "IsSafe"',
    "await": 'call = "bg"',
    "start_poll": 'device = "weather"\nmember = "IsSafe"\ninterval_s = 0.5',
    "stop_poll": 'device = "weather"',
    "pause_polls": 'device = "weather"',
    "resume_polls": 'device = "weather"',
    "kill": 'device = "cam"',
    "hang": 'device = "weather"',
    "unhang": 'device = "weather"',
    "stop": 'device = "weather"',
    "fault": 'label = "f"\nmatch = { device_type = "camera", member = "imagearray", verb = "GET" }\naction = { kind = "latency", ms = 5 }',
    "remove_fault": 'fault = "f"',
    "clear_faults": "",
    "clear_traffic": "",
    "reset_emulator": "",
    "set_state": 'device_type = "safetymonitor"\nvalues = { IsSafe = false }',
    "wait": "seconds = 0.1",
    "expect_traffic": 'device_type = "camera"\nmember = "imagearray"\nsince = "f"\nmax = 3',
    "expect_poll": 'device = "weather"\nmember = "IsSafe"\nvalue = true',
    "expect_queue": 'device = "weather"\ntype = "log"',
    "expect_sqlite": 'table = "log"',
    "expect_state": 'device_type = "safetymonitor"\nvalues = { IsSafe = false }',
    "expect_process": 'device = "cam"\nalive = false',
    "expect_image": 'device = "cam"\nmeasure = "median"\nmin = 1000\nwithin_s = 5',
}


def _scenario(steps: dict[str, str]) -> str:
    return HEAD + "".join(f'\n[[scenario.steps]]\ndo = "{tag}"\n{body}\n' for tag, body in steps.items())


def test_every_registered_kind_loads_and_describes_itself() -> None:
    assert set(EVERY_KIND) == set(STEP_KINDS), "a step kind was added or removed: list it here"
    (sc,) = load_text(_scenario(EVERY_KIND))
    assert [s.do for s in sc.steps] == list(EVERY_KIND)
    for step in sc.steps:
        assert type(step) is STEP_KINDS[step.do]
        text = step.timeline_text()
        assert isinstance(text, str) and text.split()[0] in (step.do, "get", "set")  # 'call' reads as get M(args)
    assert sc.sqlite, "an expect_sqlite step turns the recorder on"
    checks = [s.do for s in sc.steps if isinstance(s, Check)]
    assert checks == [t for t in EVERY_KIND if t.startswith("expect_")]


def test_each_kind_declares_its_run_and_schema() -> None:
    for cls in STEP_CLASSES:
        assert issubclass(cls, Step), cls
        assert cls.__doc__, f"{cls.__name__} has no description (editors show it from the JSON Schema)"
        if not issubclass(cls, Check):
            assert cls.run is not Step.run, f"{cls.__name__} does not say what it does"
        else:
            assert cls.evaluate is not Check.evaluate, f"{cls.__name__} does not say what it checks"
    schema = json_schema()
    step_defs = schema["$defs"]["Scenario"]["properties"]["steps"]["items"]
    mapping = step_defs["discriminator"]["mapping"]
    assert set(mapping) == set(STEP_KINDS), "the published schema offers every step kind, and only those"


def _load_error(text: str, tmp_path: Path) -> str:
    path = tmp_path / "rehearsal.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_file(path)
    return str(info.value)


def test_unknown_step_kind_names_file_scenario_and_key(tmp_path: Path) -> None:
    msg = _load_error(_scenario({"get": EVERY_KIND["get"], "dance": 'device = "weather"'}), tmp_path)
    assert msg.startswith(f"{tmp_path / 'rehearsal.toml'}: invalid scenario file"), msg
    valid = ", ".join(STEP_KINDS)
    assert f"scenario 'every-kind' (scenario[0]): steps[1].do: unknown step 'dance'; valid steps: {valid}" in msg
    assert msg.count("\n") == 1, "one problem, one line: nothing about the other keys of an unknown step"


def test_missing_step_kind_names_the_key(tmp_path: Path) -> None:
    text = _scenario({"get": EVERY_KIND["get"]}) + '\n[[scenario.steps]]\ndevice = "weather"\n'
    msg = _load_error(text, tmp_path)
    assert f"steps[1].do: missing; valid steps: {', '.join(STEP_KINDS)}" in msg


def test_registration_errors() -> None:
    assert STEP_KINDS["get"].__name__ == "GetStep" and STEP_KINDS["call"] is STEP_KINDS["get"]

    class Twice(Step):
        do: Literal["get"]

    with pytest.raises(TypeError, match=r"step kind 'get' is registered twice \(GetStep and Twice\)"):
        step_kind(Twice)

    class NoTag(Step):
        do: str

    with pytest.raises(TypeError, match="NoTag.do must be a Literal"):
        step_kind(NoTag)
    assert "dance" not in STEP_KINDS and STEP_KINDS["get"].__name__ == "GetStep"


def test_load_time_checks_report_every_problem_with_its_key(tmp_path: Path) -> None:
    steps = {
        "get": 'device = "rain"\nmember = "IsSafe"\nexpect = { value = true }',
        "set": 'device = "cam"\nmember = "Binx"\nvalue = 1',  # wrong case: accepted and respelled
        "start_poll": 'device = "weather"\nmember = "IsSave"\ninterval_s = 1',
        "await": 'call = "nothing"',
        "expect_state": 'device_type = "focuser"\ndevice_number = 3\nvalues = { Position = 1 }',
    }
    msg = _load_error(_scenario(steps), tmp_path)
    lines = msg.splitlines()[1:]
    assert lines == [
        "  scenario 'every-kind' (scenario[0]): steps[0].device: unknown device 'rain'; devices: weather, cam",
        "  scenario 'every-kind' (scenario[0]): steps[2].member: SafetyMonitor has no member 'IsSave'; did you mean one of IsSafe?",
        "  scenario 'every-kind' (scenario[0]): steps[3].call: no earlier step is labelled 'nothing'",
        "  scenario 'every-kind' (scenario[0]): steps[4]: the emulator has no focuser number 3",
    ], msg


def test_fault_step_is_the_emulators_rule_model() -> None:
    assert FaultStep.model_fields["match"].annotation is Match
    assert FaultStep.model_fields["trigger"].annotation is Trigger
    body = (
        'label = "slow"\nmatch = { device_type = "camera", member = "ImageArray", verb = "post" }\n'
        'action = { kind = "latency", ms = 5 }\ntrigger = { every = 2, probability = 0.5, seed = 3 }'
    )
    (sc,) = load_text(_scenario({"fault": body, "get": EVERY_KIND["get"]}))
    step = sc.steps[0]
    assert isinstance(step.spec, RuleSpec)
    # what the emulator would make of the same rule, verbs beyond GET/PUT included
    assert step.spec == parse_rule({
        "name": "slow", "match": {"device_type": "camera", "member": "imagearray", "verb": "POST"},
        "action": {"kind": "latency", "ms": 5}, "trigger": {"every": 2, "probability": 0.5, "seed": 3},
    })


def test_fault_step_refused_where_the_emulator_refuses(tmp_path: Path) -> None:
    body = 'match = { device_type = "discovery" }\naction = { kind = "bad_json" }'
    msg = _load_error(_scenario({"fault": body, "get": EVERY_KIND["get"]}), tmp_path)
    assert "steps[0]: action 'bad_json' cannot act on discovery" in msg
    body = 'match = { verb = "FETCH" }\naction = { kind = "slow_body" }'
    msg = _load_error(_scenario({"fault": body, "get": EVERY_KIND["get"]}), tmp_path)
    assert "steps[0].match.verb: unknown verb 'FETCH'; valid: GET, PUT, POST" in msg
    assert "steps[0].action.bytes_per_s: required" in msg


MULTI_ACTION = """
[[scenario]]
name = "late-error"
description = "one fault step with several actions: the call waits, then fails with the injected error"
timeout_s = 30
[[scenario.devices]]
name = "weather"
type = "SafetyMonitor"
retry = { tries = 1 }
[[scenario.steps]]
do = "fault"
label = "late error"
match = { device_type = "safetymonitor", member = "issafe" }
actions = [ { kind = "latency", ms = 150 }, { kind = "ascom_error", number = 0x401 } ]
trigger = { count = 1 }
fired = 1
[[scenario.steps]]
do = "get"
device = "weather"
member = "IsSafe"
expect = { error = "RemoteDeviceError", cause = "ascom", error_number = 0x401 }
[[scenario.steps]]
do = "get"
device = "weather"
member = "IsSafe"
expect = { value = true }
[[scenario.steps]]
do = "expect_traffic"
device_type = "safetymonitor"
member = "issafe"
error_number = 0x401
count = 1
"""


def test_a_fault_step_with_several_actions_runs_as_the_emulators_rule() -> None:
    (sc,) = load_text(MULTI_ACTION)
    step = sc.steps[0]
    assert step.spec == parse_rule({
        "name": "late error", "match": {"device_type": "safetymonitor", "member": "issafe"}, "trigger": {"count": 1},
        "actions": [{"kind": "latency", "ms": 150}, {"kind": "ascom_error", "number": 0x401}],
    })
    assert step.describe().startswith("fault latency{") and " + ascom_error{" in step.describe()
    verdict = run_scenario(sc)
    assert verdict.passed, verdict.report()
    (get,) = [e for e in verdict.timeline if e.text.startswith("steps[1]")]
    assert get.end - get.start >= 0.15  # the latency acted before the error


def test_a_fault_step_with_actions_that_cannot_go_together_names_the_action(tmp_path: Path) -> None:
    body = 'actions = [ { kind = "bad_json" }, { kind = "missing_key", key = "Value" } ]'
    msg = _load_error(_scenario({"fault": body, "get": EVERY_KIND["get"]}), tmp_path)
    assert "steps[0]: actions[1].kind: missing_key acts at the response-content stage" in msg, msg
    body = 'action = { kind = "bad_json" }\nactions = [ { kind = "wrong_type" } ]'
    msg = _load_error(_scenario({"fault": body, "get": EVERY_KIND["get"]}), tmp_path)
    assert "steps[0]: actions: give either 'action' or 'actions', not both" in msg, msg
    msg = _load_error(_scenario({"fault": 'match = { member = "issafe" }', "get": EVERY_KIND["get"]}), tmp_path)
    assert "steps[0]: action: required" in msg, msg
    body = 'actions = [ { kind = "latency", ms = -1 } ]'
    msg = _load_error(_scenario({"fault": body, "get": EVERY_KIND["get"]}), tmp_path)
    assert "steps[0].actions[0].ms" in msg, msg


def test_published_schema_completes_fault_rules() -> None:
    defs = json_schema()["$defs"]
    fault = defs["FaultStep"]["properties"]
    assert set(fault["action"]["discriminator"]["mapping"]) >= {"latency", "hang", "ascom_error", "down", "discovery_silent"}
    assert "ms" in defs["Latency"]["properties"] and defs["Latency"]["properties"]["ms"]["description"]
    assert defs["Match"]["properties"]["verb"]["description"].startswith("HTTP verb")
    assert {"after", "count", "every", "probability", "seed", "start_s", "duration_s"} <= set(defs["Trigger"]["properties"])


EMULATOR_STEPS = """
[[scenario]]
name = "emulator-steps"
description = "remove_fault, clear_traffic, reset_emulator and clear_faults act on a live emulator"
timeout_s = 30
[[scenario.devices]]
name = "weather"
type = "SafetyMonitor"
retry = { tries = 1 }
[[scenario.steps]]
do = "fault"
label = "nope"
match = { device_type = "safetymonitor", member = "issafe" }
action = { kind = "ascom_error", number = 0x401 }
[[scenario.steps]]
do = "get"
device = "weather"
member = "IsSafe"
expect = { error = "RemoteDeviceError", cause = "ascom", error_number = 0x401 }
[[scenario.steps]]
do = "remove_fault"
fault = "nope"
[[scenario.steps]]
do = "get"
device = "weather"
member = "IsSafe"
expect = { value = true }
[[scenario.steps]]
do = "clear_traffic"
[[scenario.steps]]
do = "expect_traffic"
device_type = "safetymonitor"
member = "issafe"
count = 0
[[scenario.steps]]
do = "fault"
label = "never"
match = { device_type = "safetymonitor", member = "issafe" }
action = { kind = "http_status", status = 503 }
may_not_fire = true
[[scenario.steps]]
do = "clear_faults"
[[scenario.steps]]
do = "get"
device = "weather"
member = "IsSafe"
expect = { value = true }
[[scenario.steps]]
do = "set_state"
device_type = "safetymonitor"
values = { IsSafe = false }
[[scenario.steps]]
do = "reset_emulator"
[[scenario.steps]]
do = "expect_state"
device_type = "safetymonitor"
values = { IsSafe = true }
"""


def test_emulator_side_kinds_really_act() -> None:
    (sc,) = load_text(EMULATOR_STEPS)
    verdict = run_scenario(sc)
    assert verdict.passed, verdict.report()
    outcomes = {e.text.split()[1]: e.outcome for e in verdict.timeline if e.text.startswith("steps[")}
    assert outcomes["remove_fault"] == "ok" and outcomes["clear_faults"] == "ok" and outcomes["reset_emulator"] == "ok"


def test_a_fault_that_never_fires_fails_the_scenario() -> None:
    text = EMULATOR_STEPS.replace("may_not_fire = true\n", "")
    (sc,) = load_text(text)
    verdict = run_scenario(sc)
    assert not verdict.passed
    assert [(f.where, f.observed) for f in verdict.failures] == [("fault 'never' (http_status)", "never fired")]


def test_literal_tags_are_the_registry_keys() -> None:
    for tag, cls in STEP_KINDS.items():
        assert tag in typing.get_args(cls.model_fields["do"].annotation)


NEW_KIND_MODULE = '''
"""A step kind from one new module, as a later engineer would add one."""
from typing import Literal

from scenarios.steps.base import Check, step_kind


@step_kind
class AlwaysCheck(Check):
    """A check that holds: proves a new module is registered with no line elsewhere."""

    do: Literal["expect_nothing_new"]

    def describe(self) -> str:
        return "expect_nothing_new"

    def evaluate(self, run):
        return True, "nothing", "nothing"
'''

NEW_KIND_SCENARIO = """
[[scenario]]
name = "new-kind"
description = "a step kind defined in a module nobody imports by name"
[[scenario.steps]]
do = "expect_nothing_new"
"""


def test_a_new_step_kind_is_one_module(tmp_path: Path) -> None:
    """A module put into scenarios.steps is found, validated, published in the schema and run."""
    (tmp_path / "zz_new_kind.py").write_text(NEW_KIND_MODULE, encoding="utf-8")
    program = f"""
import scenarios.steps
scenarios.steps.__path__.append({str(tmp_path)!r})  # as if the file sat in scenarios/steps/
from scenarios.runner import run_scenario
from scenarios.schema import json_schema, load_text
(sc,) = load_text({NEW_KIND_SCENARIO!r})
mapping = json_schema()["$defs"]["Scenario"]["properties"]["steps"]["items"]["discriminator"]["mapping"]
assert "expect_nothing_new" in mapping, sorted(mapping)
verdict = run_scenario(sc)
assert verdict.passed, verdict.report()
print(verdict.timeline[-1].outcome)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok: nothing"


QUEUE_WAIT = """
[[scenario]]
name = "queue-wait"
description = "expect_queue and expect_sqlite wait for the next message, not for a clock"
[[scenario.devices]]
name = "weather"
type = "SafetyMonitor"
[[scenario.steps]]
do = "start_poll"
device = "weather"
member = "IsSafe"
interval_s = 0.3
[[scenario.steps]]
do = "expect_queue"
type = "query"
min = 4
within_s = 20
[[scenario.steps]]
do = "expect_sqlite"
min = 6
within_s = 20
"""


def test_queue_checks_look_again_only_when_a_message_came() -> None:
    (sc,) = load_text(QUEUE_WAIT)
    verdict = run_scenario(sc)
    assert verdict.passed, verdict.report()
    outcomes = [e.outcome for e in verdict.timeline if e.text.startswith(("steps[1]", "steps[2]"))]
    looks = [int(o.split(" looks")[0].rsplit(" ", 1)[-1]) if "looks" in o else 1 for o in outcomes]
    # waiting ~1 s each: a check that looked every 20 ms would have looked ~50 times; one woken by
    # messages looks once more per message at most, and the devices sent this many in all
    assert sum(looks) <= len(looks) + verdict.queue_total, (looks, verdict.queue_total, outcomes)
