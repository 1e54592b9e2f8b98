"""Run one scenario: emulator + AlpacaDevices + timeline -> a verdict that explains itself.

    Scenario ─> Emulator (fresh, free port, the scenario's seed and time scale)
            ─> AlpacaDevice per [[scenario.devices]] ─> queue ─> drain thread (─> SQLite recorder)
            ─> steps in order: act, call (inline expect), check (retried up to within_s)
            ─> teardown: stop devices, no process left, every fault fired ─> Verdict

A verdict lists every broken expectation as expected against observed, with the timeline, an
excerpt of the emulator's traffic log, the queue messages and the seed: enough to see why a
rehearsal failed without running it again. Nothing here is global, so many runners can work in
one process or one per pytest-xdist worker.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import queue as queue_module
import re
import signal
import sqlite3
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from emulator.sim.devices import DEVICE_TYPE_NAMES
from scenarios.schema import (
    AwaitStep,
    CallExpect,
    CallStep,
    ClearFaultsStep,
    DeviceActionStep,
    FaultStep,
    ForcePollStep,
    GetStep,
    PollCheck,
    ProcessCheck,
    QueueCheck,
    RemoveFaultStep,
    Scenario,
    SetStateStep,
    SetStep,
    SqliteCheck,
    StartPollStep,
    StateCheck,
    StopPollStep,
    StopStep,
    TrafficCheck,
    WaitStep,
)

log = logging.getLogger(__name__)

TRAFFIC_EXCERPT = 40
QUEUE_EXCERPT = 30


class ScenarioAborted(Exception):
    """The scenario cannot go on (its deadline passed, or setup failed)."""


@dataclass
class Failure:
    where: str
    expected: str
    observed: str

    def to_dict(self) -> dict[str, str]:
        return {"where": self.where, "expected": self.expected, "observed": self.observed}


@dataclass
class TimelineEntry:
    start: float
    end: float
    text: str
    outcome: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 4), "end": round(self.end, 4), "text": self.text, "outcome": self.outcome}


@dataclass
class Verdict:
    """What happened in one scenario run, and whether it was what had to happen."""

    name: str
    source: str
    description: str
    seed: int
    time_scale: float
    failures: list[Failure] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    traffic: list[str] = field(default_factory=list)
    traffic_total: int = 0
    queue: list[str] = field(default_factory=list)
    queue_total: int = 0
    duration_s: float = 0.0
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures and self.error is None

    def report(self) -> str:
        """Human-readable: expected vs observed, timeline, traffic excerpt, queue messages, seed."""
        status = "passed" if self.passed else "FAILED"
        lines = [
            f"scenario {self.name!r} ({self.source}) {status} in {self.duration_s:.2f} s "
            f"[seed={self.seed} time_scale={self.time_scale:g}]",
            f"  {self.description.strip()}",
        ]
        if self.error:
            lines += ["", "error:", f"  {self.error}"]
        if self.failures:
            lines += ["", "expected vs observed:"]
            for f in self.failures:
                lines += [f"  {f.where}", f"    expected: {f.expected}", f"    observed: {f.observed}"]
        lines += ["", "timeline (wall s from start):"]
        for e in self.timeline:
            lines.append(f"  +{e.start:7.3f} .. +{e.end:7.3f}  {e.text}  -> {e.outcome}")
        shown = len(self.traffic)
        lines += ["", f"traffic log ({'last ' + str(shown) + ' of ' if shown < self.traffic_total else ''}{self.traffic_total} requests):"]
        lines += [f"  {t}" for t in self.traffic] or ["  (none)"]
        shown = len(self.queue)
        lines += ["", f"queue messages ({'last ' + str(shown) + ' of ' if shown < self.queue_total else ''}{self.queue_total}):"]
        lines += [f"  {q}" for q in self.queue] or ["  (none)"]
        lines += ["", f"seed: {self.seed}"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "passed": self.passed,
            "seed": self.seed,
            "time_scale": self.time_scale,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "failures": [f.to_dict() for f in self.failures],
            "timeline": [e.to_dict() for e in self.timeline],
            "traffic": self.traffic,
            "traffic_total": self.traffic_total,
            "queue": self.queue,
            "queue_total": self.queue_total,
        }


@dataclass
class CallResult:
    start: float
    end: float
    value: Any = None
    exc: BaseException | None = None


# -- helpers -----------------------------------------------------------------------------------


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """Type, message and the cause attributes astra's errors carry."""
    parts = [f"{type(exc).__name__}: {str(exc)[:300]}"]
    attrs = []
    for name in ("reason", "cause", "error_number", "error_name", "http_status", "ambiguous", "attempts"):
        if hasattr(exc, name):
            value = getattr(exc, name)
            if name == "error_number" and isinstance(value, int):
                attrs.append(f"error_number=0x{value:X}")
            else:
                attrs.append(f"{name}={value!r}")
    if attrs:
        parts.append("(" + ", ".join(attrs) + ")")
    return " ".join(parts)


