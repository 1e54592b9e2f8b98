"""Switch (ISwitchV3): a bank of boolean and analogue switches, some read-only, some asynchronous.

Each switch has a value between its minimum and maximum in whole steps (a boolean one is 0..1
in steps of 1; GetSwitch is False at the minimum and True above it). A switch that cannot be
written (a limit sensor, say) answers NotImplemented to every setter, as the interface says;
an asynchronous change (SetAsync/SetAsyncValue) lands after the switch's delay on the
simulation clock, with StateChangeComplete False until then.

For rehearsals the control API sets values directly, by switch name or index, read-only
switches included: ``{"SwitchValues": {"Roof closed": false, "2": 40}}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from emulator.sim.clock import SimClock
from emulator.sim.devices.base import Device, DeviceConfig, get, put
from emulator.sim.errors import InvalidValue, OperationCancelled

_STEP_TOLERANCE = 1e-6


class SwitchSpec(BaseModel):
    """One switch of the bank, as configured."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="GetSwitchName")
    description: str = Field("", description="GetSwitchDescription (default: derived from name and kind)")
    kind: Literal["boolean", "analogue"] = Field("boolean", description="boolean (0/1) or analogue (min..max by step)")
    min: float = Field(0.0, description="MinSwitchValue (analogue only; boolean is 0)")
    max: float = Field(1.0, description="MaxSwitchValue (analogue only; boolean is 1)")
    step: float = Field(1.0, gt=0, description="SwitchStep (analogue only; boolean is 1)")
    value: float | None = Field(None, description="Initial value (default: the minimum)")
    can_write: bool = Field(True, description="CanWrite (False: a read-only sensor; setters are NotImplemented)")
    can_async: bool = Field(False, description="CanAsync: SetAsync/SetAsyncValue supported")
    async_delay_s: float = Field(2.0, ge=0, le=86400, description="Simulated seconds an asynchronous change takes")

    @model_validator(mode="after")
    def _check(self) -> "SwitchSpec":
        if self.kind == "boolean":
            if (self.min, self.max, self.step) != (0.0, 1.0, 1.0):
                raise ValueError("a boolean switch is 0..1 in steps of 1; use kind = 'analogue' for other ranges")
        elif not self.max > self.min:
            raise ValueError(f"max ({self.max}) must be greater than min ({self.min})")
        elif not _on_step((self.max - self.min) / self.step):
            raise ValueError(f"max - min ({self.max - self.min}) must be a whole number of steps of {self.step}")
        if self.value is not None and not _valid(self, self.value):
            raise ValueError(f"value {self.value} is not between {self.min} and {self.max} in steps of {self.step}")
        return self


def _on_step(k: float) -> bool:
    return abs(k - round(k)) <= _STEP_TOLERANCE * max(1.0, abs(k))


def _valid(spec: SwitchSpec, value: float) -> bool:
    return (
        math.isfinite(value)
        and spec.min - _STEP_TOLERANCE <= value <= spec.max + _STEP_TOLERANCE
        and _on_step((value - spec.min) / spec.step)
    )


def _default_switches() -> list[SwitchSpec]:
    return [
        SwitchSpec(name="Mount power", description="Mount power relay", can_async=True, async_delay_s=2.0),
        SwitchSpec(name="Camera power", description="Camera power relay"),
        SwitchSpec(name="Dew heater", description="Dew heater duty (%)", kind="analogue", min=0, max=100, step=1),
        SwitchSpec(
            name="Panel dimmer", description="Flat panel dimmer level", kind="analogue", min=0, max=255, step=1,
            can_async=True, async_delay_s=1.0,
        ),
        SwitchSpec(name="Roof closed", description="Roof closed limit sensor (read-only)", value=1, can_write=False),
    ]


class SwitchConfig(DeviceConfig):
    type: Literal["switch"] = "switch"
    switches: list[SwitchSpec] = Field(default_factory=_default_switches, description="The switches, Id 0 first")
    count: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="MaxSwitch: pad `switches` with generic boolean switches up to this count "
        "(without `switches`: that many generic boolean switches)",
    )
    can_rename: bool = Field(True, description="SetSwitchName works (False: NotImplemented)")

    @model_validator(mode="after")
    def _pad_and_check(self) -> "SwitchConfig":
        if self.count is not None:
            if "switches" not in self.model_fields_set:
                # only a count: a plain bank of boolean switches, not the sample bank
                object.__setattr__(self, "switches", [])
            if len(self.switches) > self.count:
                raise ValueError(f"count ({self.count}) is smaller than the {len(self.switches)} switches listed")
            extra = [SwitchSpec(name=f"Switch {i}") for i in range(len(self.switches), self.count)]
            if extra:
                # bypass validate_assignment recursion: set the padded list once
                object.__setattr__(self, "switches", [*self.switches, *extra])
        if not self.switches:
            raise ValueError("a switch device needs at least one switch")
        names = [s.name for s in self.switches]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"switch names must be unique; repeated: {dupes}")
        return self


