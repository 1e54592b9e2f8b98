"""Switch: every switch describes itself consistently, writes take effect, async writes complete."""

from __future__ import annotations

from typing import Any, Iterator

from conform.behaviour.base import expect_refused, make, require, skip_unless
from conform.checks import Check
from conform.context import DeviceContext


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "switches describe themselves", "maxswitch", _describe)
    yield make(ctx, "invalid Id refused", "getswitchname", _bad_id)
    yield make(ctx, "writes take effect", "setswitchvalue", _write, motion=True, needs=("canwrite",))
    yield make(ctx, "asynchronous write completes", "setasyncvalue", _write_async, motion=True, needs=("setasyncvalue",))


def _describe(ctx: DeviceContext, sw: Any) -> None:
    count = sw.MaxSwitch
    require(count >= 1, f"MaxSwitch must be >= 1, got {count}")
    for i in range(count):
        require(isinstance(sw.GetSwitchName(i), str), f"switch {i}: GetSwitchName is not a string")
        require(isinstance(sw.GetSwitch(i), bool), f"switch {i}: GetSwitch is not a boolean")
        if not ctx.has("minswitchvalue"):  # ISwitchV1: boolean switches only
            continue
        lo, hi, step = sw.MinSwitchValue(i), sw.MaxSwitchValue(i), sw.SwitchStep(i)
        require(lo < hi, f"switch {i}: MinSwitchValue {lo} must be below MaxSwitchValue {hi}")
        require(step > 0, f"switch {i}: SwitchStep must be positive, got {step}")
        value = sw.GetSwitchValue(i)
        require(lo <= value <= hi, f"switch {i}: value {value} outside {lo}..{hi}")


def _bad_id(ctx: DeviceContext, sw: Any) -> None:
    count = sw.MaxSwitch
    expect_refused(ctx, "GET", "getswitchname", [("Id", str(count))], f"GetSwitchName({count}) (MaxSwitch)")
    if ctx.has("getswitchvalue"):
        expect_refused(ctx, "GET", "getswitchvalue", [("Id", "-1")], "GetSwitchValue(-1)")
    else:
        expect_refused(ctx, "GET", "getswitch", [("Id", "-1")], "GetSwitch(-1)")


def _writable(sw: Any) -> list[int]:
    return [i for i in range(sw.MaxSwitch) if sw.CanWrite(i)]


def _write(ctx: DeviceContext, sw: Any) -> None:
    ids = _writable(sw)
    skip_unless(ids, "no writable switch")
    for i in ids:
        lo, hi, before = sw.MinSwitchValue(i), sw.MaxSwitchValue(i), sw.GetSwitchValue(i)
        other = hi if before != hi else lo
        sw.SetSwitchValue(i, other)
        require(abs(sw.GetSwitchValue(i) - other) < 1e-9, f"switch {i}: value {sw.GetSwitchValue(i)} after SetSwitchValue({other})")
        sw.SetSwitchValue(i, before)
        expect_refused(ctx, "PUT", "setswitchvalue", [("Id", str(i)), ("Value", repr(hi + 1.0))], f"SetSwitchValue({i}, {hi + 1}) (above MaxSwitchValue)")


def _write_async(ctx: DeviceContext, sw: Any) -> None:
    ids = [i for i in _writable(sw) if sw.CanAsync(i)]
    skip_unless(ids, "no switch with CanAsync")
    i = ids[0]
    lo, hi, before = sw.MinSwitchValue(i), sw.MaxSwitchValue(i), sw.GetSwitchValue(i)
    other = hi if before != hi else lo
    sw.SetAsyncValue(i, other)
    ctx.wait(lambda: sw.StateChangeComplete(i), f"StateChangeComplete({i}) after SetAsyncValue")
    require(abs(sw.GetSwitchValue(i) - other) < 1e-9, f"switch {i}: value {sw.GetSwitchValue(i)} after SetAsyncValue({other}) completed")
    sw.SetAsyncValue(i, before)
    ctx.wait(lambda: sw.StateChangeComplete(i), f"StateChangeComplete({i}) after restoring the value")
