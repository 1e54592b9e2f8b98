"""What a scenario run observed besides call results: queue messages, SQLite rows, the traffic log.

    device processes ──queue──> QueueDrain ──> QueueEvidence.accept ──> messages (checks, report)
                                                           └──> SqliteEvidence (astra.recorder)
    emulator.serve.traffic ──> TrafficView (times from the scenario start, checks, report)

Times are wall seconds from the start of the run, as everywhere in a scenario.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from astra import recorder
from scenarios.compare import describe_exception, short
from scenarios.verdict import Verdict

TRAFFIC_EXCERPT = 40
QUEUE_EXCERPT = 30


@dataclass(frozen=True)
class Message:
    """One ``(metadata, payload)`` queue message and when it arrived."""

    t: float
    metadata: Any
    payload: Any

    @property
    def device_name(self) -> Any:
        return self.metadata.get("device_name") if isinstance(self.metadata, dict) else None

    @property
    def kind(self) -> Any:
        return self.payload.get("type") if isinstance(self.payload, dict) else None

    @property
    def level_and_text(self) -> tuple[Any, str]:
        """``(level, text)`` of a log message, ``(None, SQL text)`` of a query."""
        data = self.payload.get("data") if isinstance(self.payload, dict) else self.payload
        if self.kind == "log" and isinstance(data, (list, tuple)) and len(data) == 2:
            return data[0], str(data[1])
        return None, str(data)

    def line(self) -> str:
        who = self.device_name if self.device_name is not None else "?"
        level, text = self.level_and_text
        if self.kind == "log":
            return f"+{self.t:7.3f} {who} log {level or '?'}: {text[:200]}"
        if self.kind == "query":
            return f"+{self.t:7.3f} {who} query: {text[:200]}"
        return f"+{self.t:7.3f} {who} {short(self.payload)}"


class SqliteEvidence:
    """A recorder database per run: astra.recorder with bound parameters, or the legacy SQL text.

    ``sql_text`` executes the SQL text of each polled value, as legacy consumers do, so a
    scenario can test that text's escaping.
    """

    def __init__(self, mode: str, verdict: Verdict) -> None:
        self.mode = mode
        self.verdict = verdict
        self._tmpdir = tempfile.TemporaryDirectory(prefix="scenario-")
        self._db = recorder.connect(Path(self._tmpdir.name) / "rehearsal.sqlite")
        self._lock = threading.Lock()

    def record(self, metadata: Any, payload: Any) -> None:
        with self._lock:
            try:
                if self.mode == "sql_text" and isinstance(payload, dict) and payload.get("type") == "query":
                    self._db.execute(payload["data"])
                    ok = True
                else:
                    ok = recorder.record(self._db, (metadata, payload))
                self._db.commit()
            except Exception as exc:
                self.verdict.fail("recorder", "every queue message stored in SQLite", f"{describe_exception(exc)} for {short(payload)}")
                return
        if not ok:
            self.verdict.fail("recorder", "every queue message usable by the recorder", f"rejected {short(payload)}")

    def select(self, table: str, where: dict[str, Any]) -> tuple[list[tuple], int, list[tuple]]:
        """Rows of ``table`` where every column equals its value; the table's row count; its latest rows.

        ``table`` and the column names were checked by the schema (plain names); values are bound.
        """
        clauses = " AND ".join(f'"{col}" = ?' for col in where) or "1"
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM {table} WHERE {clauses}", tuple(where.values())).fetchall()
            total = self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            latest = self._db.execute(f"SELECT * FROM {table} ORDER BY rowid DESC LIMIT 3").fetchall()
        return rows, total, latest

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._tmpdir.cleanup()


class QueueEvidence:
    """Every message the run's devices put on their queue, in order, stamped with its arrival time.

    ``handled`` counts the messages taken in full (kept and, with SQLite, stored), and
    :meth:`wait_beyond` lets a check wait for the next one instead of looking again and again.
    """

    def __init__(self, clock: Callable[[], float], sqlite: SqliteEvidence | None = None) -> None:
        self.clock = clock
        self.sqlite = sqlite
        self.handled = 0
        self._messages: list[Message] = []
        self._changed = threading.Condition()

    def accept(self, item: Any) -> None:
        """The QueueDrain handler."""
        try:
            metadata, payload = item
        except (TypeError, ValueError):
            metadata, payload = None, item
        with self._changed:
            self._messages.append(Message(self.clock(), metadata, payload))
        if self.sqlite is not None:
            self.sqlite.record(metadata, payload)
        with self._changed:
            self.handled += 1
            self._changed.notify_all()

    def wait_beyond(self, handled: int, timeout: float) -> bool:
        """Until more than ``handled`` messages were handled, for up to ``timeout`` s; False if none came."""
        with self._changed:
            return self._changed.wait_for(lambda: self.handled > handled, max(0.0, timeout))

    def messages(self) -> list[Message]:
        with self._changed:
            return list(self._messages)

    def capture(self, verdict: Verdict) -> None:
        msgs = self.messages()
        verdict.queue_total = len(msgs)
        verdict.queue = [m.line() for m in msgs[-QUEUE_EXCERPT:]]


class TrafficView:
    """The emulator's traffic log, with request times as seconds from the run's start."""

    def __init__(self, emu: Any, wall0: float) -> None:
        self.emu = emu
        self.wall0 = wall0

    def entries(self, **filters: Any) -> list[Any]:
        return list(self.emu.traffic.entries(**{k: v for k, v in filters.items() if v is not None}))

    def time_of(self, entry: Any) -> float:
        return entry.time - self.wall0  # TrafficEntry.time is wall-clock epoch seconds

    def line(self, e: Any) -> str:
        target = f"{e.device_type or '?'}/{'?' if e.device_number is None else e.device_number}/{e.member or '?'}"
        err = e.error_number
        return (
            f"+{self.time_of(e):7.3f} {e.verb:4} {target:36} status={e.status} "
            f"err={hex(err) if isinstance(err, int) and err else err}"
            f"{' rules=' + ','.join(map(str, e.rules)) if e.rules else ''}"
            f"{f' {e.duration_s:.3f}s' if isinstance(e.duration_s, (int, float)) else ''}"
        )

    def capture(self, verdict: Verdict) -> None:
        entries = self.entries()
        verdict.traffic_total = len(entries)
        verdict.traffic = [self.line(e) for e in entries[-TRAFFIC_EXCERPT:]]
