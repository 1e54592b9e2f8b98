"""Focuser: moves, halt, temperature."""

from __future__ import annotations

from typing import Literal

from emulator.devices.base import Device, DeviceConfig


class FocuserConfig(DeviceConfig):
    type: Literal["focuser"] = "focuser"


class Focuser(Device):
    device_type = "focuser"
    type_name = "Focuser"
    interface_version = 4
    config_class = FocuserConfig
