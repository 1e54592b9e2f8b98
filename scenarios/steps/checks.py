"""Checks on what the run observed: traffic log, poll cache, queue, SQLite, emulator state, processes.

Each is retried until it holds for up to its ``within_s`` (see :class:`scenarios.steps.base.Check`).
"""

from __future__ import annotations

import math
import re
import statistics
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from emulator.faults.rules import Match
from emulator.validation import describe_errors
from scenarios.compare import short, values_equal
from scenarios.names import DEVICE_TYPES, check_url_member
from scenarios.rig import STOPPED, ZOMBIE
from scenarios.steps.base import Check, Counted, DeviceStep, Scope, StateStep, step_kind

if TYPE_CHECKING:
    from scenarios.timeline import Run


def _as_in_a_fault_match(key: str) -> Any:
    """A field validator: ``key`` checked and spelled as the emulator's fault rules match it."""

    def check(cls: Any, value: Any) -> Any:
        if value is None:
            return value
        try:
            return getattr(Match(**{key: value}), key)
        except ValidationError as exc:
            raise ValueError("; ".join(msg for _, msg in describe_errors(exc))) from None

    return field_validator(key)(check)


@step_kind
class TrafficCheck(Check, Counted):
    """How many requests matching the filters (as a fault rule matches them) reached the emulator in a window."""

    do: Literal["expect_traffic"]
    device_type: str | None = Field(None, description="Alpaca device type, or management, setup")
    device_number: int | None = None
    member: str | None = Field(None, description="Member as in the URL (case-insensitive)")
    verb: str | None = Field(None, description="HTTP verb (GET, PUT, ...)")
    since: str | None = Field(None, description="Window starts when this labelled step started (default: t=0)")
    until: str | None = Field(None, description="Window ends when this labelled step started (default: now)")
    error_number: int | None = Field(None, description="Only requests answered with this ErrorNumber")

    _type = _as_in_a_fault_match("device_type")
    _number = _as_in_a_fault_match("device_number")
    _verb = _as_in_a_fault_match("verb")

    @model_validator(mode="after")
    def _bounds_and_member(self) -> "TrafficCheck":
        if self.count is None and self.min is None and self.max is None:
            raise ValueError("give count, min or max")
        if self.member is not None:
            if self.device_type is None or self.device_type in DEVICE_TYPES:
                self.member = check_url_member(self.device_type, self.member)
            else:
                self.member = self.member.lower()
        return self

    def check_refs(self, scope: Scope) -> None:
        for key in ("since", "until"):
            ref = getattr(self, key)
            if ref is not None:
                scope.label(ref, key)

    def describe(self) -> str:
        return f"expect_traffic {self._what()}"

    def _what(self) -> str:
        number = self.device_number if self.device_number is not None else "*"
        target = f"{self.device_type or '*'}/{number}/{self.member or '*'}"
        return f"{self.verb} {target}" if self.verb else target

    def evaluate(self, run: "Run") -> tuple[bool, str, str]:
        lo = run.step_starts[self.since] - run.t0 if self.since else -math.inf
        hi = run.step_starts[self.until] - run.t0 if self.until else math.inf
        picked = [
            e
            for e in run.traffic.entries(device_type=self.device_type, device_number=self.device_number, member=self.member, verb=self.verb)
            if (self.error_number is None or e.error_number == self.error_number) and lo <= run.traffic.time_of(e) <= hi
        ]
        window = f" between {self.since or 'start'} and {self.until or 'now'}" if self.since or self.until else ""
        expected = f"{self.bounds_text()} request(s) {self._what()}{window}"
        observed = f"{len(picked)} request(s)"
        if picked:
            observed += ": " + "; ".join(run.traffic.line(e).strip() for e in picked[-5:])
        return self.holds(len(picked)), expected, observed


