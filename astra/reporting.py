"""What a device puts on its queue: log lines and polled values, as ``(metadata, payload)`` pairs.

``metadata = {"ip", "device_type", "device_number", "device_name"}``; a log line is
``{"type": "log", "data": (level, text)}``; a polled value is ``{"type": "query", "data":
"<INSERT INTO polling ...>", "table", "method", "value", "device_value", "datetime"}`` (the SQL
text is escaped by astra.recorder; the extra keys carry the value in structured form).
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any

from astra import recorder

log = logging.getLogger("astra.alpaca_device_process")

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class Reporter:
    """Puts one device's messages on its queue (None: none) and mirrors log lines to ``logging``."""

    def __init__(self, queue: Any, metadata: dict[str, Any], *, debug: bool = False) -> None:
        self.queue = queue
        self.metadata = metadata
        self.debug = debug
        self.name = metadata.get("device_name")

    def put(self, payload: dict[str, Any]) -> None:
        if self.queue is None:
            return
        try:
            self.queue.put((self.metadata, payload))
        except Exception as exc:
            log.error("[%s] could not put on the queue: %s", self.name, exc)

    def log(self, level: str, text: str) -> None:
        """A log line to the queue (debug lines only when ``debug``) and to ``logging``."""
        log.log(_LEVELS.get(level, logging.INFO), "[%s] %s", self.name, text)
        if level == "debug" and not self.debug:
            return
        self.put({"type": "log", "data": (level, text)})

    def polled(self, method: str, value: Any, when: _dt.datetime) -> None:
        """A polled value, as the legacy SQL text and in structured form."""
        self.put({
            "type": "query",
            "data": recorder.polling_insert_sql(self.metadata["device_type"], self.name, method, value, when),
            "table": "polling",
            "method": method,
            "value": value,
            "device_value": recorder.device_value_text(value),
            "datetime": when,
        })
