"""What a step kind is, and the registry of them.

A step kind is one pydantic model class: its fields are the step's schema (and the JSON Schema
editors complete), and its methods say the rest, in one place::

    describe()        the step as one line of the timeline
    check_refs(scope) load-time checks against the rest of the scenario (devices, members, labels)
    run(run, where)   what it does; failures go to run.verdict; returns the timeline outcome
    expects()         whether it checks something (a scenario that checks nothing is refused)

Checks (:class:`Check`) implement ``evaluate(run) -> (ok, expected, observed)`` instead of
``run``; a check with ``within_s`` looks again until it holds ("wait until").
:func:`step_kind` registers a class under every ``do`` tag of its ``Literal``; the scenario
schema is the tagged union of the registered classes.
"""

from __future__ import annotations

import time
import typing
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scenarios.names import check_member, device_type

if TYPE_CHECKING:  # annotations only: the timeline module never imports the steps
    from scenarios.timeline import Run

#: do-tag -> step class, in registration order.
STEP_KINDS: dict[str, type["Step"]] = {}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def step_kind(cls: type["Step"]) -> type["Step"]:
    """Class decorator: register a step kind under each tag of its ``do: Literal[...]``."""
    annotation = cls.model_fields["do"].annotation
    tags = typing.get_args(annotation)
    if typing.get_origin(annotation) is not typing.Literal or not tags:
        raise TypeError(f"{cls.__name__}.do must be a Literal of its tags")
    for tag in tags:
        if tag in STEP_KINDS:
            raise TypeError(f"step kind {tag!r} is registered twice ({STEP_KINDS[tag].__name__} and {cls.__name__})")
    for tag in tags:
        STEP_KINDS[tag] = cls
    return cls


class Scope:
    """What a step's load-time check can see: the scenario's devices, the emulator's, the labels so far.

    Problems are collected as ``(key path, message)`` so that every one is reported at once.
    """

    def __init__(self, devices: dict[str, Any], emulator_devices: set[tuple[str, int]], labels: set[str]) -> None:
        self.devices = devices
        self.emulator_devices = emulator_devices
        self.all_labels = labels
        self.earlier: dict[str, Step] = {}
        self.problems: list[tuple[str, str]] = []
        self.at = ""

    def problem(self, key: str | None, message: str) -> None:
        self.problems.append((f"{self.at}.{key}" if key else self.at, message))

    def device(self, name: str, key: str = "device") -> Any:
        """The scenario's device of that name, or None (and a problem)."""
        spec = self.devices.get(name)
        if spec is None:
            self.problem(key, f"unknown device {name!r}; devices: {', '.join(self.devices) or 'none'}")
        return spec

    def emulator_device(self, device_type: str, number: int, key: str | None = None) -> None:
        if (device_type, number) not in self.emulator_devices:
            self.problem(key, f"the emulator has no {device_type} number {number}")

    def label(self, ref: str, key: str, *, earlier: bool = True) -> "Step | None":
        """The step labelled ``ref`` (an earlier one unless ``earlier`` is False), or None (and a problem)."""
        if not earlier:
            if ref not in self.all_labels:
                self.problem(key, f"no step is labelled {ref!r}")
            return self.earlier.get(ref)
        target = self.earlier.get(ref)
        if target is None:
            self.problem(key, f"no earlier step is labelled {ref!r}")
        return target


class Step(Strict):
    """Fields every step has: when it starts, its label, a note."""

    at: float | None = Field(None, ge=0, description="Start at this many wall seconds from the timeline start")
    after: float | None = Field(None, ge=0, description="Start this many wall seconds after the previous step ended")
    label: str | None = Field(None, description="Name for later steps to refer to (faults, background calls, windows)")
    note: str | None = Field(None, description="Free text shown in the timeline")

    #: the scenario records its queue into SQLite when a step of this kind is in it
    needs_sqlite: ClassVar[bool] = False

    @model_validator(mode="after")
    def _one_time(self) -> "Step":
        if self.at is not None and self.after is not None:
            raise ValueError("give 'at' or 'after', not both")
        return self

    def describe(self) -> str:
        return self.do  # type: ignore[attr-defined]

    def timeline_text(self) -> str:
        return self.describe() + (f" [{self.label}]" if self.label else "")

    def check_refs(self, scope: Scope) -> None:
        """Load-time checks that need the rest of the scenario; report with ``scope.problem``."""

    def expects(self) -> bool:
        return False

    def run(self, run: "Run", where: str) -> str | None:
        raise NotImplementedError(f"step kind {self.do!r} has no run()")  # type: ignore[attr-defined]