@step_kind
class PollCheck(DeviceStep, Check):
    """What ``poll_latest()`` shows for a member: presence, value, age, error, answer time."""

    do: Literal["expect_poll"]
    member: str | None = Field(None, description="absent: only 'none' and 'answer_ms' apply to the whole cache")
    none: bool | None = Field(None, description="true: poll_latest() is None (or has no entry for member)")
    value: Any = None
    tolerance: float = Field(1e-9, ge=0)
    max_age_s: float | None = Field(None, ge=0, description="The last good reading is at most this old")
    min_age_s: float | None = Field(None, ge=0, description="The last good reading is at least this old (stale)")
    error: bool | str | None = Field(None, description="true/false: an error is / is not recorded; text: regex")
    answer_ms: float | None = Field(None, gt=0, description="poll_latest() answers within this (median of 5)")

    @model_validator(mode="after")
    def _something(self) -> "PollCheck":
        if all(x is None for x in (self.none, self.value, self.max_age_s, self.min_age_s, self.error, self.answer_ms)):
            raise ValueError("give at least one of none, value, max_age_s, min_age_s, error, answer_ms")
        if self.member is None and any(x is not None for x in (self.value, self.max_age_s, self.min_age_s, self.error)):
            raise ValueError("value/age/error checks need 'member'")
        return self

    def describe(self) -> str:
        return f"expect_poll {self.device}.{self.member or '*'}"

    def evaluate(self, run: "Run") -> tuple[bool, str, str]:
        dev = run.device(self.device)
        samples = 5 if self.answer_ms is not None else 1
        times = []
        latest: Any = None
        for _ in range(samples):
            t0 = time.perf_counter()
            latest = dev.poll_latest()
            times.append((time.perf_counter() - t0) * 1000)
        expected: list[str] = []
        observed: list[str] = []
        problems: list[str] = []
        if self.answer_ms is not None:
            expected.append(f"poll_latest() answers within {self.answer_ms:g} ms (median of {samples})")
            observed.append("answered in " + ", ".join(f"{t:.2f}" for t in times) + " ms")
            if statistics.median(times) > self.answer_ms:
                problems.append("answer time")
        entry = None
        if self.member is not None and isinstance(latest, dict):
            entry = latest.get(self.member)
            if entry is None:
                entry = {str(k).lower(): v for k, v in latest.items()}.get(self.member.lower())
        present = entry is not None if self.member is not None else latest is not None
        if self.none is not None:
            target = f"poll_latest()[{self.member!r}]" if self.member else "poll_latest()"
            expected.append(f"{target} is {'None/absent' if self.none else 'present'}")
            if self.none == present:
                problems.append("presence")
        if self.member is not None and entry is None:
            observed.append(f"no entry for {self.member} (poll_latest() = {short(latest)})")
            if any(x is not None for x in (self.value, self.max_age_s, self.min_age_s, self.error)):
                expected.append(f"an entry for {self.member}")
                problems.append("absent")
        elif self.member is not None:
            self._judge_entry(entry, expected, observed, problems)
        if not observed:
            observed.append(f"poll_latest() = {short(latest)}")
        return not problems, ", ".join(expected), "; ".join(observed)

    def _judge_entry(self, entry: dict[str, Any], expected: list[str], observed: list[str], problems: list[str]) -> None:
        value, stamp, err = entry.get("value"), entry.get("datetime"), entry.get("error")
        age = (datetime.now(timezone.utc) - stamp).total_seconds() if isinstance(stamp, datetime) else None
        observed.append(f"value={short(value)} age={'%.3f s' % age if age is not None else 'n/a'} error={short(err)}")
        if self.value is not None:
            expected.append(f"value {short(self.value)}")
            if not values_equal(self.value, value, self.tolerance):
                problems.append("value")
        if self.max_age_s is not None:
            expected.append(f"age <= {self.max_age_s:g} s")
            if age is None or age > self.max_age_s:
                problems.append("max age")
        if self.min_age_s is not None:
            expected.append(f"age >= {self.min_age_s:g} s (stale)")
            if age is not None and age < self.min_age_s:
                problems.append("min age")
        if isinstance(self.error, bool):
            expected.append("an error recorded" if self.error else "no error recorded")
            if bool(err) != self.error:
                problems.append("error")
        elif self.error is not None:
            expected.append(f"error matching /{self.error}/")
            if not err or not re.search(self.error, str(err)):
                problems.append("error")


