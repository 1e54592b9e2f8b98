"""Rotator: moves, sync, reverse."""

from __future__ import annotations

from typing import Literal

from emulator.devices.base import Device, DeviceConfig


class RotatorConfig(DeviceConfig):
    type: Literal["rotator"] = "rotator"


class Rotator(Device):
    device_type = "rotator"
    type_name = "Rotator"
    interface_version = 4
    config_class = RotatorConfig
