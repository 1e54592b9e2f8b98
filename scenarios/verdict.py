"""What one scenario run found, and the report that explains it without running it again.

A verdict lists every broken expectation as expected against observed, with the timeline, an
excerpt of the emulator's traffic log, the queue messages, the seed and, like Hypothesis, the
command that re-runs only this scenario.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


def rerun_command(source: str, name: str) -> str:
    """``alpaca-scenarios run FILE -k NAME``: the command that runs this one scenario again.

    The file is shown relative to the working directory when it lies below it. ``-k`` given a
    scenario's exact name selects that scenario alone (see :mod:`scenarios.cli`).
    """
    path = Path(source)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            pass
    return f"alpaca-scenarios run {shlex.quote(str(path))} -k {shlex.quote(name)}"


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

    @property
    def rerun(self) -> str:
        return rerun_command(self.source, self.name)

    def fail(self, where: str, expected: str, observed: str) -> None:
        self.failures.append(Failure(where, expected, observed))

    def report(self) -> str:
        """Human-readable: expected vs observed, timeline, traffic excerpt, queue messages, seed, re-run command."""
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
        lines += ["", _excerpt_title("traffic log", len(self.traffic), self.traffic_total, " requests")]
        lines += [f"  {t}" for t in self.traffic] or ["  (none)"]
        lines += ["", _excerpt_title("queue messages", len(self.queue), self.queue_total, "")]
        lines += [f"  {q}" for q in self.queue] or ["  (none)"]
        lines += ["", f"seed: {self.seed}"]
        if not self.passed:
            lines += [
                "",
                f"re-run only this scenario (same seed, {self.seed}, from the file):",
                f"  {self.rerun}",
            ]
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
            "rerun": self.rerun,
        }


def _excerpt_title(what: str, shown: int, total: int, unit: str) -> str:
    return f"{what} ({'last ' + str(shown) + ' of ' if shown < total else ''}{total}{unit}):"
