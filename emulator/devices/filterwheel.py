"""FilterWheel: names, offsets, moves (Position -1 while moving)."""

from __future__ import annotations

from typing import Literal

from emulator.devices.base import Device, DeviceConfig


class FilterWheelConfig(DeviceConfig):
    type: Literal["filterwheel"] = "filterwheel"


class FilterWheel(Device):
    device_type = "filterwheel"
    type_name = "FilterWheel"
    interface_version = 3
    config_class = FilterWheelConfig
