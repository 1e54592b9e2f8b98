"""Queue -> SQLite: what AlpacaDevice puts on its queue, stored with bound parameters.

Messages are ``(metadata, payload)`` pairs (see :mod:`astra.alpaca_device_process`). A polled
value carries both the legacy SQL text (``payload["data"]``, kept for consumers that execute
it) and the value in structured form; the recorder stores the structured form with bound
parameters and never executes SQL text it was sent, unless told to for messages that lack the
structured form (``execute_sql_text=True``, for queues fed by other producers).

Tables: ``polling(device_type, device_name, device_command, device_value, datetime)`` (the
original columns) and ``log(datetime, ip, device_type, device_number, device_name, level, message)``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import queue as _queue
import sqlite3
from pathlib import Path
from typing import Any

from astra.queues import QueueDrain

log = logging.getLogger(__name__)

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS polling (device_type TEXT, device_name TEXT, device_command TEXT, "
    "device_value TEXT, datetime TEXT)",
    "CREATE TABLE IF NOT EXISTS log (datetime TEXT, ip TEXT, device_type TEXT, device_number INTEGER, "
    "device_name TEXT, level TEXT, message TEXT)",
)


def format_datetime(when: _dt.datetime) -> str:
    """UTC ``%Y-%m-%d %H:%M:%S.%f``, the original's datetime column format."""
    if when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc)
    return when.strftime(DATETIME_FORMAT)


def sql_literal(text: str) -> str:
    """``text`` as an SQLite string literal that reads back exactly, whatever it contains.

    Quotes are doubled; NUL (which cannot appear inside SQL text) is spliced in with ``char(0)``.
    Newlines and any unicode are legal inside an SQLite literal as they are.
    """
    parts = text.split("\x00")
    quoted = ["'" + part.replace("'", "''") + "'" for part in parts]
    if len(quoted) == 1:
        return quoted[0]
    return "(" + " || char(0) || ".join(quoted) + ")"


def device_value_text(value: Any) -> str:
    """How a polled value is stored in ``device_value`` (``str``, so ``False`` is ``'False'``)."""
    return str(value)


def polling_insert_sql(device_type: str, device_name: str, method: str, value: Any, when: _dt.datetime) -> str:
    """The legacy ``INSERT INTO polling ...`` text, correctly escaped."""
    values = ", ".join(
        sql_literal(v) for v in (str(device_type), str(device_name), str(method), device_value_text(value), format_datetime(when))
    )
    return f"INSERT INTO polling (device_type, device_name, device_command, device_value, datetime) VALUES ({values})"


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (and create if needed) a recorder database."""
    conn = sqlite3.connect(str(path), check_same_thread=False)
    for statement in SCHEMA:
        conn.execute(statement)
    conn.commit()
    return conn


def record(conn: sqlite3.Connection, message: Any, *, execute_sql_text: bool = False) -> bool:
    """Store one queue message; returns False (and logs why) for a message it cannot use."""
    try:
        metadata, payload = message
        kind = payload["type"]
    except (TypeError, ValueError, KeyError):
        log.warning("recorder: not an AlpacaDevice queue message: %r", message)
        return False
    metadata = metadata or {}
    if kind == "query":
        if "method" in payload and "value" in payload:
            when = payload.get("datetime")
            stamp = format_datetime(when) if isinstance(when, _dt.datetime) else str(when)
            conn.execute(
                "INSERT INTO polling (device_type, device_name, device_command, device_value, datetime) VALUES (?, ?, ?, ?, ?)",
                (
                    str(metadata.get("device_type")),
                    str(metadata.get("device_name")),
                    str(payload["method"]),
                    payload.get("device_value", device_value_text(payload["value"])),
                    stamp,
                ),
            )
            return True
        if execute_sql_text and isinstance(payload.get("data"), str):
            conn.execute(payload["data"])
            return True
        log.warning("recorder: query message without structured value ignored")
        return False
    if kind == "log":
        try:
            level, text = payload["data"]
        except (TypeError, ValueError):
            log.warning("recorder: malformed log message: %r", payload)
            return False
        conn.execute(
            "INSERT INTO log (datetime, ip, device_type, device_number, device_name, level, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                format_datetime(_dt.datetime.now(_dt.timezone.utc)),
                metadata.get("ip"),
                metadata.get("device_type"),
                metadata.get("device_number"),
                metadata.get("device_name"),
                str(level),
                str(text),
            ),
        )
        return True
    log.warning("recorder: unknown message type %r", kind)
    return False


def drain(q: Any, conn: sqlite3.Connection, *, timeout: float = 0.0, execute_sql_text: bool = False) -> int:
    """Store every message now on ``q`` (waiting up to ``timeout`` for the first); returns how many."""
    count = 0
    wait = timeout
    while True:
        try:
            message = q.get(timeout=wait) if wait > 0 else q.get_nowait()
        except (_queue.Empty, EOFError, OSError):
            break
        wait = 0.0
        if record(conn, message, execute_sql_text=execute_sql_text):
            count += 1
    conn.commit()
    return count


class Recorder:
    """Drains a queue into SQLite in a thread until stopped (use as a context manager).

    The taking is :class:`astra.queues.QueueDrain`'s; each batch is one transaction.
    """

    def __init__(self, path: str | Path, q: Any, *, execute_sql_text: bool = False, poll_s: float = 0.1) -> None:
        self.path = path
        self.queue = q
        self.execute_sql_text = execute_sql_text
        self.poll_s = poll_s
        self.recorded = 0
        self._conn: sqlite3.Connection | None = None
        self._drain: QueueDrain | None = None

    def start(self) -> "Recorder":
        self._conn = connect(self.path)
        self._drain = QueueDrain(self.queue, self._store, poll_s=self.poll_s, flush=self._conn.commit, name="astra-recorder")
        self._drain.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after storing what is already on the queue."""
        if self._drain is None or self._conn is None:
            return
        if self._drain.stop(timeout):
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Recorder":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _store(self, message: Any) -> None:
        assert self._conn is not None
        if record(self._conn, message, execute_sql_text=self.execute_sql_text):
            self.recorded += 1
