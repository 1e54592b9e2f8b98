"""The bounded request log (``emu.traffic``, ``GET /emulator/v1/traffic``).

One :class:`TrafficEntry` per request the server saw, appended once when its fate is known:
answered, dropped, reset, hung, or taken down with the server. Scenarios assert on it
("exactly one PUT startexposure reached the camera"), so nothing is logged twice and the
control API itself is never logged. Old entries fall off the end of a deque, so a long
rehearsal cannot eat the memory.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_MAXLEN = 10000


@dataclass
class TrafficEntry:
    """One request. ``status`` is None when no HTTP answer was sent (see ``outcome``)."""

    time: float  # wall-clock epoch seconds when the server started handling it
    sim_time: float  # the emulator's simulated seconds at that moment
    client: str  # "host:port" of the client
    verb: str
    path: str
    device_type: str | None
    device_number: int | None
    member: str | None
    params: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    error_number: int | None = None
    rules: list[str] = field(default_factory=list)  # names (or ids) of the rules that fired
    duration_s: float = 0.0
    outcome: str = "answered"  # answered | dropped | reset | hung | refused | down | truncated | silent

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrafficLog:
    """Thread-safe, bounded, filterable list of :class:`TrafficEntry`."""

    def __init__(self, maxlen: int = DEFAULT_MAXLEN) -> None:
        self._entries: deque[TrafficEntry] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    @property
    def maxlen(self) -> int:
        return self._entries.maxlen or 0

    def record(self, entry: TrafficEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(
        self,
        device_type: str | None = None,
        device_number: int | None = None,
        member: str | None = None,
        verb: str | None = None,
        since: float | None = None,
        rule: str | None = None,
    ) -> list[TrafficEntry]:
        """Entries in the order they completed, filtered; ``since`` is a wall-clock epoch time."""
        with self._lock:
            items = list(self._entries)
        dt = device_type.lower() if device_type else None
        mem = member.lower() if member else None
        vb = verb.upper() if verb else None
        return [
            e
            for e in items
            if (dt is None or e.device_type == dt)
            and (device_number is None or e.device_number == device_number)
            and (mem is None or e.member == mem)
            and (vb is None or e.verb == vb)
            and (since is None or e.time >= since)
            and (rule is None or rule in e.rules)
        ]

    def count(self, **filters: Any) -> int:
        """How many entries pass the same filters as :meth:`entries`."""
        return len(self.entries(**filters))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
