"""Dome: shutter and azimuth."""

from __future__ import annotations

from typing import Literal

from emulator.devices.base import Device, DeviceConfig


class DomeConfig(DeviceConfig):
    type: Literal["dome"] = "dome"


class Dome(Device):
    device_type = "dome"
    type_name = "Dome"
    interface_version = 3
    config_class = DomeConfig
