"""Plan a run (which devices, which checks), run the checks, collect the results.

    URL ─> ServerContext ─> discover devices (management API) or --devices
               │                 └─> DeviceContext per device (InterfaceVersion -> expected members)
               ├─ server families (management)          ─┐
               └─ device families, in registry order    ─┴─> run_check ─> Result ─> Report ─> reporters
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import conform.behaviour  # noqa: F401 - the modules below register their check families on import
import conform.management  # noqa: F401
import conform.protocol  # noqa: F401
from conform.checks import Check, CheckFailed, CheckSkipped, Outcome, Result, device_families, outcome_of_failure, server_families
from conform.context import DeviceContext, Options, ServerContext
from conform.management import discover
from conform.members import DEVICE_TYPES

log = logging.getLogger(__name__)

PROTOCOL_FAMILIES = ("management", "path", "verb", "envelope", "schema", "transaction", "casing", "ids", "params")
BEHAVIOUR_FAMILIES = ("behaviour",)


class PlanError(ValueError):
    """The run cannot start: a bad --devices list, or no device list from the server."""


def parse_devices(text: str) -> list[tuple[str, int]]:
    """``camera:0,telescope:1`` -> [("camera", 0), ("telescope", 1)]; PlanError names a bad entry."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kind, sep, number = item.partition(":")
        kind = kind.lower()
        if kind not in DEVICE_TYPES:
            raise PlanError(f"--devices: unknown device type {kind!r} in {item!r}; valid: {', '.join(DEVICE_TYPES)}")
        if sep and not number.isdigit():
            raise PlanError(f"--devices: device number in {item!r} must be a non-negative integer")
        out.append((kind, int(number) if sep else 0))
    if not out:
        raise PlanError("--devices is empty")
    return out


@dataclass
class Plan:
    server: ServerContext
    server_checks: list[Check]
    devices: list[tuple[DeviceContext, list[Check]]]

    @property
    def checks(self) -> list[Check]:
        return self.server_checks + [c for _, checks in self.devices for c in checks]

    def context_of(self, check: Check) -> ServerContext | DeviceContext:
        for ctx, _ in self.devices:
            if ctx.label == check.device:
                return ctx
        return self.server

    def close(self) -> None:
        for ctx, _ in self.devices:
            try:
                if ctx.state.get("connected"):
                    ctx.disconnect()
            except CheckFailed as exc:
                log.warning("could not disconnect %s: %s", ctx.label, exc.message)
            ctx.close()
        self.server.close()


def make_plan(
    url: str,
    options: Options | None = None,
    devices: list[tuple[str, int]] | None = None,
    families: tuple[str, ...] | None = None,
) -> Plan:
    server = ServerContext(url, options)
    wanted = set(families or PROTOCOL_FAMILIES + BEHAVIOUR_FAMILIES)
    server_checks = [c for name, build in server_families().items() if name in wanted for c in build(server)]
    if devices is None:
        try:
            devices = discover(server)
        except CheckFailed as exc:
            server.close()
            raise PlanError(f"{exc.message}: sent {exc.sent}, got {exc.got}") from None
    planned = []
    for kind, number in devices:
        ctx = DeviceContext(server, kind, number)
        checks = [c for name, build in device_families().items() if name in wanted for c in build(ctx)]
        planned.append((ctx, checks))
    plan = Plan(server, server_checks, planned)
    counts = Counter(c.id for c in plan.checks)
    dupes = sorted(i for i, n in counts.items() if n > 1)
    if dupes:  # a checker bug: ids name pytest items and JUnit cases
        server.close()
        raise AssertionError(f"duplicate check ids: {dupes[:5]}")
    return plan


def run_check(check: Check, options: Options) -> Result:
    if check.motion and options.no_motion:
        return Result(check, Outcome.SKIPPED, "--no-motion: this check moves or actuates hardware")
    start = time.perf_counter()
    try:
        check.run()
    except CheckSkipped as exc:
        return Result(check, Outcome.SKIPPED, str(exc), duration_s=time.perf_counter() - start)
    except CheckFailed as exc:
        return Result(check, outcome_of_failure(check.level), exc.message, exc.sent, exc.got, time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - a checker bug or an unforeseen answer: report it, go on
        log.exception("check %s raised", check.id)
        return Result(check, outcome_of_failure(check.level), f"the check itself raised {type(exc).__name__}: {exc}", duration_s=time.perf_counter() - start)
    return Result(check, Outcome.PASSED, duration_s=time.perf_counter() - start)


@dataclass
class Report:
    url: str
    options: Options
    results: list[Result]
    timings: dict[tuple[str, str], list[float]]
    devices: list[dict] = field(default_factory=list)
    duration_s: float = 0.0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def ok(self) -> bool:
        return self.count(Outcome.FAILED) == 0


def run(
    url: str,
    options: Options | None = None,
    devices: list[tuple[str, int]] | None = None,
    families: tuple[str, ...] | None = None,
    progress: Callable[[int, int, Check], None] | None = None,
) -> Report:
    """Run every planned check against the server at ``url``; ``progress(done, total, check)`` is
    told before each check starts (the CLI's status line on a terminal)."""
    options = options or Options()
    start = time.perf_counter()
    plan = make_plan(url, options, devices, families)
    try:
        checks = plan.checks
        results = []
        for i, check in enumerate(checks):
            if progress is not None:
                progress(i, len(checks), check)
            results.append(run_check(check, options))
    finally:
        plan.close()
    info = [{"device": ctx.label, "interface_version": ctx.interface_version} for ctx, _ in plan.devices]
    return Report(url, options, results, dict(plan.server.transport.timings), info, time.perf_counter() - start)
