"""Device types and member names as scenario files spell them, checked against alpyca and the emulator.

A scenario names members as the AlpacaDevice API takes them (CamelCase, ``IsSafe``) and fault
rules and traffic checks as the URL has them (lowercase, ``issafe``); both are checked here, so a
typo fails at load time with the names that would have been right.
"""

from __future__ import annotations

import functools
import importlib

from emulator.sim.devices import DEVICE_CLASSES, DEVICE_TYPE_NAMES

#: Lowercase Alpaca device types, as URLs and the emulator spell them.
DEVICE_TYPES: tuple[str, ...] = tuple(DEVICE_CLASSES)


def type_name(device_type: str) -> str:
    """``safetymonitor`` -> ``SafetyMonitor`` (the AlpacaDevice spelling)."""
    return DEVICE_TYPE_NAMES[device_type]


def device_type(value: str) -> str:
    """A device type in any case, lowercased; ValueError names the valid ones."""
    low = str(value).lower()
    if low not in DEVICE_CLASSES:
        raise ValueError(f"unknown device type {value!r}; valid types: {', '.join(sorted(DEVICE_CLASSES))}")
    return low


@functools.cache
def alpaca_members(device_type: str) -> frozenset[str]:
    """CamelCase member names an AlpacaDevice of this type can get/set/call (from alpyca's class)."""
    module = importlib.import_module(f"alpaca.{device_type}")
    cls = getattr(module, DEVICE_TYPE_NAMES[device_type])
    return frozenset(name for name in dir(cls) if name[:1].isupper())


@functools.cache
def url_members(device_type: str | None) -> frozenset[str]:
    """Lowercase URL member names of a type (or of every type), as fault rules and the traffic log have them."""
    types = [device_type] if device_type else list(DEVICE_CLASSES)
    out: set[str] = set()
    for t in types:
        out.update(m.lower() for m in alpaca_members(t))
        out.update(name for _, name in DEVICE_CLASSES[t].members)
    return frozenset(out)


def check_member(device_type: str, member: str) -> str:
    """The member's CamelCase spelling (any case accepted); ValueError suggests close names."""
    members = alpaca_members(device_type)
    if member in members:
        return member
    by_lower = {m.lower(): m for m in members}
    if member.lower() in by_lower:
        return by_lower[member.lower()]
    close = sorted(m for m in members if m.lower().startswith(member.lower()[:3]))[:8]
    hint = f"; did you mean one of {', '.join(close)}?" if close else ""
    raise ValueError(f"{DEVICE_TYPE_NAMES[device_type]} has no member {member!r}{hint}")


def check_url_member(device_type: str | None, member: str) -> str:
    """A URL member name of the type (of any type when None), lowercased."""
    if member.lower() not in url_members(device_type):
        where = device_type or "any device type"
        raise ValueError(f"member {member!r} is not a member of {where} (URL names, e.g. 'issafe')")
    return member.lower()
