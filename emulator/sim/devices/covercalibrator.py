"""CoverCalibrator (ICoverCalibratorV2): a flat-panel cover that takes time to travel and a
calibrator lamp that takes time to warm up.

The cover is a position between 0 (closed) and 1 (open) moving at a constant rate, so a halt
part-way leaves it genuinely in between (CoverState Unknown). Both halves can be configured
away: a device without a cover reports CoverState NotPresent and answers NotImplemented to the
cover methods, and likewise for the calibrator, as the interface prescribes. For rehearsals the
control API can jam the cover or make the lamp fail, which surfaces as the Error states.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Callable, Literal

from pydantic import Field

from emulator.sim.clock import SimClock
from emulator.sim.devices.base import Device, DeviceConfig, get, put
from emulator.sim.errors import check_range


class CoverStatus(IntEnum):
    NotPresent = 0
    Closed = 1
    Moving = 2
    Open = 3
    Unknown = 4
    Error = 5


class CalibratorStatus(IntEnum):
    NotPresent = 0
    Off = 1
    NotReady = 2
    Ready = 3
    Unknown = 4
    Error = 5


class CoverCalibratorConfig(DeviceConfig):
    type: Literal["covercalibrator"] = "covercalibrator"
    has_cover: bool = Field(True, description="A motorised cover is present (False: CoverState NotPresent)")
    has_calibrator: bool = Field(True, description="A calibrator lamp is present (False: CalibratorState NotPresent)")
    cover_travel_s: float = Field(8.0, ge=0, le=3600, description="Simulated seconds for a full open or close")
    cover_initial: Literal["closed", "open", "unknown"] = Field("closed", description="Cover state at start")
    cover_can_halt: bool = Field(True, description="HaltCover stops the cover (False: HaltCover is NotImplemented)")
    max_brightness: int = Field(255, ge=1, le=2147483647, description="MaxBrightness of the calibrator")
    warmup_s: float = Field(3.0, ge=0, le=3600, description="Simulated seconds from CalibratorOn to Ready")
    cooldown_s: float = Field(0.0, ge=0, le=3600, description="Simulated seconds from CalibratorOff to Off")


class CoverCalibrator(Device):
    device_type = "covercalibrator"
    type_name = "CoverCalibrator"
    interface_version = 2
    config_class = CoverCalibratorConfig
    state_names = ("Brightness", "CalibratorChanging", "CalibratorState", "CoverMoving", "CoverState")

    def __init__(self, config: CoverCalibratorConfig, clock: SimClock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self.config: CoverCalibratorConfig = config
        # cover: position 0..1 and, while moving, (start time, start position, target position)
        self._pos = {"closed": 0.0, "open": 1.0, "unknown": 0.5}[config.cover_initial]
        self._motion: tuple[float, float, float] | None = None
        # Unknown or Error, when the position alone does not tell (never powered, halted, jammed)
        self._cover_override: CoverStatus | None = CoverStatus.Unknown if config.cover_initial == "unknown" else None
        self._jammed = False
        # calibrator: brightness, settled state, and while changing (final state, sim time it is reached)
        self._brightness = 0
        self._cal_state = CalibratorStatus.Off
        self._cal_pending: tuple[CalibratorStatus, float] | None = None
        self._lamp_fault = False

    # -- cover ---------------------------------------------------------------------------------

    def _travel_time(self, distance: float) -> float:
        return self.config.cover_travel_s * abs(distance)

    def _cover_position(self) -> float:
        """Where the cover is now; settles a finished move."""
        if self._motion is not None:
            start_t, start_pos, target = self._motion
            duration = self._travel_time(target - start_pos)
            elapsed = self.clock.now() - start_t
            if elapsed >= duration:
                self._motion = None
                self._pos = target
            else:
                frac = elapsed / duration if duration > 0 else 1.0
                return start_pos + (target - start_pos) * frac
        return self._pos

    def _require_cover(self, member: str) -> None:
        self._require(self.config.has_cover, member, "this device has no cover (CoverState NotPresent)")

    def _cover_status(self) -> CoverStatus:
        if not self.config.has_cover:
            return CoverStatus.NotPresent
        pos = self._cover_position()
        if self._motion is not None:
            return CoverStatus.Moving
        if self._cover_override is not None:
            return self._cover_override
        if pos >= 1.0:
            return CoverStatus.Open
        if pos <= 0.0:
            return CoverStatus.Closed
        return CoverStatus.Unknown

    def _move_cover(self, target: float) -> None:
        pos = self._cover_position()
        if self._jammed:
            # Accepted, but the cover cannot move: ASCOM reports that as CoverState Error.
            self._pos, self._motion, self._cover_override = pos, None, CoverStatus.Error
            return
        self._cover_override = None
        if pos == target:
            self._pos, self._motion = pos, None
            return
        self._motion = (self.clock.now(), pos, target)

    @get("coverstate")
    def coverstate(self) -> int:
        return int(self._cover_status())

    @get("covermoving")
    def covermoving(self) -> bool:
        # Platform 7: False, not an error, when there is no cover.
        return self._cover_status() == CoverStatus.Moving

    @put("opencover")
    def opencover(self) -> None:
        self._require_cover("OpenCover")
        self._move_cover(1.0)

    @put("closecover")
    def closecover(self) -> None:
        self._require_cover("CloseCover")
        self._move_cover(0.0)

    @put("haltcover")
    def haltcover(self) -> None:
        self._require_cover("HaltCover")
        self._require(self.config.cover_can_halt, "HaltCover", "this cover cannot be stopped once moving")
        pos = self._cover_position()
        if self._motion is not None:
            self._pos, self._motion = pos, None
            # Stopped part-way the cover is neither open nor closed.
            self._cover_override = None if pos in (0.0, 1.0) else CoverStatus.Unknown

    # -- calibrator ----------------------------------------------------------------------------

    def _require_calibrator(self, member: str) -> None:
        self._require(self.config.has_calibrator, member, "this device has no calibrator (CalibratorState NotPresent)")

    def _calibrator_status(self) -> CalibratorStatus:
        if not self.config.has_calibrator:
            return CalibratorStatus.NotPresent
        pending = self._cal_pending
        if pending is not None:
            if self.clock.now() < pending[1]:
                return CalibratorStatus.NotReady
            self._cal_pending = None
            self._cal_state = pending[0]
        return self._cal_state

    def _change_calibrator(self, final: CalibratorStatus, delay: float) -> None:
        if delay > 0:
            self._cal_pending = (final, self.clock.now() + delay)
        else:
            self._cal_pending = None
            self._cal_state = final

    @get("calibratorstate")
    def calibratorstate(self) -> int:
        return int(self._calibrator_status())

    @get("calibratorchanging")
    def calibratorchanging(self) -> bool:
        # Platform 7: False, not an error, when there is no calibrator.
        return self._calibrator_status() == CalibratorStatus.NotReady

    @get("brightness")
    def brightness(self) -> int:
        self._require_calibrator("Brightness")
        return self._brightness

    @get("maxbrightness")
    def maxbrightness(self) -> int:
        self._require_calibrator("MaxBrightness")
        return self.config.max_brightness

    @put("calibratoron", Brightness=int)
    def calibratoron(self, Brightness: int) -> None:
        self._require_calibrator("CalibratorOn")
        check_range("Brightness", Brightness, 0, self.config.max_brightness)
        self._calibrator_status()  # settle any change in progress first
        if self._lamp_fault:
            self._brightness = 0
            self._change_calibrator(CalibratorStatus.Error, 0)
            return
        self._brightness = Brightness
        self._change_calibrator(CalibratorStatus.Ready, self.config.warmup_s)

    @put("calibratoroff")
    def calibratoroff(self) -> None:
        self._require_calibrator("CalibratorOff")
        self._calibrator_status()
        self._brightness = 0
        self._change_calibrator(CalibratorStatus.Off, self.config.cooldown_s)

    # -- simulation-only state -----------------------------------------------------------------

    def extra_state(self) -> dict[str, Any]:
        return {
            "CoverPosition": round(self._cover_position(), 6),
            "CoverJammed": self._jammed,
            "LampFault": self._lamp_fault,
        }

    def _set_jammed(self, value: bool) -> None:
        pos = self._cover_position()
        self._jammed = value
        if value and self._motion is not None:
            # jammed mid-travel: it stops where it is, and says so
            self._pos, self._motion, self._cover_override = pos, None, CoverStatus.Error

    def _set_lamp_fault(self, value: bool) -> None:
        self._lamp_fault = value
        status = self._calibrator_status()
        if value and status in (CalibratorStatus.Ready, CalibratorStatus.NotReady):
            self._brightness = 0
            self._change_calibrator(CalibratorStatus.Error, 0)

    @staticmethod
    def _check_position(value: Any) -> None:
        if isinstance(value, (int, float)) and not 0.0 <= value <= 1.0:
            raise ValueError(f"CoverPosition must be between 0 (closed) and 1 (open), got {value}")

    def _set_position(self, value: float) -> None:
        self._check_position(value)
        self._pos, self._motion, self._cover_override = value, None, None

    def set_state(self, values: dict[str, Any]) -> None:
        """As the base, but CoverPosition's range is checked before anything is applied."""
        if "CoverPosition" in values:
            self._check_position(values["CoverPosition"])
        super().set_state(values)

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        setters["CoverJammed"] = (bool, self._set_jammed)
        setters["LampFault"] = (bool, self._set_lamp_fault)
        setters["CoverPosition"] = (float, self._set_position)
        return setters
