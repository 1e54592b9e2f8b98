"""Focuser (IFocuserV4): step moves at a set speed, Halt, and a temperature that drifts.

A move is (start time, start position, target) on the simulation clock; the position is worked
out when asked, so no thread runs. The temperature is a sum of slow sine waves whose phases
come from the device's seeded RNG: the same seed gives the same night, and tests can rely on it.

Temperature compensation, when on and the focuser is at rest, shifts the position by
``tempcomp_steps_per_c`` per degree of change since it last came to rest. Since IFocuserV3 a
Move while TempComp is on is allowed; below interface version 3 it raises InvalidOperation, as
IFocuserV2 drivers did (``tempcomp_blocks_move`` states it explicitly, and must agree).
An IFocuserV1 has ``Link`` instead of ``Connected``; Link is served (versions 1-3) as the connection.

For rehearsals the control API can make the focuser "Stuck": moves are accepted and IsMoving
stays true, but the position never changes until the focuser is halted or unstuck.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Literal

from pydantic import Field, model_validator

from emulator.sim.clock import SimClock
from emulator.sim.devices.base import Device, DeviceConfig, get, put
from emulator.sim.errors import AscomError, InvalidOperation, InvalidValue


class FocuserConfig(DeviceConfig):
    type: Literal["focuser"] = "focuser"
    absolute: bool = Field(True, description="Absolute: Move takes a position (False: a relative step distance)")
    max_step: int = Field(50000, ge=1, le=2147483647, description="MaxStep: the highest position")
    max_increment: int | None = Field(None, ge=1, description="MaxIncrement: largest single move (default: max_step)")
    initial_position: int | None = Field(None, ge=0, description="Position at start (steps; default: max_step / 2)")
    speed_steps_s: float = Field(1000.0, gt=0, le=1e7, description="Move speed (steps per simulated second)")
    step_size_um: float | None = Field(4.0, gt=0, description="StepSize in microns (None: NotImplemented)")
    can_halt: bool = Field(True, description="Halt stops a move (False: Halt is NotImplemented)")
    temperature_available: bool = Field(True, description="Temperature is reported (False: NotImplemented)")
    temperature_c: float = Field(12.0, ge=-60, le=60, description="Mean ambient temperature (deg C)")
    temperature_swing_c: float = Field(2.0, ge=0, le=30, description="How far the temperature drifts from the mean")
    temperature_period_s: float = Field(7200.0, gt=0, description="Period of the slowest temperature drift (s)")
    temp_comp_available: bool = Field(True, description="TempCompAvailable: temperature compensation exists")
    tempcomp_steps_per_c: float = Field(-25.0, description="Position change per deg C while TempComp is on")
    tempcomp_blocks_move: bool | None = Field(
        None, description="Move while TempComp is on answers InvalidOperation (default: below interface version 3, as IFocuserV2 did)"
    )

    # optics: where the camera's stars are sharpest
    best_focus_step: int | None = Field(
        None, ge=0, description="Best focus at temperature_c, in steps (default: max_step / 2); the camera's V-curve centre"
    )
    focus_drift_steps_per_c: float | None = Field(
        None, description="How far best focus moves per deg C of focuser temperature (default: tempcomp_steps_per_c, so TempComp holds focus)"
    )

    synchronous: bool = Field(False, description="Move returns only when the move is over (IsMoving is then False)")
    sync_wait_limit_s: float = Field(
        120.0, gt=0, le=3600, description="Wall seconds a synchronous Move waits before giving up with a DriverException"
    )

    @model_validator(mode="after")
    def _consistent(self) -> "FocuserConfig":
        if self.initial_position is not None and self.initial_position > self.max_step:
            raise ValueError(f"initial_position {self.initial_position} is beyond max_step {self.max_step}")
        if self.max_increment is not None and self.max_increment > self.max_step:
            raise ValueError(f"max_increment {self.max_increment} is larger than max_step {self.max_step}")
        if self.best_focus_step is not None and self.best_focus_step > self.max_step:
            raise ValueError(f"best_focus_step {self.best_focus_step} is beyond max_step {self.max_step}")
        return self


class Focuser(Device):
    device_type = "focuser"
    type_name = "Focuser"
    interface_version = 4
    config_class = FocuserConfig
    state_names = ("IsMoving", "Position", "Temperature")

    def __init__(self, config: FocuserConfig, clock: SimClock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self.config: FocuserConfig = config
        self._max_increment = config.max_increment or config.max_step
        # at rest: _pos; moving: (start time, start position, target)
        start = config.initial_position if config.initial_position is not None else config.max_step // 2
        self._pos = float(start)
        self._motion: tuple[float, float, float] | None = None
        self._stuck = False
        self._tempcomp = False
        # TempComp reference: (position, temperature) when the focuser last came to rest
        self._comp_anchor: tuple[float, float] | None = None
        self._phases = [self.rng.uniform(0, 2 * math.pi) for _ in range(3)]
        self._moved = threading.Condition(self.lock)  # wakes synchronous Moves (halt, stuck, a new move)

    # -- temperature ------------------------------------------------------------------------------

    def _temperature_at(self, t: float) -> float:
        """Slow, smooth and seeded: three incommensurate sine waves around the mean."""
        c = self.config
        period, swing = c.temperature_period_s, c.temperature_swing_c
        w = 2 * math.pi / period
        return (
            c.temperature_c
            + 0.6 * swing * math.sin(w * t + self._phases[0])
            + 0.3 * swing * math.sin(w * 2.71 * t + self._phases[1])
            + 0.1 * swing * math.sin(w * 7.39 * t + self._phases[2])
        )

    # -- optics (read by the camera) ----------------------------------------------------------------

    def best_focus(self) -> float:
        """The position of sharpest focus now: it drifts with the focuser's temperature."""
        c = self.config
        best = c.best_focus_step if c.best_focus_step is not None else c.max_step / 2.0
        drift = c.focus_drift_steps_per_c if c.focus_drift_steps_per_c is not None else c.tempcomp_steps_per_c
        return best + drift * (self._temperature_at(self.clock.now()) - c.temperature_c)

    def true_position(self) -> float:
        """Where the drawtube is now (also for a relative focuser, which does not report it)."""
        return self._position()

    # -- motion -----------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Turn a finished move into rest (anchoring compensation at its end)."""
        if self._motion is None or self._stuck:
            return
        start_t, start, target = self._motion
        end_t = start_t + abs(target - start) / self.config.speed_steps_s
        if self.clock.now() >= end_t:
            self._motion = None
            self._pos = target
            if self._tempcomp:
                self._comp_anchor = (target, self._temperature_at(end_t))

    def _position(self) -> float:
        self._settle()
        now = self.clock.now()
        if self._motion is not None:
            start_t, start, target = self._motion
            if self._stuck:
                return start
            duration = abs(target - start) / self.config.speed_steps_s
            return start + (target - start) * min(1.0, (now - start_t) / duration)
        if self._tempcomp and self._comp_anchor is not None and not self._stuck:
            anchor_pos, anchor_t = self._comp_anchor
            shift = self.config.tempcomp_steps_per_c * (self._temperature_at(now) - anchor_t)
            return min(float(self.config.max_step), max(0.0, anchor_pos + shift))
        return self._pos

    def _rest_here(self) -> float:
        """Stop wherever the focuser is now (and restart compensation from here)."""
        pos = float(round(self._position()))
        self._pos, self._motion = pos, None
        if self._tempcomp:
            self._comp_anchor = (pos, self._temperature_at(self.clock.now()))
        return pos

    def _is_moving(self) -> bool:
        self._settle()
        return self._motion is not None

    # -- members ----------------------------------------------------------------------------------

    @get("link", connection=False)
    def get_link(self) -> bool:
        return self.get_connected()

    @put("link", connection=False, Link=bool)
    def put_link(self, Link: bool) -> None:
        self.put_connected(Link)

    @get("absolute")
    def absolute(self) -> bool:
        return self.config.absolute

    @get("ismoving")
    def ismoving(self) -> bool:
        return self._is_moving()

    @get("maxstep")
    def maxstep(self) -> int:
        return self.config.max_step

    @get("maxincrement")
    def maxincrement(self) -> int:
        return self._max_increment

    @get("position")
    def position(self) -> int:
        self._require(self.config.absolute, "Position", "this is a relative focuser (Absolute false)")
        return int(round(self._position()))

    @get("stepsize")
    def stepsize(self) -> float:
        self._require(self.config.step_size_um is not None, "StepSize", "this focuser does not know its step size")
        return self.config.step_size_um

    @get("temperature")
    def temperature(self) -> float:
        self._require(self.config.temperature_available, "Temperature", "this focuser has no temperature sensor")
        return round(self._temperature_at(self.clock.now()), 3)

    @get("tempcompavailable")
    def tempcompavailable(self) -> bool:
        return self.config.temp_comp_available

    @get("tempcomp")
    def get_tempcomp(self) -> bool:
        return self._tempcomp  # always False without compensation

    @put("tempcomp", TempComp=bool)
    def put_tempcomp(self, TempComp: bool) -> None:
        self._require(self.config.temp_comp_available, "Setting TempComp", "this focuser has no temperature compensation")
        if TempComp == self._tempcomp:
            return
        if self._is_moving():
            self._tempcomp = TempComp  # takes effect when the move ends
            return
        self._rest_here()
        self._tempcomp = TempComp
        self._comp_anchor = (self._pos, self._temperature_at(self.clock.now())) if TempComp else None

    @put("halt")
    def halt(self) -> None:
        self._require(self.config.can_halt, "Halt", "this focuser cannot be stopped once moving")
        if self._is_moving():
            self._rest_here()
        self._moved.notify_all()

    def _wait_for_move(self) -> None:
        """Block a synchronous Move until it is over, without holding the device lock."""
        deadline = time.monotonic() + self.config.sync_wait_limit_s
        motion = self._motion
        while self._is_moving() and self._motion is motion:  # over, halted, or replaced by another Move
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AscomError(f"the move did not finish within {self.config.sync_wait_limit_s:g} s (poll IsMoving or Halt)")
            start_t, start, target = motion
            end_t = start_t + abs(target - start) / self.config.speed_steps_s
            until_done = remaining if self._stuck else self.clock.to_wall(max(0.0, end_t - self.clock.now()))
            # Condition.wait releases the device lock entirely while waiting, even if held twice.
            self._moved.wait(timeout=min(remaining, max(0.005, until_done + 0.002), 0.25))

    @put("move", Position=int)
    def move(self, Position: int) -> None:
        blocks = self.config.tempcomp_blocks_move
        if self._tempcomp and (blocks if blocks is not None else self.interface_version < 3):
            raise InvalidOperation("Move is not allowed while temperature compensation (TempComp) is on")
        if self.config.absolute:
            if not 0 <= Position <= self.config.max_step:
                raise InvalidValue(
                    f"Move - '{Position}' is an invalid value. The valid range is: 0 to {self.config.max_step}."
                )
            target = float(Position)
        else:
            if not -self._max_increment <= Position <= self._max_increment:
                raise InvalidValue(
                    f"Move - '{Position}' is an invalid value. The valid range is: "
                    f"-{self._max_increment} to {self._max_increment}."
                )
            # a relative focuser stops at its limits by itself
            target = float(min(self.config.max_step, max(0, round(self._position()) + Position)))
        start = float(round(self._position()))
        self._pos = start
        if target == start and not self._stuck:
            self._motion = None
            if self._tempcomp:
                self._comp_anchor = (start, self._temperature_at(self.clock.now()))
            return
        self._motion = (self.clock.now(), start, target)
        self._moved.notify_all()
        if self.config.synchronous:
            self._wait_for_move()

    # -- simulation-only state --------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        return {"Stuck": self._stuck, "StepPosition": int(round(self._position()))}

    def _set_stuck(self, value: bool) -> None:
        self._moved.notify_all()
        if value == self._stuck:
            return
        now = self.clock.now()
        if value:
            self._settle()
            pos = float(round(self._position()))
            if self._motion is not None:
                self._motion = (now, pos, self._motion[2])  # frozen where it is
            else:
                self._pos = pos
                self._comp_anchor = None
            self._stuck = True
            return
        self._stuck = False
        if self._motion is not None:
            self._motion = (now, self._motion[1], self._motion[2])  # resume from the frozen spot
        elif self._tempcomp:
            self._comp_anchor = (self._pos, self._temperature_at(now))

    def _set_position(self, value: int) -> None:
        if not 0 <= value <= self.config.max_step:
            raise ValueError(f"StepPosition must be between 0 and max_step {self.config.max_step}, got {value}")
        self._pos, self._motion = float(value), None
        if self._tempcomp:
            self._comp_anchor = (self._pos, self._temperature_at(self.clock.now()))

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        setters["Stuck"] = (bool, self._set_stuck)
        setters["StepPosition"] = (int, self._set_position)
        return setters
