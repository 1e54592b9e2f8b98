"""alpaca-conform's own member table against the official OpenAPI file, so the two cannot drift.

The table (conform/members.py) ships in the package; the spec lives in ../shared and is read,
never copied. Every spec operation must be a table row with the same parameters and value
kind, and every table row must be a spec operation.
"""

from __future__ import annotations

import pytest

from conform.members import DEVICE_TYPES, LATEST, PLATFORM7, common_names, expected_members, members, parse_kind
from conform.management import DESCRIPTION_KEYS, DEVICE_KEYS, ENDPOINTS
from test_openapi import DEVICE_SPEC, MANAGEMENT_SPEC, inline_refs, load_spec


def _flat(schema: dict) -> dict:
    if "allOf" not in schema:
        return schema
    out: dict = {"properties": {}}
    for sub in schema["allOf"]:
        part = _flat(sub)
        out["properties"].update(part.get("properties", {}))
        out.update({k: v for k, v in part.items() if k not in ("properties", "allOf")})
    return out


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def spec_kind(schema: dict | None) -> str:
    """The OpenAPI schema of a Value or parameter, written as a member-table kind."""
    if schema is None:
        return "none"
    s = _flat(schema)
    t = s.get("type")
    if t == "array":
        item = _flat(s["items"])
        names = set(item.get("properties", {}))
        if item.get("type") == "object" and names == {"Minimum", "Maximum"}:
            return "axisrates"
        if item.get("type") == "object" and names == {"Name", "Value"}:
            return "devicestate"
        return f"list[{spec_kind(item)}]"
    base = {"boolean": "bool", "integer": "int", "number": "float", "string": "str"}[t]
    if t == "string" and s.get("format") in ("date-time", "date-time-fits"):
        base = "datetime" if s["format"] == "date-time" else "fitsdate"
    if "oneOf" in s and all("const" in o for o in s["oneOf"]):
        return base + "{" + ",".join(str(o["const"]) for o in s["oneOf"]) + "}"
    if "minimum" in s or "maximum" in s:
        return f"{base}[{_num(s['minimum']) if 'minimum' in s else ''},{_num(s['maximum']) if 'maximum' in s else ''}]"
    return base


def spec_rows() -> dict[tuple[str, str, str], tuple[list[tuple[str, str]], str]]:
    """``(device_type, VERB, member) -> (params, value kind)`` from the OpenAPI file."""
    doc = load_spec(DEVICE_SPEC)
    rows = {}
    for path, item in doc["paths"].items():
        _, device_type, _, member = path.split("/")
        for verb, op in item.items():
            if verb not in ("get", "put"):
                continue
            op = inline_refs(doc, op)
            params = [(p["name"], spec_kind(p["schema"])) for p in op.get("parameters", []) if p["in"] == "query" and not p["name"].startswith("Client")]
            if "requestBody" in op:
                form = _flat(op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"])
                params = [(k, spec_kind(v)) for k, v in form["properties"].items() if not k.startswith("Client")]
            value = _flat(op["responses"]["200"]["content"]["application/json"]["schema"]).get("properties", {}).get("Value")
            kind = "imagearray" if member in ("imagearray", "imagearrayvariant") else spec_kind(value)
            types = DEVICE_TYPES if device_type == "{device_type}" else (device_type,)
            for t in types:
                rows[(t, verb.upper(), member)] = (params, kind)
    return rows


def table_rows() -> dict[tuple[str, str, str], tuple[list[tuple[str, str]], str]]:
    return {
        (t, m.verb, m.name): ([(p.name, str(p.kind)) for p in m.params], str(m.value))
        for t in DEVICE_TYPES
        for m in members(t).values()
    }


def test_every_spec_operation_is_in_the_table_alike():
    spec, table = spec_rows(), table_rows()
    missing = sorted(set(spec) - set(table))
    extra = sorted(set(table) - set(spec))
    different = {k: (spec[k], table[k]) for k in set(spec) & set(table) if spec[k] != table[k]}
    assert not missing, f"spec operations missing from conform/members.py: {missing}"
    assert not extra, f"conform/members.py rows the spec does not have: {extra}"
    assert not different, f"rows that differ (spec, table): {different}"


def test_kinds_parse_and_print_back():
    for text in ("int[1,]", "float[0,23.9999999999]", "int{0,1,-1}", "list[int{0,1,2,3}]", "devicestate"):
        assert str(parse_kind(text)) == text
    with pytest.raises(ValueError, match="not a value kind"):
        parse_kind("integer")


def test_interface_version_decides_the_expected_members():
    names = lambda t, v: {(m.verb, m.name) for m in expected_members(t, v)}  # noqa: E731
    for t in DEVICE_TYPES:
        before, at = names(t, PLATFORM7[t] - 1), names(t, PLATFORM7[t])
        assert ("PUT", "connect") in at and ("GET", "devicestate") in at
        assert ("PUT", "connect") not in before and ("GET", "devicestate") not in before
        assert names(t, LATEST[t]) == set(members(t))
    assert ("GET", "canasync") not in names("switch", 2)
    assert ("GET", "offset") not in names("camera", 2) and ("GET", "gain") in names("camera", 2)
    assert ("PUT", "movemechanical") not in names("rotator", 2)
    assert {"connected", "description", "name"} <= common_names()


def test_management_models_match_the_spec():
    doc = load_spec(MANAGEMENT_SPEC)
    paths = {path for path, _ in ENDPOINTS.values()}
    assert paths == {p for p in doc["paths"] if p.startswith("/management")}

    def value(path: str) -> dict:
        op = inline_refs(doc, doc["paths"][path]["get"])
        return op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["Value"]

    assert tuple(value("/management/v1/description")["properties"]) == DESCRIPTION_KEYS
    assert tuple(value("/management/v1/configureddevices")["items"]["properties"]) == DEVICE_KEYS
    assert value("/management/apiversions")["items"]["type"] == "integer"
