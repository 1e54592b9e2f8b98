"""SafetyMonitor: IsSafe, settable from the control API so the weather can turn on cue."""

from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import Field

from emulator.sim.devices.base import Device, DeviceConfig, get


class SafetyMonitorConfig(DeviceConfig):
    type: Literal["safetymonitor"] = "safetymonitor"
    is_safe: bool = Field(True, description="Initial IsSafe")


class SafetyMonitor(Device):
    device_type = "safetymonitor"
    type_name = "SafetyMonitor"
    interface_version = 3
    config_class = SafetyMonitorConfig
    state_names = ("IsSafe",)

    def __init__(self, config: SafetyMonitorConfig, clock, seed: int = 0) -> None:
        super().__init__(config, clock, seed)
        self._is_safe = config.is_safe

    @get("issafe", connection=False)
    def issafe(self) -> bool:
        # ASCOM: IsSafe must be False, not an error, while disconnected.
        return self._is_safe and self.connected

    def extra_state(self) -> dict[str, Any]:
        return {"IsSafe": self._is_safe}

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        setters = super().state_setters()
        setters["IsSafe"] = (bool, lambda v: setattr(self, "_is_safe", v))
        return setters
