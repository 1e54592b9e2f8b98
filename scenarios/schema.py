"""Scenario files: TOML in, validated pydantic models out, errors that name file, scenario and key.

A scenario file holds one or more ``[[scenario]]`` tables. Each scenario declares the emulator
(devices, time scale, seed), the ``AlpacaDevice``s to start, and a timeline of ``steps``. A step
happens ``at`` a time (wall seconds from the start of the timeline) or ``after`` the previous step
(wall seconds after it ended; 0 when neither is given). Steps act (add a fault, set state, call a
device, kill its process...) or check (traffic, poll cache, queue, SQLite, emulator state), and
calls carry their own ``expect``. Everything is checked at load time, before any emulator starts:
unknown keys, wrong types, unknown devices, members and fault kinds, dangling labels, and a
scenario with nothing to check (it could only pass by accident).

All times in a scenario are wall-clock seconds; the emulator's ``time_scale`` only speeds up the
simulated devices (and whatever the fault layer defines on the emulator's clock).
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emulator.config import DeviceConfigAny, EmulatorConfig, default_config
from emulator.sim.devices import DEVICE_CLASSES, DEVICE_TYPE_NAMES

#: Fault action kinds the emulator knows (issue 3); a typo fails at load time.
FAULT_KINDS: tuple[str, ...] = (
    "latency",
    "hang",
    "drop",
    "reset",
    "truncate",
    "slow_body",
    "http_status",
    "bad_json",
    "bad_content_type",
    "missing_key",
    "wrong_type",
    "wrong_transaction_id",
    "ascom_error",
    "refuse",
    "down",
    "discovery_garbage",
    "discovery_silent",
)

#: Pseudo device types a fault can match besides the ten Alpaca ones.
NON_DEVICE_TARGETS = ("management", "setup", "discovery")

ERROR_CLASSES = ("AlpacaDeviceError", "AlpacaDeviceIPCError", "RemoteDeviceError")
IPC_REASONS = ("dead", "timeout", "closed", "stopped", "broken")
REMOTE_CAUSES = ("ascom", "http_status", "refused", "timeout", "dropped", "malformed", "other")


class ScenarioError(ValueError):
    """A scenario file problem; the message names the file, the scenario and the key path."""


# -- member names ------------------------------------------------------------------------------


@functools.cache
def alpaca_members(device_type: str) -> frozenset[str]:
    """CamelCase member names an AlpacaDevice of this type can get/set/call (from alpyca's class)."""
    import importlib

    module = importlib.import_module(f"alpaca.{device_type}")
    cls = getattr(module, DEVICE_TYPE_NAMES[device_type])
    return frozenset(name for name in dir(cls) if name[:1].isupper())


@functools.cache
def url_members(device_type: str | None) -> frozenset[str]:
    """Lowercase URL member names of a type (or of every type), as fault rules match them."""
    types = [device_type] if device_type else list(DEVICE_CLASSES)
    out: set[str] = set()
    for t in types:
        out.update(m.lower() for m in alpaca_members(t))
        out.update(name for _, name in DEVICE_CLASSES[t].members)
    return frozenset(out)


def _device_type(value: str) -> str:
    low = str(value).lower()
    if low not in DEVICE_CLASSES:
        raise ValueError(f"unknown device type {value!r}; valid types: {', '.join(sorted(DEVICE_CLASSES))}")
    return low


def _check_member(device_type: str, member: str) -> str:
    members = alpaca_members(device_type)
    if member in members:
        return member
    by_lower = {m.lower(): m for m in members}
    if member.lower() in by_lower:
        return by_lower[member.lower()]
    close = sorted(m for m in members if m.lower().startswith(member.lower()[:3]))[:8]
    hint = f"; did you mean one of {', '.join(close)}?" if close else ""
    raise ValueError(f"{DEVICE_TYPE_NAMES[device_type]} has no member {member!r}{hint}")


# -- the pieces of a scenario ------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrySpec(Strict):
    """The AlpacaDevice retry policy (astra.retry.RetryPolicy)."""

    tries: int = Field(3, ge=1, le=100, description="Attempts in all, the first included")
    backoff_s: float = Field(0.2, ge=0, le=60, description="Wait before the first retry")
    backoff_factor: float = Field(2.0, ge=1, le=10, description="Each further wait is this many times longer")
    max_backoff_s: float = Field(2.0, ge=0, le=600, description="Longest wait between tries")


class DeviceSpec(Strict):
    """An AlpacaDevice (one OS process) the scenario starts against its emulator."""

    name: str = Field(..., min_length=1, description="How steps refer to this device; also its device_name")
    type: str = Field(..., description="Device type, any case (e.g. 'SafetyMonitor' or 'safetymonitor')")
    number: int = Field(0, ge=0, description="Alpaca device number")
    connectable: bool = Field(True, description="Connect at start (Platform 7 Connect, else Connected=True)")
    call_timeout: float = Field(5.0, gt=0, le=600, description="Deadline of every front-side call (wall s)")
    http_timeout: float = Field(2.0, gt=0, le=600, description="HTTP timeout of the child's requests (wall s)")
    image_timeout: float = Field(
        60.0, gt=0, le=3600, description="Timeout of each ImageArray download (wall s; alpyca itself sets none)"
    )
    retry: RetrySpec | None = Field(None, description="Retry policy; absent = the library default")
    start_method: Literal["spawn", "fork", "forkserver"] = Field(
        "forkserver",
        description="multiprocessing start method. forkserver (default) or spawn: the emulator runs in the "
        "runner's process, and a forked child would inherit its listening socket, so a 'refuse' or 'down' "
        "outage could not close the port",
    )
    debug: bool = False

    _norm_type = field_validator("type")(lambda cls, v: _device_type(v))


class EmulatorSpec(Strict):
    """The emulator a scenario runs against (a fresh one per scenario, on a free port)."""

    time_scale: float = Field(1.0, gt=0, le=100000, description="Simulated seconds per wall second")
    seed: int = Field(0, description="Seed of the emulator (star fields, weather, seeded faults)")
    devices: list[DeviceConfigAny] | None = Field(  # type: ignore[valid-type]
        None,
        description="Emulator devices with their options (as in the emulator's TOML config); "
        "absent = one of each type as number 0, plus any the scenario's devices need",
    )


class FaultMatch(Strict):
    device_type: str | None = Field(None, description="Alpaca type (lowercase), or management/discovery")
    device_number: int | None = Field(None, ge=0)
    member: str | None = Field(None, description="Member as in the URL (case-insensitive)")
    verb: Literal["GET", "PUT", "get", "put"] | None = None
    path: str | None = Field(None, description="Match a raw path instead (fault-layer specific)")

    @field_validator("device_type")
    @classmethod
    def _known_type(cls, v: str | None) -> str | None:
        if v is None or v.lower() in NON_DEVICE_TARGETS:
            return v.lower() if v else v
        return _device_type(v)

    @model_validator(mode="after")
    def _known_member(self) -> "FaultMatch":
        if self.member is not None and self.device_type not in NON_DEVICE_TARGETS:
            members = url_members(self.device_type)
            if self.member.lower() not in members:
                where = self.device_type or "any device type"
                raise ValueError(f"member {self.member!r} is not a member of {where} (URL names, e.g. 'issafe')")
        if self.verb:
            self.verb = self.verb.upper()  # type: ignore[assignment]
        return self


class FaultTrigger(Strict):
    after: int | None = Field(None, ge=0, description="Let the first N matching requests through")
    count: int | None = Field(None, ge=1, description="Fire at most N times")
    every: int | None = Field(None, ge=1, description="Fire on every k-th match")
    probability: float | None = Field(None, ge=0, le=1)
    seed: int | None = None
    start_s: float | None = Field(None, ge=0, description="Window start, emulator clock, from the rule's creation")
    duration_s: float | None = Field(None, gt=0, description="Window length, emulator clock")


class FaultAction(BaseModel):
    """``kind`` plus the parameters of that kind (checked by the emulator's fault layer)."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(..., description="One of: " + ", ".join(FAULT_KINDS))

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {v!r}; valid kinds: {', '.join(FAULT_KINDS)}")
        return v


class StepBase(Strict):
    at: float | None = Field(None, ge=0, description="Start at this many wall seconds from the timeline start")
    after: float | None = Field(None, ge=0, description="Start this many wall seconds after the previous step ended")
    label: str | None = Field(None, description="Name for later steps to refer to (faults, background calls, windows)")
    note: str | None = Field(None, description="Free text shown in the timeline")

    @model_validator(mode="after")
    def _one_time(self) -> "StepBase":
        if self.at is not None and self.after is not None:
            raise ValueError("give 'at' or 'after', not both")
        return self


class CallExpect(Strict):
    """What a call must do. With no ``expect`` a call must simply succeed."""

    value: Any = Field(None, description="The value it must return (floats within 'tolerance')")
    tolerance: float = Field(1e-9, ge=0)
    type: Literal["bool", "int", "float", "str", "list", "dict", "none"] | None = Field(
        None, description="The type the value must have"
    )
    ok: bool | None = Field(None, description="true: must succeed; false: must raise (any error)")
    error: Literal["AlpacaDeviceError", "AlpacaDeviceIPCError", "RemoteDeviceError"] | None = Field(
        None, description="Error class it must raise (AlpacaDeviceError matches both kinds)"
    )
    reason: Literal["dead", "timeout", "closed", "stopped", "broken"] | None = Field(
        None, description="AlpacaDeviceIPCError.reason"
    )
    cause: Literal["ascom", "http_status", "refused", "timeout", "dropped", "malformed", "other"] | None = Field(
        None, description="RemoteDeviceError.cause"
    )
    error_number: int | str | None = Field(None, description="ASCOM error number, e.g. 0x401 or 1025")
    error_name: str | None = Field(None, description="e.g. InvalidValueException")
    http_status: int | None = None
    ambiguous: bool | None = Field(None, description="RemoteDeviceError.ambiguous")
    attempts: int | None = Field(None, ge=1, description="RemoteDeviceError.attempts")
    message: str | None = Field(None, description="Regular expression the error text must match")
    within_s: float | None = Field(None, gt=0, description="Must return or raise within this many wall seconds")
    min_s: float | None = Field(None, ge=0, description="Must take at least this long (e.g. a deadline honoured)")
    from_step: str | None = Field(None, description="Measure within_s/min_s from this labelled step's start")

    @field_validator("error_number")
    @classmethod
    def _number(cls, v: int | str | None) -> int | None:
        if v is None or isinstance(v, int):
            return v
        try:
            return int(v, 0)
        except ValueError:
            raise ValueError(f"error_number must be an integer like 0x401 or 1025, got {v!r}") from None

    @model_validator(mode="after")
    def _consistent(self) -> "CallExpect":
        wants_error = any(
            x is not None
            for x in (self.error, self.reason, self.cause, self.error_number, self.error_name, self.http_status,
                      self.ambiguous, self.attempts, self.message)
        )
        wants_value = self.value is not None or self.type is not None
        if wants_error and wants_value:
            raise ValueError("expect either a value or an error, not both")
        if wants_error and self.ok is True:
            raise ValueError("ok = true contradicts the error fields")
        if wants_value and self.ok is False:
            raise ValueError("ok = false contradicts 'value'")
        if self.reason and self.error == "RemoteDeviceError":
            raise ValueError("'reason' belongs to AlpacaDeviceIPCError")
        if self.cause and self.error == "AlpacaDeviceIPCError":
            raise ValueError("'cause' belongs to RemoteDeviceError")
        return self

    @property
    def expects_error(self) -> bool:
        return self.ok is False or any(
            x is not None
            for x in (self.error, self.reason, self.cause, self.error_number, self.error_name, self.http_status,
                      self.ambiguous, self.attempts, self.message)
        )


class DeviceStep(StepBase):
    device: str = Field(..., description="Name of one of the scenario's devices")


class CallStep(DeviceStep):
    expect: CallExpect | None = Field(None, description="What the call must do; absent = it must succeed")
    background: bool = Field(False, description="Run in a thread; an 'await' step or the end collects it")
    threads: int = Field(1, ge=1, le=64, description="Make the same call from this many threads at once")


class GetStep(CallStep):
    """``device.get(member, **args)``: read a property or call a method."""

    do: Literal["get", "call"]
    member: str
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments: a method call")


class SetStep(CallStep):
    """``device.set(member, value)``: write a property."""

    do: Literal["set"]
    member: str
    value: Any


class ForcePollStep(CallStep):
    do: Literal["force_poll"]
    member: str
    args: dict[str, Any] = Field(default_factory=dict)


class StartPollStep(DeviceStep):
    do: Literal["start_poll"]
    member: str
    interval_s: float = Field(..., gt=0, le=3600, description="Polling interval (wall s)")


class StopPollStep(DeviceStep):
    do: Literal["stop_poll"]
    member: str | None = Field(None, description="absent = stop every poll of this device")


class DeviceActionStep(DeviceStep):
    """Act on the device process: pause/resume polls, SIGKILL, SIGSTOP/SIGCONT."""

    do: Literal["pause_polls", "resume_polls", "kill", "hang", "unhang"]


class StopStep(DeviceStep):
    """``device.stop(timeout)``; the process must be gone afterwards."""

    do: Literal["stop"]
    timeout_s: float = Field(2.0, gt=0, le=120)
    within_s: float | None = Field(None, gt=0, description="stop() must return within this many seconds")


class FaultStep(StepBase):
    """Add a fault rule; ``fired`` checks at the end that it fired (at least once by default)."""

    do: Literal["fault"]
    name: str | None = None
    match: FaultMatch = Field(default_factory=FaultMatch)
    action: FaultAction
    trigger: FaultTrigger = Field(default_factory=FaultTrigger)
    fired: int | None = Field(None, ge=0, description="Exactly this many firings by the end (default: at least 1)")
    may_not_fire: bool = Field(False, description="Allow the rule never to fire")

    def rule(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "match": self.match.model_dump(exclude_none=True),
            "action": self.action.model_dump(exclude_none=True),
            "trigger": self.trigger.model_dump(exclude_none=True),
        }
        if self.name or self.label:
            out["name"] = self.name or self.label
        return out

    @model_validator(mode="after")
    def _emulator_accepts(self) -> "FaultStep":
        """The fault layer's own validation, so a bad parameter fails at load time, not mid-run."""
        try:
            from emulator.faults import FaultRuleError, parse_rule
        except ImportError:  # pragma: no cover - an emulator without fault injection
            return self
        try:
            parse_rule(self.rule())
        except FaultRuleError as exc:
            raise ValueError("; ".join(f"{f}: {m}" for f, m in exc.errors)) from None
        return self


class RemoveFaultStep(StepBase):
    do: Literal["remove_fault"]
    fault: str = Field(..., description="Label of an earlier 'fault' step")


class ClearFaultsStep(StepBase):
    do: Literal["clear_faults", "clear_traffic", "reset_emulator"]


class SetStateStep(StepBase):
    """Set simulated state in the emulator (e.g. IsSafe = false): the weather turns."""

    do: Literal["set_state"]
    device_type: str
    device_number: int = Field(0, ge=0)
    values: dict[str, Any]

    _norm_type = field_validator("device_type")(lambda cls, v: _device_type(v))


class WaitStep(StepBase):
    do: Literal["wait"]
    seconds: float = Field(..., ge=0, le=600)


class AwaitStep(StepBase):
    """Wait for background calls to finish (and check them)."""

    do: Literal["await"]
    call: str = Field(..., description="Label of a background call step")
    timeout_s: float = Field(30.0, gt=0, le=600)


class CheckBase(StepBase):
    within_s: float = Field(0.0, ge=0, le=600, description="Retry until it holds, for up to this long (wait until)")


class CountBounds(Strict):
    count: int | None = Field(None, ge=0, description="Exactly this many")
    min: int | None = Field(None, ge=0, description="At least this many")
    max: int | None = Field(None, ge=0, description="At most this many")


class TrafficCheck(CheckBase):
    """How many requests matching the filters reached the emulator in a window."""

    do: Literal["expect_traffic"]
    device_type: str | None = None
    device_number: int | None = None
    member: str | None = None
    verb: Literal["GET", "PUT", "get", "put"] | None = None
    since: str | None = Field(None, description="Window starts when this labelled step started (default: t=0)")
    until: str | None = Field(None, description="Window ends when this labelled step started (default: now)")
    count: int | None = Field(None, ge=0)
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)
    error_number: int | None = Field(None, description="Only requests answered with this ErrorNumber")

    _norm_type = field_validator("device_type")(lambda cls, v: v if v is None else _device_type(v))

    @model_validator(mode="after")
    def _bounds(self) -> "TrafficCheck":
        if self.count is None and self.min is None and self.max is None:
            raise ValueError("give count, min or max")
        if self.member:
            if self.member.lower() not in url_members(self.device_type):
                raise ValueError(f"member {self.member!r} is not a member of {self.device_type or 'any device type'}")
            self.member = self.member.lower()
        if self.verb:
            self.verb = self.verb.upper()  # type: ignore[assignment]
        return self