def _values_equal(expected: Any, observed: Any, tolerance: float) -> bool:
    if isinstance(expected, bool) or isinstance(observed, bool):
        return type(expected) is type(observed) and expected == observed
    if isinstance(expected, (int, float)) and isinstance(observed, (int, float)):
        return math.isclose(float(expected), float(observed), rel_tol=0, abs_tol=tolerance) or expected == observed
    if isinstance(expected, list) and isinstance(observed, (list, tuple)):
        return len(expected) == len(observed) and all(_values_equal(a, b, tolerance) for a, b in zip(expected, observed))
    if isinstance(expected, dict) and isinstance(observed, dict):
        return expected.keys() == observed.keys() and all(_values_equal(v, observed[k], tolerance) for k, v in expected.items())
    if hasattr(observed, "tolist"):  # numpy arrays from ImageArray
        return _values_equal(expected, observed.tolist(), tolerance)
    return expected == observed


_TYPES: dict[str, Callable[[Any], bool]] = {
    "bool": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, (list, tuple)) or hasattr(v, "tolist"),
    "dict": lambda v: isinstance(v, dict),
    "none": lambda v: v is None,
}


def _bounds_text(count: int | None, lo: int | None, hi: int | None) -> str:
    if count is not None:
        return f"exactly {count}"
    if lo is not None and hi is not None:
        return f"between {lo} and {hi}"
    if lo is not None:
        return f"at least {lo}"
    return f"at most {hi}"


def _in_bounds(n: int, count: int | None, lo: int | None, hi: int | None) -> bool:
    if count is not None and n != count:
        return False
    if lo is not None and n < lo:
        return False
    return not (hi is not None and n > hi)


