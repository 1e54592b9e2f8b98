"""The timeline: steps in order, each placed in wall time, under the scenario's deadline.

A step starts ``at`` seconds from the timeline's start or ``after`` seconds after the previous
step ended (0 when neither is given). :class:`Run` is what steps act on and report to; it knows
nothing of step kinds (each kind's ``run`` says what it does).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from scenarios.verdict import TimelineEntry, Verdict

if TYPE_CHECKING:
    from scenarios.evidence import QueueEvidence, SqliteEvidence, TrafficView
    from scenarios.rig import DeviceRig


class Playable(Protocol):
    """What the timeline needs of a step (:class:`scenarios.steps.base.Step` has it)."""

    at: float | None
    after: float | None
    label: str | None

    def timeline_text(self) -> str: ...

    def run(self, run: "Run", where: str) -> str | None: ...


class ScenarioAborted(Exception):
    """The scenario cannot go on (its deadline passed, or set-up failed)."""


class Run:
    """One run of one scenario: its parts, its clock and deadline, labels, background calls, verdict."""

    def __init__(self, verdict: Verdict, timeout_s: float) -> None:
        self.verdict = verdict
        self.timeout_s = timeout_s
        self.emu: Any = None
        self.rig: "DeviceRig | None" = None
        self.messages: "QueueEvidence | None" = None
        self.sqlite: "SqliteEvidence | None" = None
        self.traffic: "TrafficView | None" = None
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.deadline = self.t0 + timeout_s
        self.step_starts: dict[str, float] = {}  # label -> monotonic time it started
        self.background: dict[str, Any] = {}  # label -> calls still running, with .collect(run, timeout)
        self.faults: dict[str, Any] = {}  # label -> the live emulator fault rule
        self._at_end: list[Callable[[], None]] = []

    def now(self) -> float:
        """Wall seconds since the run started."""
        return time.monotonic() - self.t0

    def device(self, name: str) -> Any:
        assert self.rig is not None
        return self.rig.devices[name]

    def at_end(self, check: Callable[[], None]) -> None:
        """Run ``check`` after the last step, once the devices are stopped (e.g. "the rule fired")."""
        self._at_end.append(check)

    def end_checks(self) -> None:
        for check in self._at_end:
            check()

    def note(self, start: float, text: str, outcome: str = "ok") -> None:
        self.verdict.timeline.append(TimelineEntry(start, self.now(), text, outcome))

    def sleep_until(self, t_mono: float) -> None:
        """Wait until a monotonic time; ScenarioAborted (after waiting out the deadline) if it lies beyond."""
        if t_mono > self.deadline:
            remaining = self.deadline - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            raise ScenarioAborted(f"scenario deadline of {self.timeout_s:g} s passed (timeout_s)")
        delay = t_mono - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def play(run: Run, steps: Iterable[Playable]) -> None:
    """Every step in order; each one's outcome goes to the timeline."""
    start = time.monotonic()
    prev_end = start
    for i, step in enumerate(steps):
        run.sleep_until(start + step.at if step.at is not None else prev_end + (step.after or 0.0))
        if time.monotonic() > run.deadline:
            raise ScenarioAborted(f"scenario deadline of {run.timeout_s:g} s passed before steps[{i}]")
        t = run.now()
        if step.label:
            run.step_starts[step.label] = time.monotonic()
        where = f"steps[{i}] {step.timeline_text()}"
        failures_before = len(run.verdict.failures)
        outcome = step.run(run, where)
        if outcome is None:
            outcome = "ok" if len(run.verdict.failures) == failures_before else "FAILED"
        run.note(t, where, outcome)
        prev_end = time.monotonic()