class PollCheck(CheckBase):
    """What ``poll_latest()`` shows for a member: presence, value, age, error, answer time."""

    do: Literal["expect_poll"]
    device: str
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
        fields = (self.none, self.value, self.max_age_s, self.min_age_s, self.error, self.answer_ms)
        if all(x is None for x in fields):
            raise ValueError("give at least one of none, value, max_age_s, min_age_s, error, answer_ms")
        if self.member is None and any(x is not None for x in (self.value, self.max_age_s, self.min_age_s, self.error)):
            raise ValueError("value/age/error checks need 'member'")
        return self


class QueueCheck(CheckBase):
    """Messages that reached the AlpacaDevice queue."""

    do: Literal["expect_queue"]
    device: str | None = Field(None, description="Only messages of this device")
    type: Literal["log", "query"] | None = None
    level: Literal["info", "warning", "error", "debug"] | None = None
    pattern: str | None = Field(None, description="Regular expression searched in the text / SQL")
    count: int | None = Field(None, ge=0)
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> "QueueCheck":
        if self.count is None and self.min is None and self.max is None:
            self.min = 1
        return self


class SqliteCheck(CheckBase):
    """Rows the recorder wrote to SQLite (tables ``polling`` and ``log``)."""

    do: Literal["expect_sqlite"]
    table: Literal["polling", "log"] = "polling"
    where: dict[str, Any] = Field(default_factory=dict, description="column = value, all must hold")
    count: int | None = Field(None, ge=0)
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> "SqliteCheck":
        if self.count is None and self.min is None and self.max is None:
            self.min = 1
        for col in self.where:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", col):
                raise ValueError(f"'where' column {col!r} is not a plain column name")
        return self


