"""Replay: a recorded session sent again to a server, and every answer that differs reported.

Each exchange of the recording (:mod:`emulator.serve.recording`) is sent as it was recorded
(method, path, query, form body: the same ClientID and ClientTransactionID; its Accept header),
one after the
other, at its recorded offset from the first divided by ``speed`` (``speed=None``: as fast as
the answers come; an exchange whose time has passed is sent at once). Its answer is compared
with the recorded one:

    status         the HTTP status
    envelope       the set of keys of a JSON answer, ErrorNumber, ClientTransactionID (the echo
                   must match), and Value, unless the member's value is ignored (below)
    plain text     the body (a 400's reason)
    ImageBytes     the bytes, but the ServerTransactionID field
    timing         the answer's round trip against the recorded duration, beyond ``tolerance_ms``
    answer         no answer at all (refused, reset, timed out)

Never compared: ServerTransactionID (each server counts its own), ErrorMessage (free text),
headers. Values that change with time on any server (clocks, the sky, temperatures settling)
are ignored by member pattern, ``type/member`` or ``type/number/member`` with shell wildcards:
:data:`TIME_VARYING` by default; ``ignore`` adds patterns, ``compare_all`` drops the defaults.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from emulator.serve.recording import TIME_VARYING, Exchange, ValueFilter, read_recording
from proxy.upstream import Upstream, UpstreamFailure, parse_address

_IMAGEBYTES_SERVER_TX = slice(12, 16)


@dataclass(frozen=True)
class Difference:
    """One way a replayed answer differs from the recorded one."""

    index: int  # 1-based line of the exchange among the recording's exchanges
    method: str
    path: str
    what: str  # status | value | error_number | client_transaction_id | keys | body | timing | answer
    recorded: Any
    replayed: Any

    def __str__(self) -> str:
        return f"#{self.index} {self.method} {self.path}: {self.what} {_show(self.what, self.recorded)} -> {_show(self.what, self.replayed)}"


def _show(what: str, v: Any) -> str:
    if what == "error_number" and isinstance(v, int):
        return f"0x{v:X}" if v else "0"
    if what == "timing":
        return f"{v * 1000:.0f} ms"
    text = json.dumps(v) if not isinstance(v, str) else v
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class ReplayReport:
    exchanges: int
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def members(self) -> set[tuple[str, str]]:
        """(method, path) of every exchange that differs."""
        return {(d.method, d.path) for d in self.differences}

    def text(self) -> str:
        lines = [str(d) for d in self.differences]
        lines.append(
            f"{self.exchanges} exchanges replayed, "
            + (f"{len(self.differences)} difference(s) in {len(self.members())} member(s)" if self.differences else "no differences")
        )
        return "\n".join(lines)


def compare(index: int, rec: Exchange, status: int, content_type: str, body: bytes, took_s: float,
            values: ValueFilter, tolerance_s: float | None) -> list[Difference]:
    """The differences between a recorded exchange and its replayed answer."""
    out: list[Difference] = []

    def diff(what: str, a: Any, b: Any) -> None:
        out.append(Difference(index, rec.method, rec.path, what, a, b))

    if status != rec.status:
        diff("status", rec.status, status)
    replayed = Exchange(0.0, rec.method, rec.path, rec.query, rec.form, status, content_type, body, took_s)
    old, new = rec.envelope(), replayed.envelope()
    if old is not None or new is not None:
        if old is None or new is None:
            diff("body", rec.text, replayed.text)
        else:
            if set(old) != set(new):
                diff("keys", sorted(old), sorted(new))
            if old.get("ErrorNumber") != new.get("ErrorNumber"):
                diff("error_number", old.get("ErrorNumber"), new.get("ErrorNumber"))
            if old.get("ClientTransactionID") != new.get("ClientTransactionID"):
                diff("client_transaction_id", old.get("ClientTransactionID"), new.get("ClientTransactionID"))
            if "Value" in old and "Value" in new and not values.ignored(rec.path) and not _same(old["Value"], new["Value"]):
                diff("value", old["Value"], new["Value"])
    elif "imagebytes" in rec.content_type.lower():
        if _masked(rec.body) != _masked(body):
            diff("body", f"{len(rec.body)} bytes of ImageBytes", f"{len(body)} bytes, different")
    elif rec.body != body:
        diff("body", rec.text, replayed.text)
    if tolerance_s is not None and abs(took_s - rec.duration_s) > tolerance_s:
        diff("timing", rec.duration_s, took_s)
    return out


def _masked(body: bytes) -> bytes:
    return body[:12] + b"\0\0\0\0" + body[16:] if len(body) >= 16 else body


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def replay(
    exchanges: list[Exchange] | str,
    against: str,
    *,
    speed: float | None = 1.0,
    tolerance_ms: float | None = 1000.0,
    ignore: Iterable[str] = (),
    compare_all: bool = False,
    timeout_s: float = 30.0,
) -> ReplayReport:
    """Send a recording (its exchanges, or a file path) to ``against`` (``http://HOST:PORT``) and
    compare every answer. ``speed`` N replays N times faster, None as fast as it can;
    ``tolerance_ms`` None leaves timing out of the comparison."""
    if isinstance(exchanges, str):
        exchanges = read_recording(exchanges)
    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    host, port = parse_address(against)
    client = Upstream(host, port, timeout_s)
    values = ValueFilter(ignore, compare_all)
    tolerance_s = tolerance_ms / 1000.0 if tolerance_ms is not None else None
    report = ReplayReport(len(exchanges))
    start = time.monotonic()
    first = exchanges[0].time if exchanges else 0.0
    try:
        for i, rec in enumerate(exchanges, 1):
            if speed is not None:
                wait = start + (rec.time - first) / speed - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            uri = rec.path + (f"?{rec.query}" if rec.query else "")
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if rec.form else {}
            if rec.accept:
                headers["Accept"] = rec.accept
            body = rec.form.encode("utf-8") if rec.form or rec.method == "PUT" else None
            t0 = time.perf_counter()
            try:
                answer = client.request(rec.method, uri, headers, body)
            except UpstreamFailure as failure:
                report.differences.append(Difference(i, rec.method, rec.path, "answer", f"HTTP {rec.status}", f"none ({failure.kind})"))
                continue
            took = time.perf_counter() - t0
            content_type = next((v for k, v in answer.headers if k.lower() == "content-type"), "")
            report.differences += compare(i, rec, answer.status, content_type, answer.body, took, values, tolerance_s)
    finally:
        client.close()
    return report
