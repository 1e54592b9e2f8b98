"""The pytest plugin: scenario files collected and run as items (also under xdist, with JUnit and
JSON reports), a wrong expectation shown as expected vs observed with the traffic excerpt, and the
fixtures usable in a user's own test."""

from __future__ import annotations

import json
import os
import shlex
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scenarios.runner import run_scenario
from scenarios.schema import load_text

ROOT = Path(__file__).parents[1]

PASSING = """
[[scenario]]
name = "weather-read"
description = "IsSafe reads true through an AlpacaDevice process"
[[scenario.devices]]
name = "weather"
type = "SafetyMonitor"
[[scenario.steps]]
do = "get"
device = "weather"
member = "IsSafe"
expect = { value = true, within_s = 5 }
[[scenario.steps]]
do = "expect_traffic"
device_type = "safetymonitor"
member = "issafe"
count = 1
"""

WRONG = """
[[scenario]]
name = "deliberately-wrong"
description = "expects IsSafe false while the sky is clear, so it must fail"
[scenario.emulator]
seed = 7
[[scenario.devices]]
name = "weather"
type = "SafetyMonitor"
[[scenario.steps]]
do = "get"
device = "weather"
member = "IsSafe"
expect = { value = false }
"""

STATE_ONLY = """
[[scenario]]
name = "state-only"
description = "no device process: the emulator's own state, set and checked"
[[scenario.steps]]
do = "set_state"
device_type = "safetymonitor"
values = { IsSafe = false }
[[scenario.steps]]
do = "expect_state"
device_type = "safetymonitor"
values = { IsSafe = false }
"""


def _pytest(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(cwd), *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, env=env,
    )


def test_wrong_expectation_shows_expected_observed_and_traffic() -> None:
    (sc,) = load_text(WRONG, "wrong.toml")
    verdict = run_scenario(sc, "wrong.toml")
    assert not verdict.passed
    report = verdict.report()
    assert "expected vs observed" in report
    assert "expected: value False" in report
    assert "observed: returned True" in report
    assert "safetymonitor/0/issafe" in report  # the traffic excerpt
    assert "queue messages" in report and "seed: 7" in report
    assert report.endswith("re-run only this scenario (same seed, 7, from the file):\n  alpaca-scenarios run wrong.toml -k deliberately-wrong")
    assert "timeline" in report and "get weather.IsSafe" in report


def test_passing_scenario_verdict() -> None:
    (sc,) = load_text(PASSING)
    verdict = run_scenario(sc)
    assert verdict.passed, verdict.report()
    assert verdict.traffic_total > 0 and verdict.queue_total > 0


