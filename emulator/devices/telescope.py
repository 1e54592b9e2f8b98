"""Telescope: slews, park, tracking, guiding, coordinates."""

from __future__ import annotations

from typing import Literal

from emulator.devices.base import Device, DeviceConfig


class TelescopeConfig(DeviceConfig):
    type: Literal["telescope"] = "telescope"


class Telescope(Device):
    device_type = "telescope"
    type_name = "Telescope"
    interface_version = 4
    config_class = TelescopeConfig