@step_kind
class QueueCheck(Check, Counted):
    """Messages that reached the AlpacaDevice queue (at least one, unless count/min/max say otherwise)."""

    do: Literal["expect_queue"]
    device: str | None = Field(None, description="Only messages of this device")
    type: Literal["log", "query"] | None = None
    level: Literal["info", "warning", "error", "debug"] | None = None
    pattern: str | None = Field(None, description="Regular expression searched in the text / SQL")

    follows_queue = True

    @model_validator(mode="after")
    def _bounds(self) -> "QueueCheck":
        self._at_least_one_by_default()
        return self

    def check_refs(self, scope: Scope) -> None:
        if self.device is not None:
            scope.device(self.device)

    def describe(self) -> str:
        return f"expect_queue {self._filters() or 'any message'}"

    def _filters(self) -> str:
        pairs = (("device", self.device), ("type", self.type), ("level", self.level), ("pattern", self.pattern))
        return ", ".join(f"{k}={v!r}" for k, v in pairs if v)

    def evaluate(self, run: "Run") -> tuple[bool, str, str]:
        msgs = run.messages.messages()
        picked = []
        for m in msgs:
            if not isinstance(m.payload, dict) or (self.device and m.device_name != self.device):
                continue
            if self.type and m.kind != self.type:
                continue
            level, text = m.level_and_text
            if self.level and (m.kind != "log" or level != self.level):
                continue
            if self.pattern and not re.search(self.pattern, text):
                continue
            picked.append(m)
        expected = f"{self.bounds_text()} queue message(s) with {self._filters() or 'any content'}"
        observed = f"{len(picked)} matching of {len(msgs)}"
        if picked:
            observed += ": " + " | ".join(m.line() for m in picked[-3:])
        elif msgs:
            observed += "; last: " + " | ".join(m.line() for m in msgs[-3:])
        return self.holds(len(picked)), expected, observed


@step_kind
class SqliteCheck(Check, Counted):
    """Rows the recorder wrote to SQLite (tables ``polling`` and ``log``); at least one by default."""

    do: Literal["expect_sqlite"]
    table: Literal["polling", "log"] = "polling"
    where: dict[str, Any] = Field(default_factory=dict, description="column = value, all must hold")

    needs_sqlite = True
    follows_queue = True

    @model_validator(mode="after")
    def _bounds(self) -> "SqliteCheck":
        self._at_least_one_by_default()
        for col in self.where:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", col):
                raise ValueError(f"'where' column {col!r} is not a plain column name")
        return self

    def describe(self) -> str:
        return f"expect_sqlite {self.table} {self.where or ''}".rstrip()

    def evaluate(self, run: "Run") -> tuple[bool, str, str]:
        if run.sqlite is None:
            return False, "a SQLite recorder", "no recorder (the scenario has no devices)"
        try:
            rows, total, latest = run.sqlite.select(self.table, self.where)
        except Exception as exc:  # sqlite3.Error: shown as observed, not a crash
            return False, f"rows in {self.table}", f"SQLite error: {exc}"
        where = " AND ".join(f"{k} = {v!r}" for k, v in self.where.items()) or "any"
        expected = f"{self.bounds_text()} row(s) in {self.table} where {where}"
        observed = f"{len(rows)} matching of {total} row(s)"
        if rows:
            observed += f": {short(rows[-1], 300)}"
        elif latest:
            observed += f"; latest rows: {short(latest, 400)}"
        return self.holds(len(rows)), expected, observed


@step_kind
class StateCheck(StateStep, Check):
    """Simulated state in the emulator (a subset of ``emu.get_state``)."""

    do: Literal["expect_state"]

    def evaluate(self, run: "Run") -> tuple[bool, str, str]:
        state = run.emu.get_state(self.device_type, self.device_number)
        ok = all(values_equal(v, state.get(k), 1e-9) for k, v in self.values.items())
        expected = f"{self.device_type}/{self.device_number} state {self.values}"
        observed = f"state {({k: state.get(k, '<absent>') for k in self.values})}"
        return ok, expected, observed


@step_kind
class ProcessCheck(DeviceStep, Check):
    """Whether the device's OS process is alive (a zombie counts as gone but is reported as such)."""

    do: Literal["expect_process"]
    alive: bool

    def describe(self) -> str:
        return f"expect_process {self.device} {'alive' if self.alive else 'gone'}"

    def evaluate(self, run: "Run") -> tuple[bool, str, str]:
        state = run.rig.state(self.device)
        alive = state is not None and state != ZOMBIE
        expected = f"process {run.rig.pid(self.device)} of {self.device} {'alive' if self.alive else 'gone'}"
        if state is None:
            observed = "gone"
        elif state == ZOMBIE:
            observed = "zombie (not reaped)"
        elif state == STOPPED:
            observed = "alive, stopped (SIGSTOP)"
        else:
            observed = f"alive ({state})"
        return alive == self.alive, expected, observed