def _process_state(pid: int) -> str | None:
    """None when no such process exists; else its /proc state letter (Z = zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode(errors="replace")
        return data.rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "?"


def _attr(entry: Any, name: str, default: Any = None) -> Any:
    if isinstance(entry, dict):
        return entry.get(name, default)
    return getattr(entry, name, default)


# -- the runner --------------------------------------------------------------------------------


class Runner:
    """Runs one :class:`Scenario` once; :meth:`run` never raises for a scenario failure."""

    def __init__(self, scenario: Scenario, source: str = "<scenario>") -> None:
        self.sc = scenario
        self.source = source
        self.verdict = Verdict(
            name=scenario.name,
            source=source,
            description=scenario.description,
            seed=scenario.emulator.seed,
            time_scale=scenario.emulator.time_scale,
        )
        self.emu: Any = None
        self.devices: dict[str, Any] = {}
        self.pids: dict[str, int] = {}
        self.stopped: set[str] = set()
        self.faults: dict[str, tuple[FaultStep, Any]] = {}
        self.step_starts: dict[str, float] = {}  # label -> monotonic time
        self.background: dict[str, tuple[CallStep, str, list[threading.Thread], list[CallResult]]] = {}
        self.messages: list[tuple[float, Any, Any]] = []
        self._messages_lock = threading.Lock()
        self._queue: Any = None
        self._drain_stop = threading.Event()
        self._drainer: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        self._db_lock = threading.Lock()
        self._recorder: Any = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.deadline = self.t0 + scenario.timeout_s

    # -- public ------------------------------------------------------------------------------

    def run(self) -> Verdict:
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.deadline = self.t0 + self.sc.timeout_s
        try:
            self._setup()
            self._timeline()
        except ScenarioAborted as exc:
            self.verdict.error = str(exc)
        except Exception as exc:  # a bug or an environment problem: still a verdict, with the traceback
            log.exception("scenario %s crashed", self.sc.name)
            self.verdict.error = f"runner error: {describe_exception(exc)}"
        finally:
            try:
                self._teardown()
            except Exception as exc:  # pragma: no cover - teardown must not mask the verdict
                log.exception("scenario %s teardown failed", self.sc.name)
                self.verdict.failures.append(Failure("teardown", "a clean teardown", describe_exception(exc)))
        self.verdict.duration_s = time.monotonic() - self.t0
        return self.verdict

    # -- setup and teardown --------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _setup(self) -> None:
        from emulator import Emulator

        self.emu = Emulator(self.sc.emulator_config())
        self.emu.start()
        if self.sc.devices:
            try:
                from astra.alpaca_device_process import AlpacaDevice
            except ImportError as exc:
                raise ScenarioAborted(f"astra.alpaca_device_process is not available: {exc}") from None
            # a spawn-context queue can go to children of every start method (a fork-context one cannot)
            self._queue = multiprocessing.get_context("spawn").Queue()
            if self.sc.sqlite:
                self._open_sqlite()
            self._drainer = threading.Thread(target=self._drain, name=f"scenario-queue:{self.sc.name}", daemon=True)
            self._drainer.start()
            for spec in self.sc.devices:
                kwargs: dict[str, Any] = {
                    "call_timeout": spec.call_timeout,
                    "http_timeout": spec.http_timeout,
                    "image_timeout": spec.image_timeout,
                }
                if spec.retry is not None:
                    kwargs["retry"] = spec.retry.model_dump()
                kwargs["start_method"] = spec.start_method
                t = self.now()
                dev = AlpacaDevice(
                    self.emu.address, DEVICE_TYPE_NAMES[spec.type], spec.number, spec.name, self._queue,
                    spec.connectable, spec.debug, **kwargs,
                )
                dev.start()
                self.devices[spec.name] = dev
                self.pids[spec.name] = dev.pid
                self.verdict.timeline.append(
                    TimelineEntry(t, self.now(), f"start {spec.name} ({DEVICE_TYPE_NAMES[spec.type]} {spec.number}, pid {dev.pid})")
                )
            for spec in self.sc.devices:
                self._wait_ready(spec.name)

    def _wait_ready(self, name: str) -> None:
        """Until the device process answers over its pipe, so a timeline starts with every device up.

        Starting a process (a forkserver's first start, imports, the connect) can take longer than
        the short call deadlines scenarios use on purpose; the timeline should not measure that.
        """
        from astra.alpaca_device_process import AlpacaDeviceIPCError

        dev = self.devices[name]
        t = self.now()
        limit = time.monotonic() + 30.0
        while True:
            try:
                dev.poll_list()
                break
            except AlpacaDeviceIPCError as exc:
                if exc.reason != "timeout" or time.monotonic() > limit:
                    raise ScenarioAborted(f"device {name} did not come up: {describe_exception(exc)}") from None
        self.verdict.timeline.append(TimelineEntry(t, self.now(), f"{name} ready"))

    def _teardown(self) -> None:
        # background calls first: astra's deadlines bound them, so this join is bounded too
        for label in list(self.background):
            self._collect_background(label, timeout=max(5.0, max((d.call_timeout for d in self.sc.devices), default=5.0) + 2))
        for name, dev in self.devices.items():
            if name in self.stopped:
                continue
            t = self.now()
            try:
                dev.stop(timeout=2.0)
                outcome = "ok"
            except Exception as exc:
                outcome = describe_exception(exc)
            self.verdict.timeline.append(TimelineEntry(t, self.now(), f"teardown: stop {name}", outcome))
        # no stray process: every device process is gone (and reaped)
        for name, pid in self.pids.items():
            state = None
            limit = time.monotonic() + 3.0
            while time.monotonic() < limit:
                state = _process_state(pid)
                if state is None:
                    break
                time.sleep(0.02)
            if state is not None:
                self.verdict.failures.append(
                    Failure(f"teardown: process of {name}", f"pid {pid} gone after stop()", f"still there, state {state}")
                )
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        self._check_faults_fired()
        self._capture_traffic()
        if self.emu is not None:
            self.emu.stop()
        self._drain_stop.set()
        if self._drainer is not None:
            self._drainer.join(5.0)
        if self._queue is not None:
            self._drain_queue_now()
            self._queue.close()
            self._queue.join_thread()
        self._capture_queue()
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    def _check_faults_fired(self) -> None:
        for label, (step, rule) in self.faults.items():
            fired = self._fired(rule)
            if fired is None:
                continue
            where = f"fault {label!r} ({step.action.kind})"
            if step.fired is not None:
                if fired != step.fired:
                    self.verdict.failures.append(Failure(where, f"fired exactly {step.fired} time(s)", f"fired {fired} time(s)"))
            elif not step.may_not_fire and fired == 0:
                self.verdict.failures.append(
                    Failure(where, "fired at least once (else the scenario did not rehearse what it says)", "never fired")
                )

    def _fired(self, rule: Any) -> int | None:
        fired = _attr(rule, "fired")
        if isinstance(fired, int):
            return fired
        rule_id = _attr(rule, "id")
        if rule_id is None or self.emu is None:
            return None
        n = 0
        for entry in self.emu.traffic.entries():
            rules = _attr(entry, "rules") or ()
            if rule_id in rules or any(_attr(r, "id") == rule_id for r in rules if not isinstance(r, str)):
                n += 1
        return n

    # -- queue and SQLite ---------------------------------------------------------------------

    def _open_sqlite(self) -> None:
        """A recorder database per scenario, created by astra.recorder (tables polling and log)."""
        from astra import recorder

        self._tmpdir = tempfile.TemporaryDirectory(prefix="scenario-")
        self._db = recorder.connect(Path(self._tmpdir.name) / "rehearsal.sqlite")
        self._recorder = recorder

    def _record(self, metadata: Any, payload: Any) -> None:
        if self._db is None:
            return
        with self._db_lock:
            try:
                if self.sc.sqlite_mode == "sql_text" and isinstance(payload, dict) and payload.get("type") == "query":
                    # the legacy consumer: execute the SQL text the device library sent (its escaping is under test)
                    self._db.execute(payload["data"])
                    ok = True
                else:
                    ok = self._recorder.record(self._db, (metadata, payload))
                self._db.commit()
            except Exception as exc:
                ok = False
                self.verdict.failures.append(
                    Failure("recorder", "every queue message stored in SQLite", f"{describe_exception(exc)} for {_short(payload)}")
                )
            if not ok:
                self.verdict.failures.append(
                    Failure("recorder", "every queue message usable by the recorder", f"rejected {_short(payload)}")
                )

    def _accept(self, item: Any) -> None:
        try:
            metadata, payload = item
        except (TypeError, ValueError):
            metadata, payload = None, item
        with self._messages_lock:
            self.messages.append((self.now(), metadata, payload))
        self._record(metadata, payload)

    def _drain(self) -> None:
        while not self._drain_stop.is_set():
            try:
                item = self._queue.get(timeout=0.05)
            except queue_module.Empty:
                continue
            except (EOFError, OSError, ValueError):
                break
            self._accept(item)

    def _drain_queue_now(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.05)
            except (queue_module.Empty, EOFError, OSError, ValueError):
                return
            self._accept(item)

    def _capture_queue(self) -> None:
        with self._messages_lock:
            msgs = list(self.messages)
        self.verdict.queue_total = len(msgs)
        self.verdict.queue = [self._format_message(t, md, p) for t, md, p in msgs[-QUEUE_EXCERPT:]]

    @staticmethod
    def _format_message(t: float, metadata: Any, payload: Any) -> str:
        who = metadata.get("device_name") if isinstance(metadata, dict) else "?"
        if isinstance(payload, dict) and payload.get("type") == "log":
            data = payload.get("data")
            level, text = data if isinstance(data, (list, tuple)) and len(data) == 2 else ("?", data)
            return f"+{t:7.3f} {who} log {level}: {str(text)[:200]}"
        if isinstance(payload, dict) and payload.get("type") == "query":
            return f"+{t:7.3f} {who} query: {str(payload.get('data'))[:200]}"
        return f"+{t:7.3f} {who} {_short(payload)}"

    # -- traffic ------------------------------------------------------------------------------

    def _entry_time(self, entry: Any) -> float | None:
        """Seconds from the scenario start at which the emulator saw a request."""
        t = _attr(entry, "time")
        if isinstance(t, datetime):
            return t.timestamp() - self.wall0
        if isinstance(t, (int, float)):
            if t > 1e9:  # epoch seconds
                return t - self.wall0
            return t - self.t0  # monotonic
        return None

    def _traffic(self, **filters: Any) -> list[Any]:
        filters = {k: v for k, v in filters.items() if v is not None}
        return list(self.emu.traffic.entries(**filters))

    def _capture_traffic(self) -> None:
        if self.emu is None or getattr(self.emu, "_server", None) is None or not hasattr(self.emu, "traffic"):
            return
        try:
            entries = self._traffic()
        except Exception as exc:  # pragma: no cover
            self.verdict.traffic = [f"(traffic log unavailable: {describe_exception(exc)})"]
            return
        self.verdict.traffic_total = len(entries)
        self.verdict.traffic = [self._format_entry(e) for e in entries[-TRAFFIC_EXCERPT:]]

    def _format_entry(self, e: Any) -> str:
        t = self._entry_time(e)
        when = f"+{t:7.3f}" if t is not None else "       ?"
        target = f"{_attr(e, 'device_type', '?')}/{_attr(e, 'device_number', '?')}/{_attr(e, 'member', '?')}"
        rules = _attr(e, "rules") or []
        dur = _attr(e, "duration_s")
        err = _attr(e, "error_number")
        return (
            f"{when} {_attr(e, 'verb', '?'):4} {target:36} status={_attr(e, 'status')} "
            f"err={err if not err else hex(err) if isinstance(err, int) else err}"
            f"{' rules=' + ','.join(map(str, rules)) if rules else ''}"
            f"{f' {dur:.3f}s' if isinstance(dur, (int, float)) else ''}"
        )

    # -- the timeline --------------------------------------------------------------------------

    def _sleep_until(self, t_mono: float) -> None:
        if t_mono > self.deadline:
            remaining = self.deadline - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            raise ScenarioAborted(f"scenario deadline of {self.sc.timeout_s:g} s passed (timeout_s)")
        delay = t_mono - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _timeline(self) -> None:
        start = time.monotonic()
        prev_end = start
        for i, step in enumerate(self.sc.steps):
            if step.at is not None:
                self._sleep_until(start + step.at)
            else:
                self._sleep_until(prev_end + (step.after or 0.0))
            if time.monotonic() > self.deadline:
                raise ScenarioAborted(f"scenario deadline of {self.sc.timeout_s:g} s passed before steps[{i}]")
            t = self.now()
            if step.label:
                self.step_starts[step.label] = time.monotonic()
            where = f"steps[{i}] {self._describe(step)}"
            n_fail = len(self.verdict.failures)
            outcome = self._execute(step, where)
            if outcome is None:
                outcome = "ok" if len(self.verdict.failures) == n_fail else "FAILED"
            self.verdict.timeline.append(TimelineEntry(t, self.now(), where, outcome))
            prev_end = time.monotonic()

    @staticmethod
    def _describe(step: Any) -> str:
        label = f" [{step.label}]" if step.label else ""
        if isinstance(step, GetStep):
            args = ", ".join(f"{k}={v!r}" for k, v in step.args.items())
            what = f"{step.device}.{step.member}({args})" if step.args or step.do == "call" else f"{step.device}.{step.member}"
            extra = (" in background" if step.background else "") + (f" x{step.threads} threads" if step.threads > 1 else "")
            return f"get {what}{extra}{label}"
        if isinstance(step, SetStep):
            return f"set {step.device}.{step.member} = {step.value!r}{label}"
        if isinstance(step, ForcePollStep):
            return f"force_poll {step.device}.{step.member}{label}"
        if isinstance(step, StartPollStep):
            return f"start_poll {step.device}.{step.member} every {step.interval_s:g} s{label}"
        if isinstance(step, StopPollStep):
            return f"stop_poll {step.device}.{step.member or '*'}{label}"
        if isinstance(step, (DeviceActionStep, StopStep)):
            return f"{step.do} {step.device}{label}"
        if isinstance(step, FaultStep):
            params = {k: v for k, v in step.action.model_dump().items() if k != "kind"}
            trigger = step.trigger.model_dump(exclude_none=True)
            return (f"fault {step.action.kind}{params or ''} on {step.match.model_dump(exclude_none=True) or 'everything'}"
                    f"{' ' + str(trigger) if trigger else ''}{label}")
        if isinstance(step, RemoveFaultStep):
            return f"remove_fault {step.fault}{label}"
        if isinstance(step, SetStateStep):
            return f"set_state {step.device_type}/{step.device_number} {step.values}{label}"
        if isinstance(step, WaitStep):
            return f"wait {step.seconds:g} s{label}"
        if isinstance(step, AwaitStep):
            return f"await {step.call}{label}"
        return f"{step.do}{label}"

    def _device(self, name: str) -> Any:
        return self.devices[name]

    def _execute(self, step: Any, where: str) -> str | None:
        if isinstance(step, CallStep):
            return self._call_step(step, where)
        if isinstance(step, StartPollStep):
            self._device(step.device).start_poll(step.member, step.interval_s)
        elif isinstance(step, StopPollStep):
            dev = self._device(step.device)
            dev.stop_poll(step.member) if step.member else dev.stop_poll()
        elif isinstance(step, DeviceActionStep):
            return self._device_action(step, where)
        elif isinstance(step, StopStep):
            return self._stop_step(step, where)
        elif isinstance(step, FaultStep):
            rule = self.emu.faults.add(step.rule())
            self.faults[step.label or f"#{len(self.faults)}"] = (step, rule)
            return f"ok (rule {_attr(rule, 'id')})"
        elif isinstance(step, RemoveFaultStep):
            _, rule = self.faults[step.fault]
            self.emu.faults.remove(_attr(rule, "id"))
        elif isinstance(step, ClearFaultsStep):
            if step.do == "clear_faults":
                self.emu.faults.clear()
            elif step.do == "clear_traffic":
                self.emu.traffic.clear()
            else:
                self.emu.reset()
        elif isinstance(step, SetStateStep):
            self.emu.set_state(step.device_type, step.device_number, **step.values)
        elif isinstance(step, WaitStep):
            self._sleep_until(time.monotonic() + step.seconds)
        elif isinstance(step, AwaitStep):
            return self._collect_background(step.call, timeout=step.timeout_s)
        elif isinstance(step, (TrafficCheck, PollCheck, QueueCheck, SqliteCheck, StateCheck, ProcessCheck)):
            return self._check_step(step, where)
        else:  # pragma: no cover - the schema and this list go together
            raise ScenarioAborted(f"{where}: step kind {step.do!r} is not implemented by the runner")
        return None

    # -- device process actions ----------------------------------------------------------------

    def _signal(self, name: str, sig: signal.Signals) -> None:
        pid = self.pids[name]
        os.kill(pid, sig)

    def _device_action(self, step: DeviceActionStep, where: str) -> str | None:
        dev = self._device(step.device)
        if step.do == "pause_polls":
            dev.pause_polls()
        elif step.do == "resume_polls":
            dev.resume_polls()
        elif step.do == "kill":
            self._signal(step.device, signal.SIGKILL)
        elif step.do == "hang":
            self._signal(step.device, signal.SIGSTOP)
        elif step.do == "unhang":
            self._signal(step.device, signal.SIGCONT)
        return None

    def _stop_step(self, step: StopStep, where: str) -> str:
        dev = self._device(step.device)
        t0 = time.monotonic()
        try:
            dev.stop(timeout=step.timeout_s)
            outcome = "ok"
        except Exception as exc:
            self.verdict.failures.append(Failure(where, "stop() returns", f"raised {describe_exception(exc)}"))
            outcome = "FAILED"
        took = time.monotonic() - t0
        self.stopped.add(step.device)
        if step.within_s is not None and took > step.within_s:
            self.verdict.failures.append(Failure(where, f"stop() returns within {step.within_s:g} s", f"took {took:.3f} s"))
            outcome = "FAILED"
        pid = self.pids[step.device]
        state = _process_state(pid)
        if state is not None:
            self.verdict.failures.append(Failure(where, f"process {pid} gone after stop()", f"still there, state {state}"))
            outcome = "FAILED"
        return f"{outcome} in {took:.3f} s"

    # -- calls ---------------------------------------------------------------------------------

    def _invoke(self, step: CallStep) -> CallResult:
        dev = self._device(step.device)
        start = time.monotonic()
        try:
            if isinstance(step, SetStep):
                value = dev.set(step.member, step.value)
            elif isinstance(step, ForcePollStep):
                value = dev.force_poll(step.member, **step.args)
            else:
                assert isinstance(step, GetStep)
                value = dev.get(step.member, **step.args)
            return CallResult(start, time.monotonic(), value=value)
        except BaseException as exc:  # noqa: BLE001 - every outcome is data for the verdict
            return CallResult(start, time.monotonic(), exc=exc)

    def _call_step(self, step: CallStep, where: str) -> str:
        results: list[CallResult] = []
        threads: list[threading.Thread] = []
        if step.threads == 1 and not step.background:
            results.append(self._invoke(step))
        else:
            lock = threading.Lock()

            def worker() -> None:
                r = self._invoke(step)
                with lock:
                    results.append(r)

            for k in range(step.threads):
                th = threading.Thread(target=worker, name=f"scenario-call:{step.label or step.member}:{k}", daemon=True)
                threads.append(th)
                th.start()
            if step.background:
                self.background[step.label] = (step, where, threads, results)  # type: ignore[index]
                return "started"
            for th in threads:
                th.join(max(0.0, self.deadline - time.monotonic()) + 1)
        return self._judge_calls(step, where, results, expected_n=step.threads)

    def _collect_background(self, label: str, timeout: float) -> str:
        entry = self.background.pop(label, None)
        if entry is None:
            return "already collected"
        step, where, threads, results = entry
        limit = time.monotonic() + timeout
        for th in threads:
            th.join(max(0.0, limit - time.monotonic()))
        return self._judge_calls(step, where, list(results), expected_n=step.threads)

    def _judge_calls(self, step: CallStep, where: str, results: list[CallResult], expected_n: int) -> str:
        if len(results) < expected_n:
            self.verdict.failures.append(
                Failure(where, f"{expected_n} call(s) finished", f"{expected_n - len(results)} still running (hung)")
            )
        outcomes = []
        for k, r in enumerate(results):
            problems = self._check_call(step.expect, r)
            tag = f"{where}" + (f" (thread {k})" if expected_n > 1 else "")
            observed = self._observed_call(r)
            for expected in problems:
                self.verdict.failures.append(Failure(tag, expected, observed))
            outcomes.append(observed)
        if not outcomes:
            return "no result"
        return outcomes[0] if len(set(outcomes)) == 1 else f"{len(outcomes)} results: " + " | ".join(outcomes[:4])

    def _observed_call(self, r: CallResult) -> str:
        took = r.end - r.start
        if r.exc is not None:
            return f"raised {describe_exception(r.exc)} after {took:.3f} s"
        return f"returned {_short(r.value)} after {took:.3f} s"

    def _check_call(self, expect: CallExpect | None, r: CallResult) -> list[str]:
        """The expectations a call result breaks, each as 'expected ...' text."""
        problems: list[str] = []
        if expect is None:
            if r.exc is not None:
                problems.append("success (the step has no expect, so any error fails it)")
            return problems
        ref = r.start
        if expect.from_step is not None:
            ref = self.step_starts.get(expect.from_step, r.start)
        took = r.end - ref
        since = f" of step {expect.from_step!r}" if expect.from_step else ""
        if expect.within_s is not None and took > expect.within_s:
            problems.append(f"an answer within {expect.within_s:g} s{since} (took {took:.3f} s)")
        if expect.min_s is not None and took < expect.min_s:
            problems.append(f"no answer before {expect.min_s:g} s{since} (took {took:.3f} s)")
        if expect.expects_error:
            if r.exc is None:
                problems.append(f"an error: {self._error_text(expect)}")
                return problems
            exc = r.exc
            if expect.error is not None:
                import astra.alpaca_device_process as adp

                cls = getattr(adp, expect.error)
                if not isinstance(exc, cls):
                    problems.append(f"{expect.error}")
            checks = {
                "reason": expect.reason,
                "cause": expect.cause,
                "error_number": expect.error_number,
                "error_name": expect.error_name,
                "http_status": expect.http_status,
                "ambiguous": expect.ambiguous,
                "attempts": expect.attempts,
            }
            for attr, want in checks.items():
                if want is None:
                    continue
                got = getattr(exc, attr, "<missing>")
                if got != want:
                    shown = f"0x{want:X}" if attr == "error_number" and isinstance(want, int) else repr(want)
                    problems.append(f"{attr} = {shown}")
            if expect.message is not None and not re.search(expect.message, str(exc)):
                problems.append(f"error text matching /{expect.message}/")
            return problems
        if r.exc is not None:
            problems.append("success" + (f" with value {_short(expect.value)}" if expect.value is not None else ""))
            return problems
        if expect.type is not None and not _TYPES[expect.type](r.value):
            problems.append(f"a value of type {expect.type}")
        if expect.value is not None and not _values_equal(expect.value, r.value, expect.tolerance):
            problems.append(f"value {_short(expect.value)}")
        return problems

    @staticmethod
    def _error_text(expect: CallExpect) -> str:
        parts = [expect.error or "an error"]
        for attr in ("reason", "cause", "error_number", "error_name", "http_status", "ambiguous", "attempts", "message"):
            v = getattr(expect, attr)
            if v is not None:
                parts.append(f"{attr}=0x{v:X}" if attr == "error_number" else f"{attr}={v!r}")
        return " ".join(parts)

    # -- checks --------------------------------------------------------------------------------

    def _check_step(self, step: Any, where: str) -> str:
        limit = time.monotonic() + step.within_s
        evaluate = {
            TrafficCheck: self._eval_traffic,
            PollCheck: self._eval_poll,
            QueueCheck: self._eval_queue,
            SqliteCheck: self._eval_sqlite,
            StateCheck: self._eval_state,
            ProcessCheck: self._eval_process,
        }[type(step)]
        tries = 0
        while True:
            tries += 1
            ok, expected, observed = evaluate(step)
            if ok:
                return f"ok: {observed}" if tries == 1 else f"ok after {tries} looks: {observed}"
            if time.monotonic() >= min(limit, self.deadline):
                break
            time.sleep(0.02)
        if step.within_s:
            expected += f" (waited {step.within_s:g} s)"
        self.verdict.failures.append(Failure(where, expected, observed))
        return "FAILED"

    def _window(self, since: str | None, until: str | None) -> tuple[float, float]:
        lo = (self.step_starts[since] - self.t0) if since else -math.inf
        hi = (self.step_starts[until] - self.t0) if until else math.inf
        return lo, hi

    def _eval_traffic(self, step: TrafficCheck) -> tuple[bool, str, str]:
        entries = self._traffic(device_type=step.device_type, device_number=step.device_number, member=step.member, verb=step.verb)
        lo, hi = self._window(step.since, step.until)
        picked = []
        for e in entries:
            if step.error_number is not None and _attr(e, "error_number") != step.error_number:
                continue
            t = self._entry_time(e)
            if (lo != -math.inf or hi != math.inf) and t is None:
                continue
            if t is not None and not lo <= t <= hi:
                continue
            picked.append(e)
        n = len(picked)
        what = " ".join(
            x for x in (step.verb, f"{step.device_type or '*'}/{step.device_number if step.device_number is not None else '*'}/{step.member or '*'}") if x
        )
        window = ""
        if step.since or step.until:
            window = f" between {step.since or 'start'} and {step.until or 'now'}"
        expected = f"{_bounds_text(step.count, step.min, step.max)} request(s) {what}{window}"
        observed = f"{n} request(s)"
        if picked:
            observed += ": " + "; ".join(self._format_entry(e).strip() for e in picked[-5:])
        return _in_bounds(n, step.count, step.min, step.max), expected, observed

    def _eval_poll(self, step: PollCheck) -> tuple[bool, str, str]:
        dev = self._device(step.device)
        samples = 5 if step.answer_ms is not None else 1
        times = []
        latest: Any = None
        for _ in range(samples):
            t0 = time.perf_counter()
            latest = dev.poll_latest()
            times.append((time.perf_counter() - t0) * 1000)
        expected_parts: list[str] = []
        problems: list[str] = []
        observed_parts: list[str] = []
        if step.answer_ms is not None:
            med = statistics.median(times)
            expected_parts.append(f"poll_latest() answers within {step.answer_ms:g} ms (median of {samples})")
            observed_parts.append("answered in " + ", ".join(f"{t:.2f}" for t in times) + " ms")
            if med > step.answer_ms:
                problems.append("answer time")
        entry = None
        if step.member is not None and isinstance(latest, dict):
            entry = latest.get(step.member)
            if entry is None:
                lowered = {str(k).lower(): v for k, v in latest.items()}
                entry = lowered.get(step.member.lower())
        present = entry is not None if step.member is not None else latest is not None
        if step.none is not None:
            target = f"poll_latest()[{step.member!r}]" if step.member else "poll_latest()"
            expected_parts.append(f"{target} is {'None/absent' if step.none else 'present'}")
            if step.none == present:
                problems.append("presence")
        if step.member is not None:
            if entry is None:
                observed_parts.append(f"no entry for {step.member} (poll_latest() = {_short(latest)})")
            else:
                value = _attr(entry, "value")
                stamp = _attr(entry, "datetime")
                err = _attr(entry, "error")
                age = None
                if isinstance(stamp, datetime):
                    age = (datetime.now(timezone.utc) - stamp).total_seconds()
                observed_parts.append(
                    f"value={_short(value)} age={'%.3f s' % age if age is not None else 'n/a'} error={_short(err)}"
                )
                if step.value is not None:
                    expected_parts.append(f"value {_short(step.value)}")
                    if not _values_equal(step.value, value, step.tolerance):
                        problems.append("value")
                if step.max_age_s is not None:
                    expected_parts.append(f"age <= {step.max_age_s:g} s")
                    if age is None or age > step.max_age_s:
                        problems.append("max age")
                if step.min_age_s is not None:
                    expected_parts.append(f"age >= {step.min_age_s:g} s (stale)")
                    if age is not None and age < step.min_age_s:
                        problems.append("min age")
                if step.error is not None:
                    if isinstance(step.error, bool):
                        expected_parts.append("an error recorded" if step.error else "no error recorded")
                        if bool(err) != step.error:
                            problems.append("error")
                    else:
                        expected_parts.append(f"error matching /{step.error}/")
                        if not err or not re.search(step.error, str(err)):
                            problems.append("error")
            if entry is None and any(x is not None for x in (step.value, step.max_age_s, step.min_age_s, step.error)):
                expected_parts.append(f"an entry for {step.member}")
                problems.append("absent")
        elif latest is not None and not observed_parts:
            observed_parts.append(f"poll_latest() = {_short(latest)}")
        if not observed_parts:
            observed_parts.append(f"poll_latest() = {_short(latest)}")
        return not problems, ", ".join(expected_parts), "; ".join(observed_parts)

    def _eval_queue(self, step: QueueCheck) -> tuple[bool, str, str]:
        with self._messages_lock:
            msgs = list(self.messages)
        picked = []
        for t, md, payload in msgs:
            if step.device and not (isinstance(md, dict) and md.get("device_name") == step.device):
                continue
            if not isinstance(payload, dict):
                continue
            if step.type and payload.get("type") != step.type:
                continue
            text = ""
            if payload.get("type") == "log":
                data = payload.get("data")
                level, text = data if isinstance(data, (list, tuple)) and len(data) == 2 else (None, str(data))
                if step.level and level != step.level:
                    continue
            else:
                if step.level:
                    continue
                text = str(payload.get("data"))
            if step.pattern and not re.search(step.pattern, str(text)):
                continue
            picked.append((t, md, payload))
        n = len(picked)
        filters = ", ".join(
            f"{k}={v!r}" for k, v in (("device", step.device), ("type", step.type), ("level", step.level), ("pattern", step.pattern)) if v
        )
        expected = f"{_bounds_text(step.count, step.min, step.max)} queue message(s) with {filters or 'any content'}"
        observed = f"{n} matching of {len(msgs)}"
        if picked:
            observed += ": " + " | ".join(self._format_message(*m) for m in picked[-3:])
        elif msgs:
            observed += "; last: " + " | ".join(self._format_message(*m) for m in msgs[-3:])
        return _in_bounds(n, step.count, step.min, step.max), expected, observed

    def _eval_sqlite(self, step: SqliteCheck) -> tuple[bool, str, str]:
        if self._db is None:
            return False, "a SQLite recorder", "no recorder (the scenario has no devices)"
        clauses = " AND ".join(f'"{col}" = ?' for col in step.where) or "1"
        with self._db_lock:
            try:
                rows = self._db.execute(f"SELECT * FROM {step.table} WHERE {clauses}", tuple(step.where.values())).fetchall()
                total = self._db.execute(f"SELECT COUNT(*) FROM {step.table}").fetchone()[0]
                sample = self._db.execute(f"SELECT * FROM {step.table} ORDER BY rowid DESC LIMIT 3").fetchall()
            except sqlite3.Error as exc:
                return False, f"rows in {step.table}", f"SQLite error: {exc}"
        n = len(rows)
        where = " AND ".join(f"{k} = {v!r}" for k, v in step.where.items()) or "any"
        expected = f"{_bounds_text(step.count, step.min, step.max)} row(s) in {step.table} where {where}"
        observed = f"{n} matching of {total} row(s)"
        if rows:
            observed += f": {_short(rows[-1], 300)}"
        elif sample:
            observed += f"; latest rows: {_short(sample, 400)}"
        return _in_bounds(n, step.count, step.min, step.max), expected, observed

    def _eval_state(self, step: StateCheck) -> tuple[bool, str, str]:
        state = self.emu.get_state(step.device_type, step.device_number)
        wrong = {k: state.get(k, "<absent>") for k, v in step.values.items() if not _values_equal(v, state.get(k), 1e-9)}
        expected = f"{step.device_type}/{step.device_number} state {step.values}"
        observed = f"state {({k: state.get(k, '<absent>') for k in step.values})}"
        return not wrong, expected, observed

    def _eval_process(self, step: ProcessCheck) -> tuple[bool, str, str]:
        pid = self.pids[step.device]
        state = _process_state(pid)
        alive = state is not None and state != "Z"
        expected = f"process {pid} of {step.device} {'alive' if step.alive else 'gone'}"
        observed = "alive" if alive else ("zombie (not reaped)" if state == "Z" else "gone")
        if state == "T":
            observed = "alive, stopped (SIGSTOP)"
        return alive == step.alive, expected, observed


def run_scenario(scenario: Scenario, source: str = "<scenario>") -> Verdict:
    """Run one scenario and return its verdict (never raises for a failing scenario)."""
    return Runner(scenario, source).run()
