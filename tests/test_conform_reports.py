"""alpaca-conform's faces: the console lines and exit code, JSON with timings, valid JUnit with
one test case per check, and the pytest plugin's one item per check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conform import Options, Outcome, run
from conform.cli import main
from conform.reporters import junit_tree, timings
from emulator import Emulator

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def emu():
    with Emulator(time_scale=100) as e:
        yield e


@pytest.fixture(autouse=True)
def clean(emu):
    emu.reset()
    yield
    emu.reset()


def test_cli_exit_0_and_summary_when_nothing_failed(emu, capsys):
    assert main(["--url", emu.url, "--devices", "safetymonitor:0", "--behaviour"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert re.match(r"\d+ passed, 0 failed, 0 warnings \(1 skipped", out[-1]), out[-1]


def test_cli_names_device_member_sent_and_got_and_exits_1(emu, capsys):
    emu.faults.add({"match": {"device_type": "safetymonitor", "member": "issafe"}, "action": {"kind": "wrong_type"}})
    assert main(["--url", emu.url, "--devices", "safetymonitor:0", "--protocol"]) == 1
    lines = capsys.readouterr().out.splitlines()
    schema = [line for line in lines if line.startswith("FAIL [error] safetymonitor:0 issafe (schema")]
    assert schema, lines
    assert "sent: GET /api/v1/safetymonitor/0/issafe?Client" in schema[0], schema[0]
    assert re.search(r'got: HTTP 200 application/json \{"Value":"(true|false)"', schema[0]), schema[0]
    assert " 0 warnings" in lines[-1] and " failed" in lines[-1]


def test_cli_bad_devices_is_a_usage_error(emu, capsys):
    assert main(["--url", emu.url, "--devices", "telescope:x"]) == 2
    assert "--devices" in capsys.readouterr().err


def test_json_and_junit_files(emu, tmp_path):
    js, xml = tmp_path / "r.json", tmp_path / "r.xml"
    code = main(["--url", emu.url, "--devices", "focuser:0,telescope:0", "--json", str(js), "--junit", str(xml)])
    doc = json.loads(js.read_text())
    assert code == (1 if doc["summary"]["failed"] else 0)
    checks = doc["checks"]
    root = ET.parse(xml).getroot()
    cases = root.findall("./testsuite/testcase")
    assert root.tag == "testsuites" and len(cases) == len(checks) == int(root.get("tests"))
    assert len({(c.get("classname"), c.get("name")) for c in cases}) == len(cases), "test case names must be unique"
    assert sum(1 for c in cases if c.find("failure") is not None) == doc["summary"]["failed"] == int(root.get("failures"))
    for suite in root.findall("testsuite"):
        assert int(suite.get("tests")) == len(suite.findall("testcase"))
    timing = {(t["device"], t["member"]): t for t in doc["timings"]}
    slewing = timing[("telescope:0", "slewing")]
    assert slewing["status_member"] and slewing["target_s"] == 0.1 and slewing["calls"] >= 2
    assert not timing[("telescope:0", "description")]["status_member"] and timing[("telescope:0", "description")]["target_s"] == 1.0
    assert all(t["slow"] == (t["median_s"] > t["target_s"]) for t in doc["timings"])


def test_latency_is_flagged_slow(fast_emu):
    # its own emulator: a latency rule starts a timer thread that lives as long as the emulator
    fast_emu.faults.add({"match": {"device_type": "focuser", "member": "ismoving"}, "action": {"kind": "latency", "ms": 150}})
    report = run(fast_emu.url, Options(), [("focuser", 0)], ("envelope", "transaction"))
    rows = {t["member"]: t for t in timings(report)}
    assert rows["ismoving"]["slow"] and not rows["maxstep"]["slow"]


def test_junit_marks_skips_and_warnings(emu):
    emu.faults.add({"match": {"device_type": "focuser", "member": "name"}, "action": {"kind": "http_status", "status": 200, "body": '{"Value":"","ClientTransactionID":0,"ServerTransactionID":1,"ErrorNumber":0,"ErrorMessage":""}'}})
    report = run(emu.url, Options(no_motion=True), [("focuser", 0)], ("behaviour",))
    assert report.count(Outcome.WARNING) == 1 and report.count(Outcome.SKIPPED) >= 2
    root = junit_tree(report).getroot()
    assert len(root.findall(".//skipped")) == report.count(Outcome.SKIPPED)
    assert any("warning [information]" in (e.text or "") for e in root.iter("system-out"))


@pytest.mark.timeout(120)
def test_pytest_plugin_one_item_per_check(emu, pytester):
    n = len(run(emu.url, Options(), [("safetymonitor", 0)]).results)
    emu.faults.add({"match": {"device_type": "safetymonitor", "member": "issafe", "verb": "GET"}, "action": {"kind": "wrong_type"}})
    result = pytester.runpytest_subprocess("--alpaca-conform", emu.url, "--alpaca-conform-devices", "safetymonitor:0", "-p", "no:cacheprovider", "-q")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) + outcomes.get("skipped", 0) == n
    assert outcomes["failed"] >= 1
    result.stdout.fnmatch_lines(["*schema/safetymonitor:0/issafe/value_is_bool*"])


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "conform.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--no-motion" in out.stdout and "--strict" in out.stdout


def test_pytest_plugin_refuses_xdist_modes_that_split_a_device(emu, pytester):
    result = pytester.runpytest_subprocess("--alpaca-conform", emu.url, "-n", "2", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*needs --dist loadscope*"])


def test_a_terminal_sees_which_check_runs_and_a_pipe_does_not(emu):
    """The CLI's rich status line names the running check on a terminal; piped output has none."""
    import os
    import subprocess
    import sys

    from support import run_on_a_terminal

    args = [sys.executable, "-m", "conform.cli", "--url", emu.url, "--devices", "switch:0", "--protocol"]
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "160"}
    code, seen = run_on_a_terminal(args, env=env)
    assert code == 0 and "checks done; now " in seen and " passed, 0 failed" in seen, seen
    piped = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    assert piped.returncode == 0 and "checks done" not in piped.stdout + piped.stderr, piped.stdout
