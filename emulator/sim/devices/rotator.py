"""Rotator (IRotatorV4): moves at a set speed, a sync offset, Reverse, Halt.

The mechanical angle moves linearly from where a move started to its target, computed from the
simulation clock when asked. It never crosses its mechanical index (0/360), as a rotator with a
cable wrap would not, so a move from 350 to 10 degrees goes the long way. ``Position`` is the
mechanical angle plus the sync offset, modulo 360; Sync changes only the offset.

For rehearsals the control API can make the rotator "Stuck": moves are accepted and IsMoving
stays true, but the angle never changes until it is halted or unstuck.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

from pydantic import Field

from emulator.sim.clock import SimClock
from emulator.sim.devices.base import Device, DeviceConfig, get, put
from emulator.sim.errors import InvalidValue


class RotatorConfig(DeviceConfig):
    type: Literal["rotator"] = "rotator"
    speed_deg_s: float = Field(10.0, gt=0, le=3600, description="Rotation speed (degrees per simulated second)")
    initial_mechanical_position: float = Field(0.0, ge=0, lt=360, description="MechanicalPosition at start (deg)")
    sync_offset_deg: float = Field(
        0.0, gt=-360, lt=360, description="Sync offset at start (Position - MechanicalPosition); persists like a real one"
    )
    step_size_deg: float | None = Field(0.01, gt=0, lt=360, description="StepSize in degrees (None: NotImplemented)")
    can_reverse: bool = Field(
        True, description="CanReverse (IRotatorV3 and later require True; False emulates an older rotator)"
    )
    reverse: bool = Field(False, description="Reverse at start")
    can_halt: bool = Field(True, description="Halt stops a move (False: Halt is NotImplemented)")


class Rotator(Device):
    device_type = "rotator"
    type_name = "Rotator"
    interface_version = 4
    config_class = RotatorConfig
    state_names = ("IsMoving", "MechanicalPosition", "Position")

    def __init__(self, config: RotatorConfig, clock: SimClock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self.config: RotatorConfig = config
        # mechanical angle at rest; while moving (start time, start angle, target angle)
        self._mech = config.initial_mechanical_position
        self._motion: tuple[float, float, float] | None = None
        self._offset = config.sync_offset_deg
        self._reverse = config.reverse
        self._stuck = False
        self._target = self._sky(self._mech)

    def _sky(self, mech: float) -> float:
        """Position (sync-offset) angle of a mechanical angle, in [0, 360)."""
        value = (mech + self._offset) % 360.0
        return 0.0 if value >= 360.0 else value

    def _mechanical(self) -> float:
        """The mechanical angle now; settles a finished move."""
        if self._motion is None:
            return self._mech
        start_t, start, target = self._motion
        if self._stuck:
            return start
        duration = abs(target - start) / self.config.speed_deg_s
        elapsed = self.clock.now() - start_t
        if elapsed >= duration:
            self._mech, self._motion = target, None
            return target
        return start + (target - start) * elapsed / duration

    def _start_move(self, mech_target: float) -> None:
        start = self._mechanical()
        self._mech = start
        self._target = self._sky(mech_target)
        if mech_target == start and not self._stuck:
            self._motion = None
            return
        self._motion = (self.clock.now(), start, mech_target)

    @staticmethod
    def _check_angle(member: str, value: float) -> None:
        if not (math.isfinite(value) and 0.0 <= value < 360.0):
            raise InvalidValue(f"{member} - '{value}' is an invalid value. The valid range is: 0 to less than 360.")

    # -- members ----------------------------------------------------------------------------------

    @get("canreverse")
    def canreverse(self) -> bool:
        return self.config.can_reverse

    @get("reverse")
    def get_reverse(self) -> bool:
        self._require(self.config.can_reverse, "Reverse", "this rotator cannot reverse (CanReverse false)")
        return self._reverse

    @put("reverse", Reverse=bool)
    def put_reverse(self, Reverse: bool) -> None:
        self._require(self.config.can_reverse, "Reverse", "this rotator cannot reverse (CanReverse false)")
        self._reverse = Reverse

    @get("ismoving")
    def ismoving(self) -> bool:
        self._mechanical()
        return self._motion is not None

    @get("mechanicalposition")
    def mechanicalposition(self) -> float:
        return round(self._mechanical(), 6) % 360.0

    @get("position")
    def position(self) -> float:
        return round(self._sky(self._mechanical()), 6) % 360.0

    @get("targetposition")
    def targetposition(self) -> float:
        self._mechanical()
        return round(self._target, 6) % 360.0

    @get("stepsize")
    def stepsize(self) -> float:
        self._require(self.config.step_size_deg is not None, "StepSize", "this rotator does not report its step size")
        return self.config.step_size_deg

    @put("halt")
    def halt(self) -> None:
        self._require(self.config.can_halt, "Halt", "this rotator cannot be stopped once moving")
        self._mech = self._mechanical()
        self._motion = None

    @put("move", Position=float)
    def move(self, Position: float) -> None:
        """Relative move: the target is Position degrees on from the current Position, modulo 360."""
        if not math.isfinite(Position):
            raise InvalidValue(f"Move - '{Position}' is an invalid value: it must be a finite number of degrees.")
        sky_target = (self._sky(self._mechanical()) + Position) % 360.0
        self._start_move((sky_target - self._offset) % 360.0)

    @put("moveabsolute", Position=float)
    def moveabsolute(self, Position: float) -> None:
        self._check_angle("MoveAbsolute", Position)
        self._start_move((Position - self._offset) % 360.0)

    @put("movemechanical", Position=float)
    def movemechanical(self, Position: float) -> None:
        self._check_angle("MoveMechanical", Position)
        # TargetPosition stays in Position (synced) terms, like every other reading of the target
        self._start_move(Position)

    @put("sync", Position=float)
    def sync(self, Position: float) -> None:
        """Make the current angle read as Position, without moving."""
        self._check_angle("Sync", Position)
        mech = self._mechanical()
        self._offset = (Position - mech + 180.0) % 360.0 - 180.0
        if self._motion is None:
            self._target = self._sky(mech)
        else:
            self._target = self._sky(self._motion[2])

    # -- simulation-only state --------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        return {"Stuck": self._stuck, "SyncOffset": round(self._offset, 6), "Reverse": self._reverse}

    def _set_stuck(self, value: bool) -> None:
        if value == self._stuck:
            return
        now = self.clock.now()
        if value:
            mech = self._mechanical()
            if self._motion is not None:
                self._motion = (now, mech, self._motion[2])  # frozen where it is
            self._stuck = True
            return
        self._stuck = False
        if self._motion is not None:
            self._motion = (now, self._motion[1], self._motion[2])  # resume from the frozen spot

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        setters["Stuck"] = (bool, self._set_stuck)
        return setters
