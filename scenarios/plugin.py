"""The pytest plugin: scenario files as test items, and fixtures for users' own tests.

Registered through the ``pytest11`` entry point, so once the package is installed

    pytest path/to/scenarios -n auto --junitxml=report.xml

collects every ``.toml`` file that holds a ``[[scenario]]`` table (other TOML files, such as
pyproject.toml, are left alone) and runs each scenario as one item; pytest-xdist spreads them
over workers, and every scenario gets its own emulator on a free port, so nothing collides.

Fixtures for users' tests:

* ``alpaca_emulator``: a served :class:`emulator.Emulator` with ``.faults``, ``.traffic``,
  ``.set_state``. Per test by default; ``@pytest.mark.alpaca_emulator(config=..., time_scale=...,
  seed=...)`` configures it for one test; the ini options ``alpaca_emulator_config`` (a TOML path),
  ``alpaca_emulator_time_scale`` and ``alpaca_emulator_scope = session`` (one emulator for the
  session, reset before each test) configure it for all.
* ``alpaca_device``: a factory ``alpaca_device("SafetyMonitor", 0, **kwargs)`` that starts an
  ``AlpacaDevice`` on that emulator and stops it after the test; ``alpaca_device.messages()``
  returns what reached its queue so far.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterator

import pytest

from scenarios.rig import DeviceRig, serve_emulator
from scenarios.runner import run_scenario
from scenarios.schema import Scenario, ScenarioError, load_file, looks_like_scenario_file

log = logging.getLogger(__name__)


# -- options -----------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("alpaca-scenarios", "ASCOM Alpaca rehearsal scenarios")
    group.addoption("--alpaca-json", metavar="FILE", default=None, help="write a JSON report of scenario verdicts to FILE")
    group.addoption(
        "--alpaca-no-scenarios", action="store_true", default=False, help="do not collect scenario .toml files"
    )
    group.addoption(
        "--alpaca-name", metavar="NAME", action="append", default=[],
        help="run only the scenario(s) named exactly NAME (repeatable); other items are deselected",
    )
    parser.addini("alpaca_emulator_config", "TOML config file for the alpaca_emulator fixture", default="")
    parser.addini("alpaca_emulator_time_scale", "time scale of the alpaca_emulator fixture", default="")
    parser.addini("alpaca_emulator_scope", "'function' (default) or 'session'", default="function")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "alpaca_emulator(config=None, time_scale=None, seed=None): configure the alpaca_emulator fixture"
    )
    path = config.getoption("alpaca_json", None)
    if path and not hasattr(config, "workerinput"):  # only the controller writes the report
        config.pluginmanager.register(JsonReport(path), "alpaca-json-report")


# -- collection --------------------------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if parent.config.getoption("alpaca_no_scenarios"):
        return None
    if file_path.suffix == ".toml" and looks_like_scenario_file(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--alpaca-name``: an exact name, unlike ``-k``, which also matches parts of names and file names."""
    names = set(config.getoption("alpaca_name") or ())
    if not names:
        return
    keep = [item for item in items if isinstance(item, ScenarioItem) and item.name in names]
    drop = [item for item in items if not (isinstance(item, ScenarioItem) and item.name in names)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class ScenarioFile(pytest.File):
    """A scenario file: one item per ``[[scenario]]``; a schema error is a collection error."""

    def collect(self) -> Iterator["ScenarioItem"]:
        scenarios = load_file(self.path)
        for sc in scenarios:
            yield ScenarioItem.from_parent(self, name=sc.name, scenario=sc)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class ScenarioFailed(Exception):
    """Raised by a failing scenario item; carries the verdict."""

    def __init__(self, verdict: Any) -> None:
        super().__init__(verdict.report())
        self.verdict = verdict


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.verdict: Any = None
        # pytest-timeout reads this marker: the scenario's own deadline plus room for teardown
        self.add_marker(pytest.mark.timeout(scenario.timeout_s + 30))
        self.user_properties.append(("seed", scenario.emulator.seed))
        self.user_properties.append(("description", scenario.description.strip()))

    def runtest(self) -> None:
        self.verdict = run_scenario(self.scenario, source=str(self.path))
        if not self.verdict.passed:
            raise ScenarioFailed(self.verdict)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        if isinstance(excinfo.value, ScenarioFailed):
            return excinfo.value.verdict.report()
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario: {self.name}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if isinstance(item, ScenarioItem) and call.when == "call" and item.verdict is not None:
        # a plain attribute of the report: pytest-xdist carries it from the worker to the controller
        report.alpaca_verdict = item.verdict.to_dict()


class JsonReport:
    """Collects verdicts on the controller (xdist workers send them with their reports) into a file."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.verdicts: list[dict[str, Any]] = []
        self.errors: list[dict[str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        verdict = getattr(report, "alpaca_verdict", None)
        if verdict is not None and report.when == "call":
            self.verdicts.append({"nodeid": report.nodeid, "outcome": report.outcome, **verdict})

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append({"nodeid": report.nodeid, "error": str(report.longrepr)})

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        verdicts = sorted(self.verdicts, key=lambda v: v["nodeid"])
        passed = sum(1 for v in verdicts if v["passed"])
        data = {
            "exit_status": int(exitstatus),
            "summary": {
                "scenarios": len(verdicts),
                "passed": passed,
                "failed": len(verdicts) - passed,
                "collection_errors": len(self.errors),
            },
            "collection_errors": self.errors,
            "scenarios": verdicts,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


# -- fixtures for users' tests (set up through scenarios.rig, as scenarios are) -------------------


def _emulator_from(config: pytest.Config, marker: pytest.Mark | None) -> Any:
    """A started emulator configured by the marker, else by the ini options."""
    kwargs = dict(marker.kwargs) if marker is not None else {}
    cfg = kwargs.pop("config", None)
    if marker is not None and marker.args:
        cfg = marker.args[0]
    if cfg is None:
        ini_cfg = config.getini("alpaca_emulator_config")
        if ini_cfg:
            cfg = Path(ini_cfg) if Path(ini_cfg).is_absolute() else Path(config.rootpath) / ini_cfg
    if "time_scale" not in kwargs:
        ini_scale = config.getini("alpaca_emulator_time_scale")
        if ini_scale:
            kwargs["time_scale"] = float(ini_scale)
    return serve_emulator(cfg, **kwargs)


@pytest.fixture(scope="session")
def _alpaca_session_emulator(pytestconfig: pytest.Config) -> Iterator[Any]:
    emu = _emulator_from(pytestconfig, None)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def alpaca_emulator(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A served emulator (faults, traffic, state at hand); see the module docstring for its scope."""
    marker = request.node.get_closest_marker("alpaca_emulator")
    if marker is None and request.config.getini("alpaca_emulator_scope") == "session":
        emu = request.getfixturevalue("_alpaca_session_emulator")
        emu.reset()
        emu.traffic.clear()
        yield emu
        return
    emu = _emulator_from(request.config, marker)
    try:
        yield emu
    finally:
        emu.stop()


class DeviceFactory:
    """Starts AlpacaDevices against the test's emulator; stops every one of them afterwards."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._rig: DeviceRig | None = None

    @property
    def queue(self) -> Any:
        """The queue every device of this test puts its messages on (None before the first device)."""
        return self._rig.queue if self._rig is not None else None

    def __call__(self, device_type: str, device_number: int = 0, *, name: str | None = None, emulator: Any = None,
                 address: str | None = None, connectable: bool = True, **kwargs: Any) -> Any:
        if address is None:
            emulator = emulator or self._request.getfixturevalue("alpaca_emulator")
            address = emulator.address
        if self._rig is None:
            self._rig = DeviceRig(name="alpaca_device")
        kwargs.setdefault("call_timeout", 10.0)
        return self._rig.start(address, device_type, device_number, name, connectable=connectable, **kwargs)

    def messages(self) -> list[Any]:
        """``(metadata, payload)`` pairs that reached the queue so far."""
        if self._rig is None:
            return []
        self._rig.drain.drain_now()
        return list(self._rig.drain.items)

    def close(self) -> None:
        if self._rig is not None:
            for problem in self._rig.close():
                log.warning("alpaca_device: %s", problem)


@pytest.fixture
def alpaca_device(request: pytest.FixtureRequest) -> Iterator[DeviceFactory]:
    """Factory: ``dev = alpaca_device("Camera", 0, retry={"tries": 2})``, started now, stopped after the test."""
    factory = DeviceFactory(request)
    try:
        yield factory
    finally:
        factory.close()