@dataclass
class _Pending:
    """An asynchronous change in flight: the value it lands on and when."""

    target: float
    done_at: float


class Switch(Device):
    device_type = "switch"
    type_name = "Switch"
    interface_version = 3
    config_class = SwitchConfig

    def __init__(self, config: SwitchConfig, clock: SimClock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self.config: SwitchConfig = config
        self._specs = list(config.switches)
        self._names = [s.name for s in self._specs]
        self._values = [s.min if s.value is None else float(s.value) for s in self._specs]
        self._pending: list[_Pending | None] = [None] * len(self._specs)
        # per switch: None, or "cancelled" until StateChangeComplete has reported the cancellation
        self._cancel_state: list[str | None] = [None] * len(self._specs)

    # -- helpers ---------------------------------------------------------------------------------

    def _spec(self, Id: int) -> SwitchSpec:
        if not 0 <= Id < len(self._specs):
            raise InvalidValue(f"Id {Id} is out of range: switch ids are 0 to {len(self._specs) - 1} (MaxSwitch - 1)")
        return self._specs[Id]

    def _settle(self, Id: int) -> None:
        pending = self._pending[Id]
        if pending is not None and self.clock.now() >= pending.done_at:
            self._values[Id] = pending.target
            self._pending[Id] = None

    def _value(self, Id: int) -> float:
        self._spec(Id)
        self._settle(Id)
        return self._values[Id]

    def _check_writable(self, Id: int, member: str) -> SwitchSpec:
        spec = self._spec(Id)
        self._require(spec.can_write, member, f"switch {Id} ({self._names[Id]}) cannot be written (CanWrite is False)")
        return spec

    def _check_async(self, Id: int, member: str) -> SwitchSpec:
        spec = self._check_writable(Id, member)
        self._require(spec.can_async, member, f"switch {Id} ({self._names[Id]}) cannot operate asynchronously")
        return spec

    def _check_value(self, Id: int, spec: SwitchSpec, value: float, member: str) -> float:
        if not _valid(spec, value):
            raise InvalidValue(
                f"{member}: {value} is not valid for switch {Id} ({self._names[Id]}): "
                f"{spec.min} to {spec.max} in steps of {spec.step}"
            )
        # land exactly on the step grid, so GetSwitchValue returns what a client expects
        return min(spec.max, max(spec.min, spec.min + round((value - spec.min) / spec.step) * spec.step))

    def _set_now(self, Id: int, value: float) -> None:
        self._pending[Id] = None
        self._cancel_state[Id] = None
        self._values[Id] = value

    def _start_async(self, Id: int, spec: SwitchSpec, value: float) -> None:
        self._settle(Id)
        self._cancel_state[Id] = None
        if spec.async_delay_s <= 0:
            self._pending[Id] = None
            self._values[Id] = value
        else:
            self._pending[Id] = _Pending(value, self.clock.now() + spec.async_delay_s)

    def _complete(self, Id: int) -> bool:
        """StateChangeComplete without side effects on the cancellation report."""
        self._settle(Id)
        if self._cancel_state[Id] is not None:
            return False
        return self._pending[Id] is None

    # -- members ---------------------------------------------------------------------------------

    @get("maxswitch")
    def maxswitch(self) -> int:
        return len(self._specs)

    @get("canasync", Id=int)
    def canasync(self, Id: int) -> bool:
        return self._spec(Id).can_async

    @get("canwrite", Id=int)
    def canwrite(self, Id: int) -> bool:
        return self._spec(Id).can_write

    @get("getswitch", Id=int)
    def getswitch(self, Id: int) -> bool:
        # ASCOM: False at the minimum value, True for every other value.
        return self._value(Id) > self._specs[Id].min + _STEP_TOLERANCE * self._specs[Id].step

    @get("getswitchvalue", Id=int)
    def getswitchvalue(self, Id: int) -> float:
        return self._value(Id)

    @get("getswitchname", Id=int)
    def getswitchname(self, Id: int) -> str:
        self._spec(Id)
        return self._names[Id]

    @get("getswitchdescription", Id=int)
    def getswitchdescription(self, Id: int) -> str:
        spec = self._spec(Id)
        if spec.description:
            return spec.description
        if spec.kind == "boolean":
            return f"{self._names[Id]}: on/off switch"
        return f"{self._names[Id]}: {spec.min} to {spec.max} in steps of {spec.step}"

    @get("minswitchvalue", Id=int)
    def minswitchvalue(self, Id: int) -> float:
        return self._spec(Id).min

    @get("maxswitchvalue", Id=int)
    def maxswitchvalue(self, Id: int) -> float:
        return self._spec(Id).max

    @get("switchstep", Id=int)
    def switchstep(self, Id: int) -> float:
        return self._spec(Id).step

    @get("statechangecomplete", Id=int)
    def statechangecomplete(self, Id: int) -> bool:
        spec = self._spec(Id)
        self._require(spec.can_async, "StateChangeComplete", f"switch {Id} ({self._names[Id]}) is not asynchronous")
        if self._cancel_state[Id] == "cancelled":
            # reported once; afterwards the change simply never completed
            self._cancel_state[Id] = "reported"
            raise OperationCancelled(f"the asynchronous change of switch {Id} ({self._names[Id]}) was cancelled")
        return self._complete(Id)

    @put("setswitch", Id=int, State=bool)
    def setswitch(self, Id: int, State: bool) -> None:
        spec = self._check_writable(Id, "SetSwitch")
        self._set_now(Id, spec.max if State else spec.min)

    @put("setswitchvalue", Id=int, Value=float)
    def setswitchvalue(self, Id: int, Value: float) -> None:
        spec = self._check_writable(Id, "SetSwitchValue")
        self._set_now(Id, self._check_value(Id, spec, Value, "SetSwitchValue"))

    @put("setswitchname", Id=int, Name=str)
    def setswitchname(self, Id: int, Name: str) -> None:
        self._spec(Id)
        self._require(self.config.can_rename, "SetSwitchName", "switch names are fixed on this device")
        self._names[Id] = Name

    @put("setasync", Id=int, State=bool)
    def setasync(self, Id: int, State: bool) -> None:
        spec = self._check_async(Id, "SetAsync")
        self._start_async(Id, spec, spec.max if State else spec.min)

    @put("setasyncvalue", Id=int, Value=float)
    def setasyncvalue(self, Id: int, Value: float) -> None:
        spec = self._check_async(Id, "SetAsyncValue")
        self._start_async(Id, spec, self._check_value(Id, spec, Value, "SetAsyncValue"))

    @put("cancelasync", Id=int)
    def cancelasync(self, Id: int) -> None:
        """ISwitchV3 CancelAsync (alpyca sends it; the OpenAPI file omits it)."""
        self._check_async(Id, "CancelAsync")
        self._settle(Id)
        if self._pending[Id] is not None:
            self._pending[Id] = None
            self._cancel_state[Id] = "cancelled"

    # -- DeviceState and simulation-only state -----------------------------------------------------

    def operational_state(self) -> dict[str, Any]:
        """ISwitchV3 DeviceState: GetSwitchN, GetSwitchValueN, StateChangeCompleteN (async switches)."""
        n = len(self._specs)
        for i in range(n):
            self._settle(i)
        out: dict[str, Any] = {f"GetSwitch{i}": self.getswitch(i) for i in range(n)}
        out.update({f"GetSwitchValue{i}": self._values[i] for i in range(n)})
        out.update({f"StateChangeComplete{i}": self._complete(i) for i in range(n) if self._specs[i].can_async})
        return out

    def extra_state(self) -> dict[str, Any]:
        return {"SwitchValues": {self._names[i]: self._value(i) for i in range(len(self._specs))}}

    def _resolve(self, key: Any) -> int:
        if isinstance(key, int) and not isinstance(key, bool):
            index = key
        elif isinstance(key, str) and key in self._names:
            return self._names.index(key)
        elif isinstance(key, str) and key.strip().isdigit():
            index = int(key)
        else:
            raise KeyError(f"no switch named {key!r}; switches: {self._names}")
        if not 0 <= index < len(self._specs):
            raise KeyError(f"switch index {index} is out of range 0..{len(self._specs) - 1}")
        return index

    def _set_values(self, values: dict) -> None:
        """Set switch values by name or index, read-only switches included; all checked first."""
        checked: list[tuple[int, float]] = []
        for key, raw in values.items():
            i = self._resolve(key)
            spec = self._specs[i]
            if isinstance(raw, bool):
                value = spec.max if raw else spec.min
            elif isinstance(raw, (int, float)):
                value = float(raw)
            else:
                raise TypeError(f"switch {key!r} value must be a boolean or a number, got {raw!r}")
            if not _valid(spec, value):
                raise ValueError(f"switch {key!r}: {value} is not {spec.min} to {spec.max} in steps of {spec.step}")
            checked.append((i, value))
        for i, value in checked:
            self._set_now(i, value)

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        setters["SwitchValues"] = (dict, self._set_values)
        return setters
