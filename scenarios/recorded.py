"""A recording made into a scenario file: the same calls, at the same times, ready for faults.

``alpaca-scenarios from-recording FILE`` reads a recording (``--record`` of alpaca-proxy or
alpaca-emulator, :mod:`emulator.serve.recording`) and writes one scenario:

- a device (an AlpacaDevice process) for every device the session used, named ``focuser0``...;
- a step for every device-API exchange, ``at`` its recorded offset from the first: a GET is a
  ``get`` (with its query arguments), a PUT of a property a ``set``, any other PUT a ``call``;
- each step's ``expect`` is the recorded answer: the value (left out for members whose value
  moves with time, :data:`~emulator.serve.recording.TIME_VARYING`, and for image arrays), the
  ASCOM error number, or the HTTP status of a rejected request;
- a commented fault section to edit: uncomment a rule (or write one) to rehearse the night
  under it, and change the expectations of the steps it touches.

Left out: the management API, the setup pages, and the connection the AlpacaDevice makes by
itself at start (PUT Connected=true, Connect).
"""

from __future__ import annotations

import importlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from emulator.faults.engine import request_info
from emulator.serve.recording import Exchange, ValueFilter
from scenarios.names import DEVICE_TYPES, check_member, type_name

#: Parameters every Alpaca request may carry; they are the AlpacaDevice's to send.
_ID_KEYS = {"clientid", "clienttransactionid"}
#: Members whose values are too big or too varied to pin in a file.
_NO_VALUE = {"imagearray", "imagearrayvariant"}
#: What the AlpacaDevice does by itself at start (connectable devices).
_AT_START = {("PUT", "connected"), ("PUT", "connect")}


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def toml_value(value: Any) -> str:
    """A TOML literal for a JSON value (strings, numbers, booleans, arrays, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _typed(text: str) -> Any:
    """A form or query value as the AlpacaDevice's argument: bool, int, float, else the text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _is_property(device_type: str, member: str) -> bool:
    cls = getattr(importlib.import_module(f"alpaca.{device_type}"), type_name(device_type))
    return isinstance(getattr(cls, member, None), property)


@dataclass
class _Step:
    at: float
    lines: list[str] = field(default_factory=list)


def _expect(ex: Exchange, values: ValueFilter, member: str) -> dict[str, Any]:
    if ex.status != 200:
        return {"error": "RemoteDeviceError", "http_status": ex.status}
    doc = ex.envelope()
    if doc is None:  # ImageBytes, or a body that is not an envelope: it must merely succeed
        return {"ok": True}
    number = doc.get("ErrorNumber") or 0
    if number:
        return {"error": "RemoteDeviceError", "error_number": f"0x{number:X}"}
    if "Value" in doc and member not in _NO_VALUE and not values.ignored(ex.path):
        value = doc["Value"]
        if value is not None and not (isinstance(value, list) and value and isinstance(value[0], list)):
            return {"value": value}
    return {"ok": True}


def scenario_from_recording(exchanges: list[Exchange], name: str, source: str = "recording", seed: int = 0,
                            ignore: tuple[str, ...] = ()) -> str:
    """The TOML text of one scenario that makes the recorded calls again (see the module docstring)."""
    values = ValueFilter(ignore)
    devices: dict[tuple[str, int], str] = {}
    steps: list[_Step] = []
    skipped = 0
    first = exchanges[0].time if exchanges else 0.0
    for ex in exchanges:
        info = request_info(ex.method, ex.path)
        if info.device_type not in DEVICE_TYPES or info.device_number is None or info.member is None:
            skipped += 1
            continue
        try:
            member = check_member(info.device_type, info.member)
        except ValueError:
            skipped += 1
            continue
        if (ex.method, info.member) in _AT_START:
            continue
        device = devices.setdefault((info.device_type, info.device_number), f"{info.device_type}{info.device_number}")
        raw = ex.form if ex.method == "PUT" else ex.query
        args = {k: _typed(v) for k, v in parse_qsl(raw, keep_blank_values=True) if k.lower() not in _ID_KEYS}
        step = _Step(round(ex.time - first, 3))
        step.lines.append(f"at = {step.at}")
        if ex.method == "PUT" and len(args) == 1 and _is_property(info.device_type, member):
            step.lines += ['do = "set"', f"device = {toml_value(device)}", f"member = {toml_value(member)}",
                           f"value = {toml_value(next(iter(args.values())))}"]
        else:
            step.lines += [f'do = "{"get" if ex.method == "GET" else "call"}"', f"device = {toml_value(device)}",
                           f"member = {toml_value(member)}"]
            if args:
                step.lines.append(f"args = {toml_value(args)}")
        expect = _expect(ex, values, info.member)
        step.lines.append(f"expect = {toml_value(expect)}")
        steps.append(step)
    if not steps:
        raise ValueError(f"{source}: no device calls to rehearse (only management or unknown paths)")
    span = max(s.at for s in steps)
    out = [
        f"# Made by alpaca-scenarios from-recording from {source}: {len(steps)} recorded call(s)"
        + (f", {skipped} other exchange(s) left out" if skipped else "") + ".",
        "# Every step expects what the recorded session saw. Uncomment a fault below (or add your own)",
        "# to rehearse the same night under it, and change the expectations of the calls it touches.",
        "",
        "[[scenario]]",
        f"name = {toml_value(name)}",
        f'description = {toml_value(f"The session recorded in {source}, call for call, at its recorded times.")}',
        f"timeout_s = {max(30, math.ceil(span * 2 + 30))}",
        "",
        "[scenario.emulator]",
        f"seed = {seed}",
    ]
    for (device_type, number), device in devices.items():
        out += ["", "[[scenario.devices]]", f"name = {toml_value(device)}", f"type = {toml_value(type_name(device_type))}",
                f"number = {number}"]
    some = next(iter(devices))
    out += [
        "",
        "# -- faults to rehearse (a fault step must fire before the scenario ends) ------------------------",
        "# [[scenario.steps]]",
        "# at = 0.0",
        '# do = "fault"',
        f'# match = {{ device_type = "{some[0]}", device_number = {some[1]}, member = "name" }}',
        '# action = { kind = "ascom_error", number = "0x500" }   # or: drop, reset, hang, latency, bad_json, ...',
        '# trigger = { count = 1 }',
    ]
    for step in steps:
        out += ["", "[[scenario.steps]]", *step.lines]
    return "\n".join(out) + "\n"
