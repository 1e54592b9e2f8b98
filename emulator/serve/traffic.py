"""The bounded request log (``emu.traffic``, ``GET /emulator/v1/traffic``).

One :class:`TrafficEntry` per request the server saw, appended once when its fate is known:
answered, dropped, reset, hung, or taken down with the server. Scenarios assert on it
("exactly one PUT startexposure reached the camera"), so nothing is logged twice and the
control API itself is never logged. Old entries fall off the end of a deque, so a long
rehearsal cannot eat the memory.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

from emulator.faults.engine import request_info
from emulator.http.protocol import error_number_of, parse_form

DEFAULT_MAXLEN = 10000
#: Answers up to this size are kept on the entry and their ErrorNumber read on demand.
_KEEP_BODY = 2048

#: Marks a field not derived yet (None is a real value for most of them).
_LAZY: Any = type("_Lazy", (), {"__repr__": lambda self: "<lazy>", "__slots__": ()})()


class TrafficEntry:
    """One request. ``status`` is None when no HTTP answer was sent (see ``outcome``).

    Fields: ``time`` (wall-clock epoch seconds when the server started handling it),
    ``sim_time`` (the emulator's simulated seconds then), ``client`` ("host:port"), ``verb``,
    ``path``, ``device_type``, ``device_number``, ``member``, ``params`` (dict), ``status``,
    ``error_number``, ``rules`` (names, or ids, of the rules that fired), ``shadowed`` (rules that
    would have fired but did not act: an earlier rule took their stage), ``duration_s`` and
    ``outcome`` (answered | unanswered | dropped | reset | hung | refused | down | truncated |
    closed | garbage | silent).

    Why lazy. The server logs every request, so recording must cost next to nothing: it keeps
    what it has at hand (the peer address, the raw query string or form body) and the fields
    derived from them (``client``, ``device_type``/``device_number``/``member`` from the path,
    ``params``) are worked out on first read, once, and then kept. Reading an entry gives the
    same values an eager log would have stored. Passing a field explicitly stores it as is.
    """

    __slots__ = (
        "time",
        "sim_time",
        "_client",
        "verb",
        "path",
        "_device_type",
        "_device_number",
        "_member",
        "_params",
        "_status",
        "_error_number",
        "_body",
        "_rules",
        "_shadowed",
        "duration_s",
        "outcome",
    )
    FIELDS = (
        "time",
        "sim_time",
        "client",
        "verb",
        "path",
        "device_type",
        "device_number",
        "member",
        "params",
        "status",
        "error_number",
        "rules",
        "shadowed",
        "duration_s",
        "outcome",
    )
    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value (as the dataclass was)

    def __init__(
        self,
        time: float,
        sim_time: float,
        client: str | tuple,
        verb: str,
        path: str,
        device_type: str | None = _LAZY,
        device_number: int | None = _LAZY,
        member: str | None = _LAZY,
        params: dict[str, str] | str | bytes | None = None,
        status: int | None = None,
        error_number: int | None = None,
        rules: list[str] | None = None,
        duration_s: float = 0.0,
        outcome: str = "answered",
        shadowed: list[str] | None = None,
    ) -> None:
        """``client`` may be the peer address tuple; ``params`` the raw query string or form
        body (parsed on first read); the three device fields, left out, come from ``path``."""
        self.time = time
        self.sim_time = sim_time
        self._client = client
        self.verb = verb
        self.path = path
        self._device_type = device_type
        self._device_number = device_number
        self._member = member
        self._params = params
        self._status = status
        self._error_number = error_number
        self._body: bytes | None = None
        self._rules = rules
        self._shadowed = shadowed
        self.duration_s = duration_s
        self.outcome = outcome

    # -- derived on first read -----------------------------------------------------------------

    @property
    def client(self) -> str:
        c = self._client
        if not isinstance(c, str):
            c = self._client = f"{c[0]}:{c[1]}" if isinstance(c, tuple) else str(c)
        return c

    @client.setter
    def client(self, value: str) -> None:
        self._client = value

    def _classify(self) -> None:
        info = request_info(self.verb, self.path)
        if self._device_type is _LAZY:
            self._device_type = info.device_type
        if self._device_number is _LAZY:
            self._device_number = info.device_number
        if self._member is _LAZY:
            self._member = info.member

    @property
    def device_type(self) -> str | None:
        if self._device_type is _LAZY:
            self._classify()
        return self._device_type

    @device_type.setter
    def device_type(self, value: str | None) -> None:
        self._device_type = value

    @property
    def device_number(self) -> int | None:
        if self._device_number is _LAZY:
            self._classify()
        return self._device_number

    @device_number.setter
    def device_number(self, value: int | None) -> None:
        self._device_number = value

    @property
    def member(self) -> str | None:
        if self._member is _LAZY:
            self._classify()
        return self._member

    @member.setter
    def member(self, value: str | None) -> None:
        self._member = value

    @property
    def params(self) -> dict[str, str]:
        p = self._params
        if not isinstance(p, dict):
            # As the log shows it: undecodable bytes replaced, the last of a repeated key wins.
            p = self._params = dict(parse_form(p, strict=False)) if p else {}
        return p

    @params.setter
    def params(self, value: dict[str, str]) -> None:
        self._params = value

    @property
    def status(self) -> int | None:
        s = self._status
        if s.__class__ is str:
            try:
                s = int(s[:3])
            except ValueError:
                s = None
            self._status = s
        return s

    @status.setter
    def status(self, value: int | None) -> None:
        self._status = value

    @property
    def error_number(self) -> int | None:
        n = self._error_number
        if n is _LAZY:
            n = self._error_number = error_number_of(self._body)
            self._body = None
        return n

    @error_number.setter
    def error_number(self, value: int | None) -> None:
        self._error_number = value
        self._body = None

    def answered(self, status_line: str, body: bytes) -> bool:
        """Note the answer from its status line and (first) body chunk, to be parsed on first
        read; False when the body is not a small JSON envelope and the caller must work out
        ``error_number`` itself (ImageBytes, plain text)."""
        self._status = status_line
        if body[:1] == b"{" and len(body) <= _KEEP_BODY:
            self._error_number = _LAZY
            self._body = body
            return True
        return not body

    @property
    def rules(self) -> list[str]:
        r = self._rules
        if r is None:
            r = self._rules = []
        return r

    @rules.setter
    def rules(self, value: list[str]) -> None:
        self._rules = value

    @property
    def shadowed(self) -> list[str]:
        s = self._shadowed
        if s is None:
            s = self._shadowed = []
        return s

    @shadowed.setter
    def shadowed(self, value: list[str]) -> None:
        self._shadowed = value

    # -- the dataclass-like rest ----------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in self.FIELDS}
        d["params"] = dict(d["params"])
        d["rules"] = list(d["rules"])
        d["shadowed"] = list(d["shadowed"])
        return d

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.FIELDS)

    def __repr__(self) -> str:
        return "TrafficEntry(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.FIELDS) + ")"


class TrafficLog:
    """Thread-safe, bounded, filterable list of :class:`TrafficEntry`."""

    def __init__(self, maxlen: int = DEFAULT_MAXLEN) -> None:
        self._entries: deque[TrafficEntry] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        #: outcome -> how many requests had it since the log was made (not bounded by maxlen).
        self.outcomes: Counter[str] = Counter()
        #: how many of them a fault rule acted on (likewise since the log was made).
        self.faulted = 0

    @property
    def maxlen(self) -> int:
        return self._entries.maxlen or 0

    def record(self, entry: TrafficEntry) -> None:
        with self._lock:
            self._entries.append(entry)
            self.outcomes[entry.outcome] += 1
            if entry._rules:
                self.faulted += 1

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