class DeviceStep(Step):
    """A step on one of the scenario's devices; a ``member`` is checked and spelled as alpyca does."""

    device: str = Field(..., description="Name of one of the scenario's devices")

    def check_refs(self, scope: Scope) -> None:
        spec = scope.device(self.device)
        member = getattr(self, "member", None)
        if spec is not None and member is not None:
            try:
                self.member = check_member(spec.type, member)  # type: ignore[attr-defined]
            except ValueError as exc:
                scope.problem("member", str(exc))


#: How often a check looks again at what signals no change (traffic log, poll cache, processes, state).
LOOK_AGAIN_S = 0.02


class StateStep(Step):
    """A step on one emulator device's simulated state (set it, or check it)."""

    device_type: str = Field(..., description="Emulator device type, any case")
    device_number: int = Field(0, ge=0)
    values: dict[str, Any] = Field(..., description="Member = value, as emu.set_state / emu.get_state have them")

    _norm_type = field_validator("device_type")(lambda cls, v: device_type(v))

    def describe(self) -> str:
        return f"{self.do} {self.device_type}/{self.device_number} {self.values}"  # type: ignore[attr-defined]

    def check_refs(self, scope: Scope) -> None:
        scope.emulator_device(self.device_type, self.device_number)


class Check(Step):
    """A step that checks; ``within_s`` retries it until it holds."""

    within_s: float = Field(0.0, ge=0, le=600, description="Retry until it holds, for up to this long (wait until)")

    #: Only a new queue message can change the outcome: the check waits for one instead of looking again.
    follows_queue: ClassVar[bool] = False

    def expects(self) -> bool:
        return True

    def evaluate(self, run: "Run") -> tuple[bool, str, str]:
        """``(holds, expected, observed)``, the last two as text for the verdict."""
        raise NotImplementedError

    def run(self, run: "Run", where: str) -> str:
        limit = min(time.monotonic() + self.within_s, run.deadline)
        looks = 0
        while True:
            looks += 1
            handled = run.messages.handled if run.messages is not None else 0
            ok, expected, observed = self.evaluate(run)
            if ok:
                return f"ok: {observed}" if looks == 1 else f"ok after {looks} looks: {observed}"
            left = limit - time.monotonic()
            if left <= 0:
                break
            if self.follows_queue and run.messages is not None:
                run.messages.wait_beyond(handled, left)
            else:
                time.sleep(min(LOOK_AGAIN_S, left))
        if self.within_s:
            expected += f" (waited {self.within_s:g} s)"
        run.verdict.fail(where, expected, observed)
        return "FAILED"


class Counted(Strict):
    """``count``/``min``/``max`` bounds on how many things were seen."""

    count: int | None = Field(None, ge=0, description="Exactly this many")
    min: int | None = Field(None, ge=0, description="At least this many")
    max: int | None = Field(None, ge=0, description="At most this many")

    def bounds_text(self) -> str:
        if self.count is not None:
            return f"exactly {self.count}"
        if self.min is not None and self.max is not None:
            return f"between {self.min} and {self.max}"
        if self.min is not None:
            return f"at least {self.min}"
        return f"at most {self.max}"

    def holds(self, n: int) -> bool:
        if self.count is not None and n != self.count:
            return False
        if self.min is not None and n < self.min:
            return False
        return not (self.max is not None and n > self.max)

    def _at_least_one_by_default(self) -> None:
        if self.count is None and self.min is None and self.max is None:
            self.min = 1


@step_kind
class WaitStep(Step):
    """Let wall time pass (the timeline's own pause)."""

    do: typing.Literal["wait"]
    seconds: float = Field(..., ge=0, le=600)

    def describe(self) -> str:
        return f"wait {self.seconds:g} s"

    def run(self, run: "Run", where: str) -> None:
        run.sleep_until(time.monotonic() + self.seconds)
        return None
