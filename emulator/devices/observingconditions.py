"""ObservingConditions: weather that drifts deterministically."""

from __future__ import annotations

from typing import Literal

from emulator.devices.base import Device, DeviceConfig


class ObservingConditionsConfig(DeviceConfig):
    type: Literal["observingconditions"] = "observingconditions"


class ObservingConditions(Device):
    device_type = "observingconditions"
    type_name = "ObservingConditions"
    interface_version = 2
    config_class = ObservingConditionsConfig
