"""Switch: boolean and analogue switches."""

from __future__ import annotations

from typing import Literal

from emulator.devices.base import Device, DeviceConfig


class SwitchConfig(DeviceConfig):
    type: Literal["switch"] = "switch"


class Switch(Device):
    device_type = "switch"
    type_name = "Switch"
    interface_version = 3
    config_class = SwitchConfig
