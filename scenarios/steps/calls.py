"""Calls through an AlpacaDevice (get, call, set, force_poll), in the foreground, in threads or in
the background, and ``await`` to collect background calls; each judged against its ``expect``."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from astra.alpaca_device_process import AlpacaDeviceError, AlpacaDeviceIPCError, RemoteDeviceError
from astra.errors import IPC_REASONS, REMOTE_CAUSES
from scenarios.compare import ERROR_ATTRS, VALUE_TYPES, describe_exception, short, values_equal
from scenarios.steps.base import DeviceStep, Scope, Step, Strict, step_kind

if TYPE_CHECKING:
    from scenarios.timeline import Run

ERROR_CLASSES: dict[str, type[Exception]] = {
    "AlpacaDeviceError": AlpacaDeviceError,
    "AlpacaDeviceIPCError": AlpacaDeviceIPCError,
    "RemoteDeviceError": RemoteDeviceError,
}


@dataclass
class CallResult:
    start: float
    end: float
    value: Any = None
    exc: BaseException | None = None

    def observed(self) -> str:
        took = self.end - self.start
        if self.exc is not None:
            return f"raised {describe_exception(self.exc)} after {took:.3f} s"
        return f"returned {short(self.value)} after {took:.3f} s"


class CallExpect(Strict):
    """What a call must do. With no ``expect`` a call must simply succeed."""

    value: Any = Field(None, description="The value it must return (floats within 'tolerance')")
    tolerance: float = Field(1e-9, ge=0)
    type: Literal[tuple(VALUE_TYPES)] | None = Field(None, description="The type the value must have")  # type: ignore[valid-type]
    ok: bool | None = Field(None, description="true: must succeed; false: must raise (any error)")
    error: Literal[tuple(ERROR_CLASSES)] | None = Field(  # type: ignore[valid-type]
        None, description="Error class it must raise (AlpacaDeviceError matches both kinds)"
    )
    reason: Literal[tuple(sorted(IPC_REASONS))] | None = Field(None, description="AlpacaDeviceIPCError.reason")  # type: ignore[valid-type]
    cause: Literal[tuple(sorted(REMOTE_CAUSES))] | None = Field(None, description="RemoteDeviceError.cause")  # type: ignore[valid-type]
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
        wants_error = self._error_fields_given()
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

    def _error_fields_given(self) -> bool:
        return any(getattr(self, name) is not None for name in ("error", *ERROR_ATTRS, "message"))

    @property
    def expects_error(self) -> bool:
        return self.ok is False or self._error_fields_given()

    def error_text(self) -> str:
        parts = [self.error or "an error"]
        for attr in (*ERROR_ATTRS, "message"):
            v = getattr(self, attr)
            if v is not None:
                parts.append(f"{attr}=0x{v:X}" if attr == "error_number" else f"{attr}={v!r}")
        return " ".join(parts)

    def broken_by(self, r: CallResult, step_starts: dict[str, float]) -> list[str]:
        """The expectations a call result breaks, each as 'expected ...' text."""
        problems: list[str] = []
        ref = step_starts.get(self.from_step, r.start) if self.from_step else r.start
        took = r.end - ref
        since = f" of step {self.from_step!r}" if self.from_step else ""
        if self.within_s is not None and took > self.within_s:
            problems.append(f"an answer within {self.within_s:g} s{since} (took {took:.3f} s)")
        if self.min_s is not None and took < self.min_s:
            problems.append(f"no answer before {self.min_s:g} s{since} (took {took:.3f} s)")
        if self.expects_error:
            if r.exc is None:
                return problems + [f"an error: {self.error_text()}"]
            if self.error is not None and not isinstance(r.exc, ERROR_CLASSES[self.error]):
                problems.append(self.error)
            for attr in ERROR_ATTRS:
                want = getattr(self, attr)
                if want is not None and getattr(r.exc, attr, "<missing>") != want:
                    shown = f"0x{want:X}" if attr == "error_number" and isinstance(want, int) else repr(want)
                    problems.append(f"{attr} = {shown}")
            if self.message is not None and not re.search(self.message, str(r.exc)):
                problems.append(f"error text matching /{self.message}/")
            return problems
        if r.exc is not None:
            return problems + ["success" + (f" with value {short(self.value)}" if self.value is not None else "")]
        if self.type is not None and not VALUE_TYPES[self.type](r.value):
            problems.append(f"a value of type {self.type}")
        if self.value is not None and not values_equal(self.value, r.value, self.tolerance):
            problems.append(f"value {short(self.value)}")
        return problems


@dataclass
class Calls:
    """The same call made from several threads (or one, in the background), until judged."""

    step: "CallStep"
    where: str
    threads: list[threading.Thread] = field(default_factory=list)
    results: list[CallResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, run: "Run") -> "Calls":
        def worker() -> None:
            r = self.step.invoke(run)
            with self.lock:
                self.results.append(r)

        for k in range(self.step.threads):
            th = threading.Thread(target=worker, name=f"scenario-call:{self.step.label or self.step.member}:{k}", daemon=True)
            self.threads.append(th)
            th.start()
        return self

    def collect(self, run: "Run", timeout: float) -> str:
        """Wait up to ``timeout`` for every thread (astra's deadlines bound them), then judge."""
        limit = time.monotonic() + timeout
        for th in self.threads:
            th.join(max(0.0, limit - time.monotonic()))
        with self.lock:
            results = list(self.results)
        return self.step.judge(run, self.where, results)


class CallStep(DeviceStep):
    member: str
    expect: CallExpect | None = Field(None, description="What the call must do; absent = it must succeed")
    background: bool = Field(False, description="Run in a thread; an 'await' step or the end collects it")
    threads: int = Field(1, ge=1, le=64, description="Make the same call from this many threads at once")

    def expects(self) -> bool:
        return self.expect is not None

    def extra_text(self) -> str:
        return (" in background" if self.background else "") + (f" x{self.threads} threads" if self.threads > 1 else "")

    def check_refs(self, scope: Scope) -> None:
        super().check_refs(scope)
        if self.background and not self.label:
            scope.problem(None, "a background call needs a label")
        if self.expect is not None and self.expect.from_step is not None:
            # a background call is judged when collected, so it may measure from a later step (e.g. a kill)
            scope.label(self.expect.from_step, "expect.from_step", earlier=not self.background)

    def call(self, dev: Any) -> Any:
        raise NotImplementedError

    def invoke(self, run: "Run") -> CallResult:
        dev = run.device(self.device)
        start = time.monotonic()
        try:
            value = self.call(dev)
        except BaseException as exc:  # noqa: BLE001 - every outcome is data for the verdict
            return CallResult(start, time.monotonic(), exc=exc)
        return CallResult(start, time.monotonic(), value=value)

    def run(self, run: "Run", where: str) -> str:
        if self.threads == 1 and not self.background:
            return self.judge(run, where, [self.invoke(run)])
        calls = Calls(self, where).start(run)
        if self.background:
            run.background[self.label] = calls  # type: ignore[index]
            return "started"
        return calls.collect(run, max(0.0, run.deadline - time.monotonic()) + 1)

    def judge(self, run: "Run", where: str, results: list[CallResult]) -> str:
        if len(results) < self.threads:
            run.verdict.fail(where, f"{self.threads} call(s) finished", f"{self.threads - len(results)} still running (hung)")
        outcomes = []
        for k, r in enumerate(results):
            tag = where + (f" (thread {k})" if self.threads > 1 else "")
            observed = r.observed()
            if self.expect is None:
                problems = ["success (the step has no expect, so any error fails it)"] if r.exc is not None else []
            else:
                problems = self.expect.broken_by(r, run.step_starts)
            for expected in problems:
                run.verdict.fail(tag, expected, observed)
            outcomes.append(observed)
        if not outcomes:
            return "no result"
        return outcomes[0] if len(set(outcomes)) == 1 else f"{len(outcomes)} results: " + " | ".join(outcomes[:4])


@step_kind
class GetStep(CallStep):
    """``device.get(member, **args)``: read a property or call a method with arguments;
    ``call``: ``device.call(member, args)``, which calls a method now even without arguments."""

    do: Literal["get", "call"]
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments: a method call")

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        what = f"{self.device}.{self.member}({args})" if self.args or self.do == "call" else f"{self.device}.{self.member}"
        return f"get {what}{self.extra_text()}"

    def call(self, dev: Any) -> Any:
        if self.do == "call":
            return dev.call(self.member, self.args)
        return dev.get(self.member, **self.args)


@step_kind
class SetStep(CallStep):
    """``device.set(member, value)``: write a property."""

    do: Literal["set"]
    value: Any

    def describe(self) -> str:
        return f"set {self.device}.{self.member} = {self.value!r}{self.extra_text()}"

    def call(self, dev: Any) -> Any:
        return dev.set(self.member, self.value)


@step_kind
class ForcePollStep(CallStep):
    """``device.force_poll(member, **args)``: read once now and record it like a poll."""

    do: Literal["force_poll"]
    args: dict[str, Any] = Field(default_factory=dict)

    def describe(self) -> str:
        return f"force_poll {self.device}.{self.member}{self.extra_text()}"

    def call(self, dev: Any) -> Any:
        return dev.force_poll(self.member, **self.args)


@step_kind
class AwaitStep(Step):
    """Wait for a background call to finish (and check it)."""

    do: Literal["await"]
    call: str = Field(..., description="Label of a background call step")
    timeout_s: float = Field(30.0, gt=0, le=600)

    def describe(self) -> str:
        return f"await {self.call}"

    def check_refs(self, scope: Scope) -> None:
        target = scope.label(self.call, "call")
        if target is not None and not (isinstance(target, CallStep) and target.background):
            scope.problem("call", f"step {self.call!r} is not a background call")

    def run(self, run: "Run", where: str) -> str:
        calls = run.background.pop(self.call, None)
        return "already collected" if calls is None else calls.collect(run, self.timeout_s)
