"""FilterWheel: names and offsets agree, the wheel moves to a slot, bad slots are refused."""

from __future__ import annotations

from typing import Any, Iterator

from conform.behaviour.base import expect_error, make, require
from conform.checks import Check
from conform.context import DeviceContext


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "names and offsets agree", "names", _names)
    yield make(ctx, "moves to a slot", "position", _move, motion=True)
    yield make(ctx, "invalid slot refused", "position", _bad_slot, motion=True)


def _names(ctx: DeviceContext, fw: Any) -> None:
    names, offsets = fw.Names, fw.FocusOffsets
    require(len(names) >= 1, "Names is empty")
    require(len(names) == len(offsets), f"Names has {len(names)} entries, FocusOffsets {len(offsets)}")
    pos = fw.Position
    require(pos == -1 or 0 <= pos < len(names), f"Position {pos} is neither -1 (moving) nor a slot of {len(names)}")


def _move(ctx: DeviceContext, fw: Any) -> None:
    count = len(fw.Names)
    ctx.wait(lambda: fw.Position != -1, "the wheel to stop (Position not -1)")
    target = (fw.Position + 1) % count
    fw.Position = target
    ctx.wait(lambda: fw.Position != -1, "Position to stop being -1 after the move")
    require(fw.Position == target, f"Position is {fw.Position} after moving to {target}")


def _bad_slot(ctx: DeviceContext, fw: Any) -> None:
    count = len(fw.Names)
    expect_error(0x401, f"Position = {count} (one past the last slot)", lambda: setattr(fw, "Position", count))
    expect_error(0x401, "Position = -1", lambda: setattr(fw, "Position", -1))