def test_plugin_collects_and_runs_files_under_xdist(tmp_path: Path) -> None:
    (tmp_path / "rehearsals.toml").write_text(PASSING + STATE_ONLY, encoding="utf-8")
    (tmp_path / "wrong.toml").write_text(WRONG, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")  # not a scenario file
    result = _pytest([".", "-n", "2", "--junitxml", "junit.xml", "--alpaca-json", "out.json"], tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "2 passed" in out and "1 failed" in out, out
    assert "expected: value False" in out and "safetymonitor/0/issafe" in out, out
    assert "alpaca-scenarios run wrong.toml -k deliberately-wrong" in out, out

    suite = ET.parse(tmp_path / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {"weather-read", "state-only", "deliberately-wrong"}
    assert cases["deliberately-wrong"].find("failure") is not None

    data = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert data["summary"] == {"scenarios": 3, "passed": 2, "failed": 1, "collection_errors": 0}
    wrong = next(s for s in data["scenarios"] if s["name"] == "deliberately-wrong")
    assert wrong["failures"][0]["expected"] == "value False" and wrong["seed"] == 7


def test_schema_error_is_a_collection_error(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(PASSING.replace('member = "IsSafe"', 'member = "IsSave"'), encoding="utf-8")
    result = _pytest(["."], tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "bad.toml" in out and "scenario 'weather-read'" in out and "IsSave" in out, out


def test_cli_runs_paths_and_exits_nonzero_on_failure(tmp_path: Path) -> None:
    (tmp_path / "wrong.toml").write_text(WRONG, encoding="utf-8")
    (tmp_path / "ok.toml").write_text(STATE_ONLY, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    cmd = [sys.executable, "-m", "scenarios.cli", "run"]
    ok = subprocess.run([*cmd, "ok.toml", "--json", "ok.json"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads((tmp_path / "ok.json").read_text())["summary"]["passed"] == 1
    # what a person reads: a line per scenario, a table per file, a totals line; no pytest header
    lines = ok.stdout.splitlines()
    assert lines[0] == "running 1 scenario from 1 file", ok.stdout
    assert re.fullmatch(r"PASS  state-only  \[ok\.toml\]  \d+\.\d\d s", lines[1]), ok.stdout
    assert re.fullmatch(r"ok\.toml\s+1\s+0\s+0\s+0\s+\d+\.\d s", lines[-2]), ok.stdout
    assert re.fullmatch(r"1 scenario: 1 passed in \d+\.\d s", lines[-1]), ok.stdout
    assert "configfile" not in ok.stdout and "rootdir" not in ok.stdout and "=====" not in ok.stdout
    bad = subprocess.run([*cmd, str(tmp_path)], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    out = bad.stdout
    assert "PASS  state-only  [ok.toml]" in out and "FAIL  " in out, out
    table = out[out.index("file "):].splitlines()
    assert table[0].split() == ["file", "passed", "failed", "errors", "skipped", "time"], out
    assert [row.split()[:5] for row in table[2:-1]] == [["ok.toml", "1", "0", "0", "0"], ["wrong.toml", "0", "1", "0", "0"]], out
    assert re.fullmatch(r"2 scenarios: 1 passed, 1 failed in \d+\.\d s", table[-1]), out
    # the failure's own report (expected vs observed, the re-run command) comes before the table
    assert out.index("expected vs observed") < out.index("file ") and "alpaca-scenarios run wrong.toml -k" in out, out
    # -v is pytest's detail, as before
    verbose = subprocess.run([*cmd, "ok.toml", "-v"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert verbose.returncode == 0 and "PASSED" in verbose.stdout, verbose.stdout + verbose.stderr


def test_cli_names_a_file_that_does_not_load(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text('[[scenario]]\nname = "x"\n', encoding="utf-8")
    result = _cli(["run", "broken.toml"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "ERROR broken.toml: could not load it" in result.stdout and "description" in result.stdout, result.stdout
    assert result.stdout.splitlines()[-1] == "0 scenarios: 0 passed, 1 error in " + result.stdout.splitlines()[-1].split(" in ")[-1]


USER_TEST = '''
import pytest

@pytest.mark.alpaca_emulator(time_scale=50)
def test_my_code_sees_the_weather_turn(alpaca_emulator, alpaca_device):
    weather = alpaca_device("SafetyMonitor", 0, retry={"tries": 1})
    assert weather.get("IsSafe") is True
    alpaca_emulator.set_state("safetymonitor", IsSafe=False)
    assert weather.get("IsSafe") is False
    with alpaca_emulator.faults.add({"match": {"member": "issafe"}, "action": {"kind": "ascom_error", "number": 0x407}}):
        with pytest.raises(Exception, match="0x407|NotConnected"):
            weather.get("IsSafe")
    assert alpaca_emulator.traffic.count(member="issafe") == 3
    assert any(payload["type"] == "log" for _, payload in alpaca_device.messages())
'''


def test_fixtures_in_a_users_test(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TEST, encoding="utf-8")
    result = _pytest(["test_user.py", "-q"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_session_scoped_emulator_is_reset_between_tests(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nalpaca_emulator_scope = session\n", encoding="utf-8")
    (tmp_path / "test_session.py").write_text(
        "def test_a(alpaca_emulator):\n"
        "    alpaca_emulator.set_state('safetymonitor', IsSafe=False)\n"
        "    test_a.port = alpaca_emulator.port\n"
        "def test_b(alpaca_emulator):\n"
        "    assert alpaca_emulator.get_state('safetymonitor')['IsSafe'] is True\n"
        "    assert alpaca_emulator.port == test_a.port\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_session.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _failing_state_check(name: str) -> str:
    """A scenario without device processes (quick) that fails: the weather turns, it expects clear sky."""
    return f"""
[[scenario]]
name = "{name}"
description = "expects IsSafe true after the weather turned, so it must fail"
[scenario.emulator]
seed = 11
[[scenario.steps]]
do = "set_state"
device_type = "safetymonitor"
values = {{ IsSafe = false }}
[[scenario.steps]]
do = "expect_state"
device_type = "safetymonitor"
values = {{ IsSafe = true }}
"""


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "scenarios.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def test_failure_prints_the_command_that_reruns_only_it(tmp_path: Path) -> None:
    # "weather" is part of the other scenario's name and of the file's: pytest's -k would pick all three
    (tmp_path / "weather.toml").write_text(
        _failing_state_check("weather") + _failing_state_check("weather-2") + STATE_ONLY.replace("state-only", "weather-ok"),
        encoding="utf-8",
    )
    first = _cli(["run", str(tmp_path / "weather.toml"), "--json", "all.json"], tmp_path)
    out = first.stdout + first.stderr
    assert first.returncode == 1, out
    assert "re-run only this scenario (same seed, 11, from the file):\n  alpaca-scenarios run weather.toml -k weather\n" in out, out
    assert "  alpaca-scenarios run weather.toml -k weather-2\n" in out, out
    assert json.loads((tmp_path / "all.json").read_text())["summary"]["scenarios"] == 3
    passed = next(s for s in json.loads((tmp_path / "all.json").read_text())["scenarios"] if s["name"] == "weather-ok")
    assert passed["passed"] and "re-run" not in passed

    for name in ("weather", "weather-2"):
        command = shlex.split(f"alpaca-scenarios run weather.toml -k {name}")
        assert command[:2] == ["alpaca-scenarios", "run"]
        again = _cli([*command[1:], "--json", "one.json"], tmp_path)
        assert again.returncode == 1, again.stdout + again.stderr
        ran = json.loads((tmp_path / "one.json").read_text())["scenarios"]
        assert [s["name"] for s in ran] == [name], ran
        assert ran[0]["rerun"] == f"alpaca-scenarios run weather.toml -k {name}"

    # anything that is not a scenario's name is still a pytest -k expression
    expr = _cli(["run", "weather.toml", "-k", "ok", "--json", "expr.json"], tmp_path)
    assert expr.returncode == 0, expr.stdout + expr.stderr
    assert [s["name"] for s in json.loads((tmp_path / "expr.json").read_text())["scenarios"]] == ["weather-ok"]


def test_rerun_command_quotes_and_shortens_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scenarios.verdict import rerun_command

    monkeypatch.chdir(tmp_path)
    assert rerun_command(str(tmp_path / "sub dir" / "a.toml"), "x.1") == "alpaca-scenarios run 'sub dir/a.toml' -k x.1"
    assert rerun_command("/elsewhere/b.toml", "y") == "alpaca-scenarios run /elsewhere/b.toml -k y"


def test_cli_shows_a_status_line_on_a_terminal_only(tmp_path: Path) -> None:
    """On a terminal, rich's status line says what runs and how many are done; piped, nothing of it."""
    from support import run_on_a_terminal

    (tmp_path / "ok.toml").write_text(STATE_ONLY, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | {"TERM": "xterm", "COLUMNS": "120"}
    code, seen = run_on_a_terminal([sys.executable, "-m", "scenarios.cli", "run", "ok.toml"], cwd=tmp_path, env=env)
    assert code == 0, seen
    assert "done; running:" in seen, seen
    assert "1 scenario: 1 passed" in seen, seen
    piped = _cli(["run", "ok.toml"], tmp_path)
    assert "done; running" not in piped.stdout + piped.stderr
