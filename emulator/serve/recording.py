"""A session on file: every request and answer, one JSON line each (``--record FILE``).

The recorder wraps a WSGI app (the emulator's, or the proxy's forwarder), so a line holds what
the app answered, after the content-level faults (``ascom_error``, ``bad_json``, ...) and before
the socket-level ones: a request a connection-stage fault (drop, refuse, ...) kept from the app
has no line (the traffic log has it). The control API (``/emulator/``) is never recorded. A line::

    {"time": 1764780000.123, "method": "PUT", "path": "/api/v1/dome/0/slewtoazimuth",
     "query": "", "form": "Azimuth=90&ClientID=1&ClientTransactionID=7",
     "status": 200, "content_type": "application/json", "body": "{...}", "duration_s": 0.0012}

``time`` is the wall-clock epoch second the request reached the app, ``duration_s`` how long the
app took to answer it. A body that is not UTF-8 (ImageBytes) is ``body_base64`` instead of
``body``. The request's ``Accept`` header, which chooses ImageBytes, is kept as ``accept``
(no other header is: credentials stay out of the file). Lines are written whole, under a lock, and flushed, so a session cut short still
reads back up to its last exchange. Replay (:mod:`proxy.replay`) and ``alpaca-scenarios
from-recording`` read the file with :func:`read_recording`.
"""

from __future__ import annotations

import base64
import fnmatch
import io
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from emulator.faults.engine import request_info

CONTROL_PREFIX = "/emulator/"

#: Members whose values move with the clock on a simulator and a real device alike.
TIME_VARYING: tuple[str, ...] = (
    "*/siderealtime",
    "*/utcdate",
    "*/devicestate",  # carries a TimeStamp
    "*/lastexposurestarttime",
    "*/timesincelastupdate",
    "telescope/altitude",
    "telescope/azimuth",
    "telescope/rightascension",
    "telescope/declination",
    "camera/ccdtemperature",
    "camera/heatsinktemperature",
    "camera/coolerpower",
)


class ValueFilter:
    """Which members' values a replay or a scenario made from a recording compares: all but
    those matching a pattern, ``type/member`` or ``type/number/member`` with shell wildcards
    (:data:`TIME_VARYING` unless ``compare_all``, plus ``ignore``)."""

    def __init__(self, ignore: Iterable[str] = (), compare_all: bool = False) -> None:
        self.patterns = tuple(p.lower() for p in (() if compare_all else TIME_VARYING)) + tuple(p.lower() for p in ignore)

    def ignored(self, path: str) -> bool:
        info = request_info("GET", path)
        if info.member is None:
            return False
        short = f"{info.device_type}/{info.member}"
        full = f"{info.device_type}/{info.device_number}/{info.member}"
        return any(fnmatch.fnmatchcase(short if p.count("/") == 1 else full, p) for p in self.patterns)


@dataclass(frozen=True)
class Exchange:
    """One recorded request and its answer."""

    time: float
    method: str
    path: str
    query: str
    form: str
    status: int
    content_type: str
    body: bytes
    duration_s: float
    accept: str = ""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def envelope(self) -> dict[str, Any] | None:
        """The answer's JSON envelope, or None (plain text, ImageBytes, not an object)."""
        if "json" not in self.content_type.lower():
            return None
        try:
            doc = json.loads(self.body)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def as_line(self) -> str:
        doc: dict[str, Any] = {
            "time": round(self.time, 6),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "form": self.form,
            "status": self.status,
            "content_type": self.content_type,
        }
        try:
            doc["body"] = self.body.decode("utf-8")
        except UnicodeDecodeError:
            doc["body_base64"] = base64.b64encode(self.body).decode("ascii")
        doc["duration_s"] = round(self.duration_s, 6)
        if self.accept:
            doc["accept"] = self.accept
        return json.dumps(doc, separators=(",", ":"))


