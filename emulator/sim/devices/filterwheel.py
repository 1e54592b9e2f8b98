"""FilterWheel (IFilterWheelV3): names and focus offsets, moves that take time.

While the wheel turns, Position reads -1, as the interface requires; the move takes
``slot_time_s`` per slot travelled (the shorter way round, or always forward for a
unidirectional wheel). The wheel's angle is a fractional slot number computed from the
simulation clock when asked, so a new Position written mid-move continues from where the
wheel really is.

For rehearsals the control API can make the wheel "Stuck": a move is accepted and Position
stays -1 until the wheel is unstuck.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import Field, model_validator

from emulator.sim.clock import SimClock
from emulator.sim.devices.base import Device, DeviceConfig, get, put
from emulator.sim.errors import InvalidValue


#: Default throughput by filter name (the whole name, lowercase, spaces at its ends ignored).
NAME_THROUGHPUT = {
    "luminance": 1.0, "lum": 1.0, "clear": 1.0, "l": 1.0, "none": 1.0,
    "red": 0.3, "green": 0.3, "blue": 0.3, "r": 0.3, "g": 0.3, "b": 0.3, "v": 0.3,
    "h-alpha": 0.03, "halpha": 0.03, "ha": 0.03, "oiii": 0.03, "sii": 0.03, "hbeta": 0.03, "dark": 0.0,
}


def name_throughput(name: str) -> float:
    """The throughput a filter's name suggests (1.0 when it says nothing known)."""
    return NAME_THROUGHPUT.get(name.strip().lower(), 1.0)


class FilterWheelConfig(DeviceConfig):
    type: Literal["filterwheel"] = "filterwheel"
    names: list[str] = Field(
        default_factory=lambda: ["Luminance", "Red", "Green", "Blue", "H-alpha", "OIII", "SII"],
        min_length=1,
        max_length=1000,
        description="Names: one filter name per slot, in wheel order",
    )
    focus_offsets: list[int] | None = Field(
        default_factory=lambda: [0, 12, 10, 15, -20, -8, -25],
        description="FocusOffsets: one focuser offset (steps) per slot, same length as names (None: all zero)",
    )
    throughputs: list[float] | None = Field(
        None,
        description="Fraction of a star's light each slot passes, same length as names (default: from the name: "
        "luminance/clear 1.0, red/green/blue 0.3, narrowband 0.03, unknown 1.0)",
    )
    implements_names: bool = Field(True, description="False: Names reports 'Filter 1', 'Filter 2', ... (a wheel that knows no names)")
    slot_time_s: float = Field(1.0, ge=0, le=600, description="Simulated seconds to turn the wheel by one slot")
    unidirectional: bool = Field(False, description="The wheel only turns forward (else the shorter way round)")
    initial_position: int = Field(0, ge=0, description="Position at start (zero-based slot)")

    @model_validator(mode="after")
    def _consistent(self) -> "FilterWheelConfig":
        if self.focus_offsets is not None and len(self.focus_offsets) != len(self.names):
            raise ValueError(
                f"focus_offsets has {len(self.focus_offsets)} entries but names has {len(self.names)}: "
                "give one focus offset per filter name"
            )
        if self.throughputs is not None:
            if len(self.throughputs) != len(self.names):
                raise ValueError(
                    f"throughputs has {len(self.throughputs)} entries but names has {len(self.names)}: "
                    "give one throughput per filter name"
                )
            bad = [t for t in self.throughputs if not 0.0 <= t <= 1.0]
            if bad:
                raise ValueError(f"throughputs must be between 0 and 1, got {bad}")
        if self.initial_position >= len(self.names):
            raise ValueError(
                f"initial_position {self.initial_position} is not a slot of this wheel (0 to {len(self.names) - 1})"
            )
        return self


class FilterWheel(Device):
    device_type = "filterwheel"
    type_name = "FilterWheel"
    interface_version = 3
    config_class = FilterWheelConfig
    state_names = ("Position",)

    def __init__(self, config: FilterWheelConfig, clock: SimClock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self.config: FilterWheelConfig = config
        self._slots = len(config.names)
        self._pos = config.initial_position
        # while moving: (start time, start slot as a float, signed slots to travel, target slot)
        self._motion: tuple[float, float, float, int] | None = None
        self._stuck = False

    def _where(self) -> float:
        """Fractional slot the wheel is at now (unwrapped); settles a finished move."""
        if self._motion is None:
            return float(self._pos)
        start_t, start, dist, target = self._motion
        if self._stuck:
            return start
        duration = abs(dist) * self.config.slot_time_s
        elapsed = self.clock.now() - start_t
        if elapsed >= duration:
            self._pos, self._motion = target, None
            return float(target)
        return start + dist * elapsed / duration

    def throughput(self, slot: int) -> float:
        """Fraction of starlight slot ``slot`` passes (read by the camera's render)."""
        if self.config.throughputs is not None:
            return self.config.throughputs[slot]
        return name_throughput(self.config.names[slot])

    @get("names")
    def names(self) -> list[str]:
        if not self.config.implements_names:
            return [f"Filter {i + 1}" for i in range(self._slots)]
        return list(self.config.names)

    @get("focusoffsets")
    def focusoffsets(self) -> list[int]:
        if self.config.focus_offsets is None:
            return [0] * self._slots
        return list(self.config.focus_offsets)

    @get("position")
    def get_position(self) -> int:
        self._where()
        return -1 if self._motion is not None else self._pos

    @put("position", Position=int)
    def put_position(self, Position: int) -> None:
        if not 0 <= Position < self._slots:
            raise InvalidValue(
                f"Position - '{Position}' is an invalid value. The valid range is: 0 to {self._slots - 1}."
            )
        here = self._where() % self._slots
        forward = (Position - here) % self._slots
        if self.config.unidirectional or forward <= self._slots / 2:
            dist = forward
        else:
            dist = forward - self._slots
        if abs(dist) < 1e-9 and not self._stuck:
            self._pos, self._motion = Position, None
            return
        self._motion = (self.clock.now(), here, dist, Position)

    # -- simulation-only state --------------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        return {"Stuck": self._stuck}

    def _set_stuck(self, value: bool) -> None:
        if value == self._stuck:
            return
        now = self.clock.now()
        if value:
            here = self._where()
            if self._motion is not None:
                _, start, dist, target = self._motion
                self._motion = (now, here, dist - (here - start), target)  # frozen where it is
            self._stuck = True
            return
        self._stuck = False
        if self._motion is not None:
            _, here, rest, target = self._motion
            self._motion = (now, here, rest, target)  # resume from the frozen spot

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        setters["Stuck"] = (bool, self._set_stuck)
        return setters
