"""Behaviour every device type shares: connecting, InterfaceVersion, DeviceState, Action."""

from __future__ import annotations

from typing import Any, Iterator

from conform.behaviour.base import expect_error, make, require
from conform.checks import Check, CheckFailed, CheckSkipped, Level
from conform.context import DeviceContext
from conform.members import LATEST, common_names, members
from conform.schema import value_problems


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "connect and disconnect", "connected", _connection)
    yield make(ctx, "NotConnected while disconnected", "connected", _not_connected, level=Level.ISSUE)
    yield make(ctx, "interface version known", "interfaceversion", _interface_version, level=Level.INFORMATION)
    yield make(ctx, "names the device", "name", _names, level=Level.INFORMATION, needs=("name",))
    yield make(ctx, "unknown action refused", "action", _unknown_action, level=Level.ISSUE, needs=("action",))
    yield make(ctx, "operational state", "devicestate", _device_state, needs=("devicestate",))


def _connection(ctx: DeviceContext, dev: Any) -> None:
    if ctx.connection_member == "link":  # IFocuserV1: alpyca knows no Link, so raw requests
        ctx.disconnect()
        require(ctx.value("link") is False, "Link is still true after Link=False")
        ctx.ensure_connected()
        return
    ctx.disconnect()
    require(dev.Connected is False, "Connected is still true after disconnecting")
    if ctx.platform7:
        dev.Connect()
        ctx.wait(lambda: dev.Connecting is False, "Connecting to become false after Connect()")
    else:
        dev.Connected = True
    require(dev.Connected is True, "Connected is not true after connecting")
    ctx.state["connected"] = True


def _first_device_get(ctx: DeviceContext) -> str | None:
    for (verb, name), m in ctx.members.items():
        if verb == "GET" and m.required and name not in common_names() and not m.params:
            return name
    return None


def _not_connected(ctx: DeviceContext, dev: Any) -> None:
    name = _first_device_get(ctx)
    if name is None or ctx.device_type == "safetymonitor":  # IsSafe answers false instead
        raise CheckSkipped("no device-specific property to read")
    ctx.disconnect()
    try:
        ex = ctx.call("GET", name)
        doc = ex.json()
        if not (isinstance(doc, dict) and doc.get("ErrorNumber") == 0x407):
            raise CheckFailed(f"GET {name} on a disconnected device must give NotConnected (0x407)", ex.sent, ex.got)
    finally:
        ctx.ensure_connected()


def _interface_version(ctx: DeviceContext, dev: Any) -> None:
    if ctx.version_problem:
        raise CheckFailed(ctx.version_problem)
    v = ctx.interface_version
    require(v <= LATEST[ctx.device_type], f"InterfaceVersion {v} is newer than this checker knows ({LATEST[ctx.device_type]}): members added since are not checked")


def _names(ctx: DeviceContext, dev: Any) -> None:
    for what in ("name", "description", "driverinfo", "driverversion"):
        if not ctx.has(what):
            continue
        value = ctx.value(what)
        require(isinstance(value, str) and value.strip() != "", f"{what} is empty")


def _unknown_action(ctx: DeviceContext, dev: Any) -> None:
    expect_error(0x40C, "Action('conform-no-such-action')", lambda: dev.Action("conform-no-such-action", ""))


def _device_state(ctx: DeviceContext, dev: Any) -> None:
    value = ctx.value("devicestate")
    problems = value_problems(members(ctx.device_type)[("GET", "devicestate")].value, value)
    require(not problems, "; ".join(problems))
    allowed = {m.name: m for (verb, _), m in ctx.members.items() if verb == "GET" and m.status and not m.params}
    for item in value:
        name = item["Name"]
        if name == "TimeStamp":
            continue
        if ctx.device_type == "switch":
            base = name.rstrip("0123456789").lower()
            require(base in ("getswitch", "getswitchvalue", "statechangecomplete"), f"DeviceState names {name!r}, not a Switch operational property")
            continue
        m = allowed.get(name.lower())
        require(m is not None, f"DeviceState names {name!r}, not an operational property of a {ctx.device_type}")
        kind = m.value
        problems = value_problems(kind, item["Value"], f"DeviceState {name}")
        if kind.base == "datetime" and not problems:
            continue
        require(not problems, "; ".join(problems))