class RecordingError(ValueError):
    """A recording file that cannot be read; the message names the file and the line."""


_REQUIRED = {"time": (int, float), "method": str, "path": str, "status": int}


def exchange_from_dict(doc: Any, where: str) -> Exchange:
    if not isinstance(doc, dict):
        raise RecordingError(f"{where}: an exchange is a JSON object, got {type(doc).__name__}")
    for key, kind in _REQUIRED.items():
        if key not in doc:
            raise RecordingError(f"{where}: missing key {key!r}")
        if not isinstance(doc[key], kind) or isinstance(doc[key], bool):
            raise RecordingError(f"{where}: {key!r} has the wrong type ({type(doc[key]).__name__})")
    if "body_base64" in doc:
        try:
            body = base64.b64decode(doc["body_base64"], validate=True)
        except (ValueError, TypeError):
            raise RecordingError(f"{where}: 'body_base64' is not base64") from None
    else:
        body = str(doc.get("body", "")).encode("utf-8")
    return Exchange(
        time=float(doc["time"]),
        method=doc["method"].upper(),
        path=doc["path"],
        query=str(doc.get("query", "")),
        form=str(doc.get("form", "")),
        status=doc["status"],
        content_type=str(doc.get("content_type", "")),
        body=body,
        duration_s=float(doc.get("duration_s", 0.0)),
        accept=str(doc.get("accept", "")),
    )


def read_recording(path: str | Path) -> list[Exchange]:
    """Every exchange of a recording, in file order; RecordingError names the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read recording: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RecordingError(f"{path}: not a recording (not UTF-8 text)") from None
    out: list[Exchange] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except ValueError as exc:
            raise RecordingError(f"{path}:{number}: not a JSON line: {exc}") from None
        out.append(exchange_from_dict(doc, f"{path}:{number}"))
    return out


class Recorder:
    """Writes every exchange of a wrapped WSGI app to ``path`` (JSON Lines, truncated at open).

    ``recorder.wrap(app)`` is the recording app; ``close()`` ends the file. ``exchanges`` counts
    the lines written.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: io.TextIOWrapper | None = self.path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self.exchanges = 0

    def write(self, exchange: Exchange) -> None:
        line = exchange.as_line() + "\n"
        with self._lock:
            if self._file is None:
                return
            self._file.write(line)
            self._file.flush()
            self.exchanges += 1

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def wrap(self, app: Callable) -> Callable:
        """The WSGI app that serves through ``app`` and records each exchange."""

        def recording_app(environ: dict, start_response: Callable) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path.startswith(CONTROL_PREFIX):
                return app(environ, start_response)
            started, t0 = time.time(), time.perf_counter()
            stream = environ.get("wsgi.input")
            length = environ.get("CONTENT_LENGTH") or ""
            form = b""
            if stream is not None:
                form = stream.read(int(length)) if length.isdigit() else stream.read()
                environ["wsgi.input"] = io.BytesIO(form)
            captured: dict[str, Any] = {}

            def capture(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], Any]:
                captured["status"], captured["headers"] = status, headers
                return start_response(status, headers, exc_info)

            app_iter = app(environ, capture)
            try:
                body = b"".join(app_iter)
            finally:
                close = getattr(app_iter, "close", None)
                if close is not None:
                    close()
            status = captured.get("status", "500")
            content_type = next((v for k, v in captured.get("headers", ()) if k.lower() == "content-type"), "")
            self.write(
                Exchange(
                    time=started,
                    method=environ.get("REQUEST_METHOD", ""),
                    path=path,
                    query=environ.get("QUERY_STRING", ""),
                    form=form.decode("utf-8", "replace"),
                    status=int(status[:3]) if status[:3].isdigit() else 0,
                    content_type=content_type,
                    body=body,
                    duration_s=time.perf_counter() - t0,
                    accept=environ.get("HTTP_ACCEPT", ""),
                )
            )
            return [body]

        return recording_app
