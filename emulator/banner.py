"""What ``alpaca-emulator`` says about itself: the devices it serves when it starts, and one line
on the traffic it saw when it stops, so an operator knows what is up and what happened."""

from __future__ import annotations

from typing import Any, Iterable


def device_lines(devices: Iterable[Any], url: str) -> list[str]:
    """``serving N devices:`` and a line per device: type and number, name, interface, its URL."""
    devices = sorted(devices, key=lambda d: (d.device_type, d.number))
    lines = [f"serving {len(devices)} device{'s' * (len(devices) != 1)}:"]
    rows = [(f"{d.device_type} {d.number}", repr(d.name), f"I{d.type_name}V{d.interface_version}", f"{url}/api/v1/{d.device_type}/{d.number}") for d in devices]
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3])
    return lines


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def traffic_summary(outcomes: dict[str, int], faulted: int, seconds: float) -> str:
    """``traffic: 5321 requests in 12m03s (5300 answered, 21 dropped); fault rules acted on 21``."""
    total = sum(outcomes.values())
    parts = ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0])))
    line = f"traffic: {total} request{'s' * (total != 1)} in {_duration(seconds)}" + (f" ({parts})" if parts else "")
    return line + (f"; fault rules acted on {faulted}" if faulted else "; no fault rule acted")
