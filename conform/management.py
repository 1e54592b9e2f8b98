"""Management API checks (reference section 4.2): apiversions, description, configureddevices."""

from __future__ import annotations

from typing import Any, Callable, Iterator

from conform.checks import Check, CheckFailed, Level, family
from conform.context import ServerContext
from conform.members import DEVICE_TYPES

#: CamelCase DeviceType names the management API uses (others, e.g. Video, exist but are not checked).
TYPE_NAMES = {
    "Camera", "CoverCalibrator", "Dome", "FilterWheel", "Focuser", "ObservingConditions",
    "Rotator", "SafetyMonitor", "Switch", "Telescope", "Video",
}


#: The keys of the description Value and of each configured device (AlpacaManagementAPI_v1).
DESCRIPTION_KEYS = ("ServerName", "Manufacturer", "ManufacturerVersion", "Location")
DEVICE_KEYS = ("DeviceName", "DeviceType", "DeviceNumber", "UniqueID")


def _is_uint32(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 4294967295


def _apiversions(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(_is_uint32(v) and v >= 1 for v in value):
        return [f"Value must be a list of integers >= 1, got {value!r}"]
    return [] if 1 in value else [f"Value {value} does not list API version 1"]


def _description(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"Value must be an object, got {value!r}"]
    out = []
    for key in DESCRIPTION_KEYS:
        if not isinstance(value.get(key), str):
            out.append(f"Value.{key} must be a string, got {value.get(key)!r}")
    return out


def _configured(value: Any) -> list[str]:
    if not isinstance(value, list):
        return [f"Value must be a list of devices, got {value!r}"]
    out = []
    seen: set[tuple[str, int]] = set()
    uids: set[str] = set()
    for i, dev in enumerate(value):
        if not isinstance(dev, dict):
            out.append(f"Value[{i}] must be an object, got {dev!r}")
            continue
        for key in (k for k in DEVICE_KEYS if k != "DeviceNumber"):
            if not isinstance(dev.get(key), str):
                out.append(f"Value[{i}].{key} must be a string, got {dev.get(key)!r}")
        if not _is_uint32(dev.get("DeviceNumber")):
            out.append(f"Value[{i}].DeviceNumber must be an unsigned integer, got {dev.get('DeviceNumber')!r}")
        if isinstance(dev.get("DeviceType"), str) and dev["DeviceType"] not in TYPE_NAMES:
            out.append(f"Value[{i}].DeviceType {dev['DeviceType']!r} is not an ASCOM device type name (e.g. Telescope)")
        key = (str(dev.get("DeviceType")).lower(), dev.get("DeviceNumber"))
        if key in seen:
            out.append(f"Value[{i}] repeats {dev.get('DeviceType')} {dev.get('DeviceNumber')}")
        seen.add(key)  # type: ignore[arg-type]
        uid = dev.get("UniqueID")
        if isinstance(uid, str):
            if not uid.strip():
                out.append(f"Value[{i}].UniqueID is empty")
            elif uid in uids:
                out.append(f"Value[{i}].UniqueID {uid!r} is not unique")
            uids.add(uid)
    return out


ENDPOINTS: dict[str, tuple[str, Callable[[Any], list[str]]]] = {
    "apiversions": ("/management/apiversions", _apiversions),
    "description": ("/management/v1/description", _description),
    "configureddevices": ("/management/v1/configureddevices", _configured),
}


@family("management", server=True)
def management_checks(server: ServerContext) -> Iterator[Check]:
    for member, (path, judge) in ENDPOINTS.items():
        def run(path: str = path, judge=judge, member: str = member) -> None:
            ctid = server.next_ctid()
            ex = server.get(path, [("ClientID", "4711"), ("ClientTransactionID", str(ctid))], key=("management", member))
            if ex.status != 200:
                raise CheckFailed(f"GET {path} must answer HTTP 200", ex.sent, ex.got)
            doc = ex.json()
            if not isinstance(doc, dict):
                raise CheckFailed("the body is not a JSON object", ex.sent, ex.got)
            problems = [f"key {k} is missing" for k in ("Value", "ClientTransactionID", "ServerTransactionID") if k not in doc]
            if "ClientTransactionID" in doc and doc["ClientTransactionID"] != ctid:
                problems.append(f"ClientTransactionID {ctid} was not echoed (got {doc['ClientTransactionID']!r})")
            if "ServerTransactionID" in doc and not _is_uint32(doc["ServerTransactionID"]):
                problems.append(f"ServerTransactionID must be an unsigned integer, got {doc['ServerTransactionID']!r}")
            if doc.get("ErrorNumber", 0) != 0:
                problems.append(f"ErrorNumber {doc.get('ErrorNumber')!r}: the management API has no device errors")
            if "Value" in doc:
                problems += judge(doc["Value"])
            if problems:
                raise CheckFailed("; ".join(problems), ex.sent, ex.got)

        yield Check("management", "answer", Level.ERROR, run, None, member)


def discover(server: ServerContext) -> list[tuple[str, int]]:
    """``(device_type, number)`` of every configured device of a type this checker knows.

    Raises CheckFailed when the management API gives no usable list."""
    ex = server.get(ENDPOINTS["configureddevices"][0], [("ClientID", "4711"), ("ClientTransactionID", str(server.next_ctid()))])
    doc = ex.json()
    if ex.status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("Value"), list):
        raise CheckFailed("cannot discover devices from /management/v1/configureddevices (give --devices)", ex.sent, ex.got)
    out = []
    for dev in doc["Value"]:
        if isinstance(dev, dict) and isinstance(dev.get("DeviceType"), str) and _is_uint32(dev.get("DeviceNumber")):
            t = dev["DeviceType"].lower()
            if t in DEVICE_TYPES:
                out.append((t, dev["DeviceNumber"]))
    return out
