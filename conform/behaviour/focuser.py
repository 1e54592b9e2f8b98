"""Focuser: limits in range, a move completes where asked, Halt stops it."""

from __future__ import annotations

from typing import Any, Iterator

from conform.behaviour.base import in_range, make, optional, require
from conform.checks import Check
from conform.context import DeviceContext


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "limits in range", "maxstep", _limits)
    yield make(ctx, "move completes", "move", _move, motion=True)
    yield make(ctx, "halt stops a move", "halt", _halt, motion=True)


def _limits(ctx: DeviceContext, foc: Any) -> None:
    step, inc = foc.MaxStep, foc.MaxIncrement
    require(step > 0, f"MaxStep must be positive, got {step}")
    require(0 < inc <= step, f"MaxIncrement must be in 1..MaxStep ({step}), got {inc}")
    if foc.Absolute:
        in_range("Position", foc.Position, 0, step)
    size = optional(lambda: foc.StepSize)
    if size is not None:
        require(size > 0, f"StepSize must be positive, got {size}")
    if foc.TempComp:
        require(foc.TempCompAvailable, "TempComp is true but TempCompAvailable is false")


def _target(foc: Any) -> int:
    delta = max(1, min(foc.MaxIncrement, foc.MaxStep // 10 or 1))
    if not foc.Absolute:
        return delta
    pos = foc.Position
    return pos + delta if pos + delta <= foc.MaxStep else pos - delta


def _move(ctx: DeviceContext, foc: Any) -> None:
    if foc.TempComp:
        foc.TempComp = False
    target = _target(foc)
    foc.Move(target)
    ctx.wait(lambda: foc.IsMoving is False, "IsMoving to become false after Move")
    if foc.Absolute:
        require(foc.Position == target, f"Position is {foc.Position} after Move({target})")


def _halt(ctx: DeviceContext, foc: Any) -> None:
    if foc.TempComp:
        foc.TempComp = False
    foc.Move(_target(foc))
    foc.Halt()
    ctx.wait(lambda: foc.IsMoving is False, "IsMoving to become false after Halt")
