"""SafetyMonitor: IsSafe is a boolean, and false or NotConnected when disconnected."""

from __future__ import annotations

from typing import Any, Iterator

from conform.behaviour.base import make, require
from conform.checks import Check, CheckFailed
from conform.context import DeviceContext


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "IsSafe is a boolean", "issafe", _is_safe)
    yield make(ctx, "never safe while disconnected", "issafe", _disconnected)


def _is_safe(ctx: DeviceContext, sm: Any) -> None:
    value = sm.IsSafe
    require(isinstance(value, bool), f"IsSafe must be a boolean, got {value!r}")


def _disconnected(ctx: DeviceContext, sm: Any) -> None:
    ctx.disconnect()
    try:
        ex = ctx.call("GET", "issafe")
        doc = ex.json()
        ok = isinstance(doc, dict) and (doc.get("ErrorNumber") == 0x407 or (doc.get("ErrorNumber") == 0 and doc.get("Value") is False))
        if not ok:
            raise CheckFailed("a disconnected safety monitor must answer IsSafe false or NotConnected (0x407)", ex.sent, ex.got)
    finally:
        ctx.ensure_connected()