class StateCheck(CheckBase):
    """Simulated state in the emulator (a subset of ``emu.get_state``)."""

    do: Literal["expect_state"]
    device_type: str
    device_number: int = Field(0, ge=0)
    values: dict[str, Any]

    _norm_type = field_validator("device_type")(lambda cls, v: _device_type(v))


class ProcessCheck(CheckBase):
    do: Literal["expect_process"]
    device: str
    alive: bool


Step = Annotated[
    Union[
        GetStep, SetStep, ForcePollStep, StartPollStep, StopPollStep, DeviceActionStep, StopStep, FaultStep,
        RemoveFaultStep, ClearFaultsStep, SetStateStep, WaitStep, AwaitStep, TrafficCheck, PollCheck, QueueCheck,
        SqliteCheck, StateCheck, ProcessCheck,
    ],
    Field(discriminator="do"),
]

CHECK_STEPS = (TrafficCheck, PollCheck, QueueCheck, SqliteCheck, StateCheck, ProcessCheck)


class Scenario(Strict):
    """One rehearsal: an emulator, devices, a timeline of steps, and what must happen."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.\-]+$", description="Unique in its file; the pytest item name")
    description: str = Field(..., min_length=10, description="What it rehearses and why (shown by 'list')")
    timeout_s: float = Field(30.0, gt=0, le=3600, description="Wall deadline of the whole scenario")
    sqlite: bool = Field(False, description="Record the queue into SQLite (implied by expect_sqlite)")
    sqlite_mode: Literal["recorder", "sql_text"] = Field(
        "recorder",
        description="recorder: astra.recorder stores the structured values with bound parameters; "
        "sql_text: execute the SQL text of each polled value, as legacy consumers do (tests its escaping)",
    )
    emulator: EmulatorSpec = Field(default_factory=EmulatorSpec)
    devices: list[DeviceSpec] = Field(default_factory=list, description="AlpacaDevices to start")
    steps: list[Step] = Field(..., min_length=1, description="The timeline")  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _references(self) -> "Scenario":
        names = [d.name for d in self.devices]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"devices: name(s) used twice: {', '.join(sorted(dupes))}")
        by_name = {d.name: d for d in self.devices}
        emu_devices = {(d.type, d.number) for d in self.emulator_config().devices}
        for d in self.devices:
            if (d.type, d.number) not in emu_devices:
                raise ValueError(f"device {d.name!r}: the emulator has no {d.type} number {d.number}")
        labels: dict[str, Any] = {}
        all_labels = {s.label for s in self.steps if s.label}
        has_check = False
        for i, step in enumerate(self.steps):
            where = f"steps[{i}] ({step.do})"
            if isinstance(step, DeviceStep | PollCheck | ProcessCheck) or (isinstance(step, QueueCheck) and step.device):
                dev = by_name.get(step.device)  # type: ignore[union-attr]
                if dev is None:
                    raise ValueError(f"{where}: unknown device {step.device!r}; devices: {', '.join(names) or 'none'}")
                member = getattr(step, "member", None)
                if member is not None and not isinstance(step, QueueCheck):
                    try:
                        step.member = _check_member(dev.type, member)  # type: ignore[union-attr]
                    except ValueError as exc:
                        raise ValueError(f"{where}.member: {exc}") from None
            if isinstance(step, SetStateStep | StateCheck) and (step.device_type, step.device_number) not in emu_devices:
                raise ValueError(f"{where}: the emulator has no {step.device_type} number {step.device_number}")
            if isinstance(step, FaultStep) and step.match.device_type in DEVICE_CLASSES and step.match.device_number is not None:
                if (step.match.device_type, step.match.device_number) not in emu_devices:
                    raise ValueError(f"{where}.match: the emulator has no {step.match.device_type} number {step.match.device_number}")
            refs = {
                "fault": getattr(step, "fault", None) if isinstance(step, RemoveFaultStep) else None,
                "call": getattr(step, "call", None) if isinstance(step, AwaitStep) else None,
                "since": getattr(step, "since", None),
                "until": getattr(step, "until", None),
                "expect.from_step": step.expect.from_step if isinstance(step, CallStep) and step.expect else None,
            }
            for key, ref in refs.items():
                if ref is None:
                    continue
                if key == "expect.from_step" and isinstance(step, CallStep) and step.background:
                    # judged when collected, so it may measure from a later step (e.g. a kill)
                    if ref not in all_labels:
                        raise ValueError(f"{where}.{key}: no step is labelled {ref!r}")
                    continue
                target = labels.get(ref)
                if target is None:
                    raise ValueError(f"{where}.{key}: no earlier step is labelled {ref!r}")
                if key == "fault" and not isinstance(target, FaultStep):
                    raise ValueError(f"{where}.fault: step {ref!r} is not a fault step")
                if key == "call" and not (isinstance(target, CallStep) and target.background):
                    raise ValueError(f"{where}.call: step {ref!r} is not a background call")
            if isinstance(step, CallStep) and step.background and not step.label:
                raise ValueError(f"{where}: a background call needs a label")
            if step.label:
                if step.label in labels:
                    raise ValueError(f"{where}.label: {step.label!r} is used twice")
                labels[step.label] = step
            if isinstance(step, CHECK_STEPS) or (isinstance(step, CallStep) and step.expect is not None):
                has_check = True
        if not has_check:
            raise ValueError(
                "no expectation: add an 'expect' to a call or an expect_* step (a scenario that checks nothing "
                "can only pass by accident)"
            )
        if any(isinstance(s, SqliteCheck) for s in self.steps) and not self.sqlite:
            self.sqlite = True
        return self

    def emulator_config(self) -> EmulatorConfig:
        """The emulator config: the listed devices, or one of each plus any device the scenario needs."""
        spec = self.emulator
        if spec.devices is not None:
            cfg = EmulatorConfig(devices=list(spec.devices))
        else:
            cfg = default_config()
            have = {(d.type, d.number) for d in cfg.devices}
            for d in self.devices:
                if (d.type, d.number) not in have:
                    cfg.devices.append(DEVICE_CLASSES[d.type].config_class(number=d.number))
                    have.add((d.type, d.number))
        cfg.emulator.time_scale = spec.time_scale
        cfg.emulator.seed = spec.seed
        return cfg


class ScenarioFile(Strict):
    """A file of scenarios: one or more ``[[scenario]]`` tables."""

    scenario: list[Scenario] = Field(..., min_length=1)


# -- loading -----------------------------------------------------------------------------------


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    skip_next = False
    for i, part in enumerate(loc):
        if skip_next:
            skip_next = False
            continue
        if isinstance(part, int):
            out += f"[{part}]"
            # a discriminated union puts its tag after the index; it is not a key in the file
            nxt = loc[i + 1] if i + 1 < len(loc) else None
            if isinstance(nxt, str) and (nxt in DEVICE_CLASSES or _is_step_tag(nxt)):
                skip_next = True
            continue
        if part.startswith("function-after[") or part.startswith("function-before["):
            continue
        out += f".{part}" if out else str(part)
    return out or "(top level)"


@functools.cache
def _step_tags() -> frozenset[str]:
    tags: set[str] = set()
    for cls in Step.__origin__.__args__:  # type: ignore[attr-defined]
        tags.update(cls.model_fields["do"].annotation.__args__)
    return frozenset(tags)


def _is_step_tag(name: str) -> bool:
    return name in _step_tags()


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        tag = repr(str(ctx.get("tag")).strip("'"))
        if ctx.get("discriminator") == "'do'":
            return f"unknown step {tag}; valid steps: {', '.join(sorted(_step_tags()))}"
        return f"unknown device type {tag}; valid types: {', '.join(sorted(DEVICE_CLASSES))}"
    if kind == "union_tag_not_found":
        return f"missing {err.get('ctx', {}).get('discriminator', 'tag')}"
    msg = err["msg"]
    return msg.removeprefix("Value error, ")


def _scenario_label(raw: Any, index: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"scenario {name!r} (scenario[{index}])" if name else f"scenario[{index}]"


def load_data(data: dict[str, Any], source: str = "<scenario>") -> list[Scenario]:
    """Validate parsed TOML; ScenarioError names the source, the scenario and the key path."""
    raw = data.get("scenario") if isinstance(data, dict) else None
    extra = [k for k in data if k != "scenario"] if isinstance(data, dict) else []
    if not isinstance(raw, list) or not raw:
        raise ScenarioError(f"{source}: no scenarios: a scenario file holds one or more [[scenario]] tables")
    problems: list[str] = [f"  {k}: unknown top-level key (everything goes under [[scenario]])" for k in extra]
    scenarios: list[Scenario] = []
    for i, item in enumerate(raw):
        try:
            scenarios.append(Scenario.model_validate(item))
        except ValidationError as exc:
            label = _scenario_label(item, i)
            for err in exc.errors():
                loc = tuple(err["loc"])
                where = f"{_format_loc(loc)}: " if loc else ""
                problems.append(f"  {label}: {where}{_message(err)}")
    seen: set[str] = set()
    for i, sc in enumerate(scenarios):
        if sc.name in seen:
            problems.append(f"  scenario {sc.name!r}: name: used by two scenarios in this file")
        seen.add(sc.name)
    if problems:
        raise ScenarioError(f"{source}: invalid scenario file\n" + "\n".join(problems))
    return scenarios


def load_text(text: str, source: str = "<scenario>") -> list[Scenario]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    return load_data(data, source)


def load_file(path: str | Path) -> list[Scenario]:
    """Read and validate a scenario file; ScenarioError names the file, the scenario and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    return load_text(text, str(path))


_SCENARIO_TABLE = re.compile(r"^\s*\[\[\s*scenario\s*\]\]", re.MULTILINE)


def looks_like_scenario_file(path: str | Path) -> bool:
    """A ``.toml`` file with a ``[[scenario]]`` table (so pyproject.toml and configs are left alone)."""
    path = Path(path)
    if path.suffix != ".toml":
        return False
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return bool(_SCENARIO_TABLE.search(fh.read(1_000_000)))
    except OSError:
        return False


def library_dir() -> Path:
    """The bundled rehearsal library."""
    return Path(__file__).with_name("library")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file, for editors (e.g. Taplo / Even Better TOML)."""
    schema = ScenarioFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "alpaca-rehearsal scenario file"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
