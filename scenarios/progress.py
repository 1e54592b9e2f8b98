"""What ``alpaca-scenarios run`` prints: a line per scenario as it ends, the reports of the
failures, and a summary table; not pytest's own output.

It is a pytest plugin object handed to ``pytest.main`` with pytest's terminal reporter switched
off. Every hook it uses runs on the controller under pytest-xdist too (workers forward their
reports), so ``-n auto`` prints the same lines, in the order scenarios end. On a terminal a
status line shows what is still running and how many are done (rich); piped or in CI there is
no status line, only the plain lines.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

VERDICTS = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "error": "ERROR"}


@dataclass
class Row:
    nodeid: str
    file: str
    name: str
    verdict: str = "passed"
    seconds: float = 0.0
    report: str = ""


def _split(nodeid: str) -> tuple[str, str]:
    file, _, name = nodeid.partition("::")
    return file, name or file


class Progress:
    """The run's plain-text face (see the module docstring)."""

    def __init__(self, out: IO[str] | None = None, live: bool | None = None, lines: bool = True) -> None:
        self.out = out or sys.stdout
        self.lines = lines
        self.live_wanted = self.out.isatty() if live is None else live
        self.rows: dict[str, Row] = {}
        self.collect_errors: list[tuple[str, str]] = []
        self.running: dict[str, float] = {}
        self.total = 0
        self.started = time.monotonic()
        self._status: Any = None

    # -- printing --------------------------------------------------------------------------------

    def _print(self, text: str = "") -> None:
        if self._status is not None:
            self._status.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.out, flush=True)

    def _update_status(self) -> None:
        if self._status is None:
            return
        now = time.monotonic()
        running = ", ".join(f"{_split(n)[1]} ({now - t:.0f} s)" for n, t in sorted(self.running.items(), key=lambda kv: kv[1]))
        done = sum(1 for r in self.rows.values() if r.nodeid not in self.running)
        self._status.update(f"{done}/{self.total} done; running: {running or '-'}")

    # -- pytest hooks ----------------------------------------------------------------------------

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = str(report.longrepr).strip()
            self.collect_errors.append((report.nodeid, text))
            self._print(f"ERROR {report.nodeid}: could not load it")
            self._print("      " + text.replace("\n", "\n      "))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.total = len(session.items)
        if self.total:
            files = len({_split(i.nodeid)[0] for i in session.items})
            self._print(f"running {self.total} scenario{'s' * (self.total != 1)} from {files} file{'s' * (files != 1)}")

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if self.live_wanted:
            from rich.console import Console

            self._status = Console(file=self.out).status("collecting scenarios")
            self._status.start()

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        file, name = _split(nodeid)
        self.rows.setdefault(nodeid, Row(nodeid, file, name))
        self.running[nodeid] = time.monotonic()
        self._update_status()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        file, name = _split(report.nodeid)
        row = self.rows.setdefault(report.nodeid, Row(report.nodeid, file, name))
        row.seconds += report.duration
        if report.failed:
            row.verdict = "failed" if report.when == "call" else "error"
            row.report = row.report or report.longreprtext.strip()
        elif report.skipped and row.verdict == "passed":
            row.verdict = "skipped"
            row.report = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        if report.when == "teardown":
            self.running.pop(report.nodeid, None)
            detail = f"  ({row.report})" if row.verdict == "skipped" and row.report else ""
            if self.lines:
                    self._print(f"{VERDICTS[row.verdict]:<5} {row.name}  [{Path(row.file).name}]  {row.seconds:.2f} s{detail}")
            self._update_status()

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        failed = [r for r in self.rows.values() if r.verdict in ("failed", "error")]
        for row in failed:
            self._print()
            self._print(f"---- {VERDICTS[row.verdict]} {row.name} ({row.file}) ----")
            self._print(row.report)
        if not self.rows and not self.collect_errors:
            self._print("no scenarios found (a scenario file is a .toml file with [[scenario]] tables)")
            return
        self._print()
        for line in self.table():
            self._print(line)
        self._print(self.totals_line(time.monotonic() - self.started))

    # -- the summary -----------------------------------------------------------------------------

    def table(self) -> list[str]:
        """One row per file: how many scenarios passed, failed, errored, skipped, and their time."""
        by_file: dict[str, list[Row]] = {}
        for row in self.rows.values():
            by_file.setdefault(row.file, []).append(row)
        for nodeid, _ in self.collect_errors:
            by_file.setdefault(nodeid, [])
        head = ("file", "passed", "failed", "errors", "skipped", "time")
        body = []
        for file in sorted(by_file):
            rows = by_file[file]
            count = {v: sum(1 for r in rows if r.verdict == v) for v in VERDICTS}
            errors = count["error"] + sum(1 for n, _ in self.collect_errors if n == file)
            body.append((file, str(count["passed"]), str(count["failed"]), str(errors), str(count["skipped"]), f"{sum(r.seconds for r in rows):.1f} s"))
        widths = [max(len(cells[i]) for cells in [head, *body]) for i in range(len(head))]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        return [line(head), line(tuple("-" * w for w in widths)), *map(line, body)]

    def totals_line(self, wall_s: float) -> str:
        count = {v: sum(1 for r in self.rows.values() if r.verdict == v) for v in VERDICTS}
        count["error"] += len(self.collect_errors)
        parts = [f"{count['passed']} passed"]
        words = {"failed": "failed", "error": "error" if count["error"] == 1 else "errors", "skipped": "skipped"}
        parts += [f"{count[v]} {words[v]}" for v in ("failed", "error", "skipped") if count[v]]
        n = len(self.rows)
        return f"{n} scenario{'s' * (n != 1)}: {', '.join(parts)} in {wall_s:.1f} s"
