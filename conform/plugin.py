"""The pytest face: ``pytest --alpaca-conform URL`` adds one test item per check.

Items are planned at collection (the server must be up then), run in plan order, and share one
connection per device for the session. A failed check fails its item with the console line
(device, member, what was sent, what came back); a warning-level finding passes with a
:class:`ConformWarning`; a check that does not apply is skipped.

Each device's items must run in one process, in order (a check may disconnect the device
another would read). Under pytest-xdist that is ``--dist loadscope``: the items of a device
share the scope ``alpaca-conform/<device>``, so devices spread over workers and each stays in
one; other distribution modes are refused.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from conform.checks import Check, Outcome
from conform.context import Options
from conform.reporters import describe
from conform.runner import PlanError, make_plan, parse_devices, run, run_check


class ConformWarning(UserWarning):
    """An information-level finding of alpaca-conform."""


class ConformFailure(Exception):
    pass


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("alpaca-conform", "Alpaca conformance checks (alpaca-conform)")
    group.addoption("--alpaca-conform", metavar="URL", default=None, help="check the Alpaca server at URL: one test item per check")
    group.addoption("--alpaca-conform-devices", metavar="LIST", default=None, help="e.g. camera:0,telescope:0 (default: every configured device)")
    group.addoption("--alpaca-conform-strict", action="store_true", help="ConformU's strict mode")
    group.addoption("--alpaca-conform-no-motion", action="store_true", help="never move or actuate hardware")


def _options(config: pytest.Config) -> Options:
    return Options(strict=config.getoption("alpaca_conform_strict"), no_motion=config.getoption("alpaca_conform_no_motion"))


#: pytest-xdist modes that keep a scope (here: a device) in one worker.
_SCOPED_DIST = ("no", "loadscope", "loadfile")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("alpaca_conform") and getattr(config.option, "numprocesses", None):
        dist = config.getoption("dist", "no")
        if dist not in _SCOPED_DIST:
            raise pytest.UsageError(
                f"--alpaca-conform with pytest-xdist needs --dist loadscope (got --dist {dist}): each device's checks must run in one process, in order"
            )


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    url = config.getoption("alpaca_conform")
    if not url:
        return
    url = url if "://" in url else f"http://{url}"
    devices_opt = config.getoption("alpaca_conform_devices")
    try:
        devices = parse_devices(devices_opt) if devices_opt else None
        plan = make_plan(url, _options(config), devices)
    except PlanError as exc:
        raise pytest.UsageError(f"--alpaca-conform: {exc}") from None
    config._alpaca_conform_plan = plan  # type: ignore[attr-defined]
    scopes: dict[str, ConformCollector] = {}
    for check in plan.checks:
        scope = f"alpaca-conform/{check.device or 'server'}"
        if scope not in scopes:
            scopes[scope] = ConformCollector.from_parent(session, name=scope, nodeid=scope)
        items.append(ConformItem.from_parent(scopes[scope], name=check.id, check=check))


def pytest_unconfigure(config: pytest.Config) -> None:
    plan = getattr(config, "_alpaca_conform_plan", None)
    if plan is not None:
        plan.close()


class ConformCollector(pytest.Collector):
    def collect(self) -> list[pytest.Item]:  # pragma: no cover - items are made in modifyitems
        return []


class ConformItem(pytest.Item):
    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def runtest(self) -> None:
        result = run_check(self.check, _options(self.config))
        if result.outcome is Outcome.FAILED:
            raise ConformFailure(describe(result))
        if result.outcome is Outcome.SKIPPED:
            pytest.skip(result.message)
        if result.outcome is Outcome.WARNING:
            warnings.warn(ConformWarning(describe(result)), stacklevel=1)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ConformFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[str, int | None, str]:
        return ("alpaca-conform", None, self.check.id)


@pytest.fixture
def alpaca_conform():
    """``alpaca_conform(url, strict=..., no_motion=..., devices=[...])`` -> Report."""

    def check(url: str, *, devices: list[tuple[str, int]] | None = None, **options: Any):
        return run(url, Options(**options), devices)

    return check
