"""Our models of the OpenAPI response shapes: the envelope, and every value kind.

Functions return a list of problems (empty: conforming) so a check can report all of them in
one line. The kinds come from :mod:`conform.members`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from conform.members import Kind

UINT32_MAX = 4294967295
ENVELOPE_KEYS = ("ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage")
#: Extra top-level keys of an ImageArray JSON answer.
IMAGE_KEYS = ("Type", "Rank")
_FITS_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?\Z")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def envelope_problems(doc: Any, *, value_expected: bool, extra_keys: tuple[str, ...] = ()) -> list[str]:
    """Problems of a device API JSON body (reference section 2.8)."""
    if not isinstance(doc, dict):
        return [f"body is not a JSON object but {type(doc).__name__}"]
    problems = []
    allowed = set(ENVELOPE_KEYS) | {"Value"} | set(extra_keys)
    for key in ENVELOPE_KEYS:
        if key not in doc:
            problems.append(f"key {key} is missing")
    unknown = sorted(k for k in doc if k not in allowed)
    if unknown:
        miscased = [k for k in unknown if k.lower() in {a.lower() for a in allowed}]
        problems.append(f"unexpected keys {unknown}" + (" (keys are case-sensitive)" if miscased else ""))
    for key in ("ClientTransactionID", "ServerTransactionID"):
        if key in doc and not (_is_int(doc[key]) and 0 <= doc[key] <= UINT32_MAX):
            problems.append(f"{key} must be an unsigned 32-bit integer, got {doc[key]!r}")
    if doc.get("ServerTransactionID") == 0:
        problems.append("ServerTransactionID must be 1 or more")
    number = doc.get("ErrorNumber")
    if "ErrorNumber" in doc:
        if not _is_int(number):
            problems.append(f"ErrorNumber must be an integer, got {number!r}")
        elif number != 0 and not 0x400 <= number <= 0xFFF:
            problems.append(f"ErrorNumber {number} is outside 0 and 0x400..0xFFF")
    message = doc.get("ErrorMessage")
    if "ErrorMessage" in doc and not isinstance(message, str):
        problems.append(f"ErrorMessage must be a string, got {message!r}")
    if _is_int(number) and number != 0 and isinstance(message, str) and not message.strip():
        problems.append(f"ErrorNumber {number} comes with an empty ErrorMessage")
    if number == 0 and value_expected and "Value" not in doc:
        problems.append("key Value is missing (ErrorNumber is 0)")
    return problems


def value_problems(kind: Kind, value: Any, where: str = "Value") -> list[str]:
    """Problems of ``value`` as an instance of ``kind``."""
    base = kind.base
    if base == "none":
        return []
    if base == "bool":
        ok = isinstance(value, bool)
    elif base == "int":
        ok = _is_int(value)
    elif base == "float":
        ok = _is_number(value)
    elif base in ("str", "datetime", "fitsdate"):
        ok = isinstance(value, str)
    elif base == "list":
        if not isinstance(value, list):
            return [f"{where} must be a list of {kind.item}, got {type(value).__name__} {_short(value)}"]
        out: list[str] = []
        for i, item in enumerate(value):
            out += value_problems(kind.item, item, f"{where}[{i}]")  # type: ignore[arg-type]
            if len(out) > 3:
                break
        return out
    elif base == "axisrates":
        return _axisrates(value, where)
    elif base == "devicestate":
        return _devicestate(value, where)
    elif base == "imagearray":
        return _imagearray(value, where)
    else:  # pragma: no cover - the members table only holds the kinds above
        raise ValueError(f"unknown kind {kind}")
    if not ok:
        return [f"{where} must be {base}, got {type(value).__name__} {_short(value)}"]
    problems = []
    if base == "datetime" and not _iso_date(value):
        problems.append(f"{where} {value!r} is not an ISO 8601 date-time")
    if base == "fitsdate" and not _FITS_DATE.match(value):
        problems.append(f"{where} {value!r} is not a FITS date-time (CCYY-MM-DDThh:mm:ss[.sss])")
    if kind.choices is not None and value not in kind.choices:
        problems.append(f"{where} {value!r} is not one of {list(kind.choices)}")
    if kind.low is not None and _is_number(value) and value < kind.low:
        problems.append(f"{where} {value!r} is below the minimum {kind.low:g}")
    if kind.high is not None and _is_number(value) and value > kind.high:
        problems.append(f"{where} {value!r} is above the maximum {kind.high:g}")
    return problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _iso_date(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _axisrates(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{where} must be a list of rates, got {_short(value)}"]
    out = []
    for i, rate in enumerate(value):
        if not isinstance(rate, dict) or set(rate) != {"Minimum", "Maximum"}:
            out.append(f"{where}[{i}] must be an object with exactly Minimum and Maximum, got {_short(rate)}")
        elif not (_is_number(rate["Minimum"]) and _is_number(rate["Maximum"])):
            out.append(f"{where}[{i}] Minimum and Maximum must be numbers, got {_short(rate)}")
        elif rate["Minimum"] > rate["Maximum"] or rate["Minimum"] < 0:
            out.append(f"{where}[{i}] needs 0 <= Minimum <= Maximum, got {_short(rate)}")
    return out


def _devicestate(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        return [f"{where} must be a list of Name/Value objects, got {_short(value)}"]
    out = []
    names = set()
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"Name", "Value"}:
            out.append(f"{where}[{i}] must be an object with exactly Name and Value, got {_short(item)}")
            continue
        if not isinstance(item["Name"], str):
            out.append(f"{where}[{i}].Name must be a string, got {_short(item['Name'])}")
        elif item["Name"] in names:
            out.append(f"{where}[{i}].Name {item['Name']!r} appears twice")
        names.add(item["Name"])
        if not (isinstance(item["Value"], (str, bool)) or _is_number(item["Value"])):
            out.append(f"{where}[{i}].Value must be a string, number or boolean, got {_short(item['Value'])}")
    return out


def _imagearray(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not isinstance(value[0], list):
        return [f"{where} must be a 2 or 3 dimensional array of integers, got {_short(value)}"]
    rank = 3 if value[0] and isinstance(value[0][0], list) else 2
    width = len(value[0])
    for column in value:
        if not isinstance(column, list) or len(column) != width:
            return [f"{where} rows are not all {width} long"]
    sample = value[0][0] if rank == 2 else (value[0][0][0] if value[0][0] else None)
    if not _is_int(sample):
        return [f"{where} elements must be integers, got {_short(sample)}"]
    return []


def image_header_problems(doc: dict, value: Any) -> list[str]:
    """Type must be 2 and Rank must match the array (ImageArray JSON)."""
    out = []
    if doc.get("Type") != 2:
        out.append(f"ImageArray Type must be 2 (Int32), got {doc.get('Type')!r}")
    if isinstance(value, list) and value and isinstance(value[0], list):
        rank = 3 if value[0] and isinstance(value[0][0], list) else 2
        if doc.get("Rank") != rank:
            out.append(f"ImageArray Rank must be {rank} for this array, got {doc.get('Rank')!r}")
    return out
