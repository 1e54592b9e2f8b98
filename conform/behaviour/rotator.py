"""Rotator: angles in range, moves complete where asked, invalid angles refused."""

from __future__ import annotations

from typing import Any, Iterator

from conform.behaviour.base import angle_close, expect_error, in_range, make, optional, require
from conform.checks import Check
from conform.context import DeviceContext


def checks(ctx: DeviceContext) -> Iterator[Check]:
    yield make(ctx, "angles in range", "position", _angles)
    yield make(ctx, "absolute move completes", "moveabsolute", _move_absolute, motion=True)
    yield make(ctx, "relative move completes", "move", _move, motion=True)
    yield make(ctx, "invalid angle refused", "moveabsolute", _bad_angle, motion=True)


def _angles(ctx: DeviceContext, rot: Any) -> None:
    in_range("Position", rot.Position, 0, 360)
    in_range("TargetPosition", rot.TargetPosition, 0, 360)
    if ("GET", "mechanicalposition") in ctx.members:
        in_range("MechanicalPosition", rot.MechanicalPosition, 0, 360)
    size = optional(lambda: rot.StepSize)
    if size is not None:
        require(size > 0, f"StepSize must be positive, got {size}")
    require(rot.IsMoving is False, "IsMoving is true on a rotator nobody moved")


def _tolerance(rot: Any) -> float:
    size = optional(lambda: rot.StepSize)
    return max(1.0, 2 * size) if size else 1.0


def _move_absolute(ctx: DeviceContext, rot: Any) -> None:
    target = (rot.Position + 20.0) % 360.0
    rot.MoveAbsolute(target)
    ctx.wait(lambda: rot.IsMoving is False, "IsMoving to become false after MoveAbsolute")
    require(angle_close(rot.Position, target, _tolerance(rot)), f"Position is {rot.Position} after MoveAbsolute({target})")


def _move(ctx: DeviceContext, rot: Any) -> None:
    start = rot.Position
    rot.Move(-10.0)
    ctx.wait(lambda: rot.IsMoving is False, "IsMoving to become false after Move")
    target = (start - 10.0) % 360.0
    require(angle_close(rot.Position, target, _tolerance(rot)), f"Position is {rot.Position} after Move(-10) from {start}")


def _bad_angle(ctx: DeviceContext, rot: Any) -> None:
    expect_error(0x401, "MoveAbsolute(-10)", lambda: rot.MoveAbsolute(-10.0))
    expect_error(0x401, "MoveAbsolute(400)", lambda: rot.MoveAbsolute(400.0))
