"""CoverCalibrator: cover motion and calibrator brightness."""

from __future__ import annotations

from typing import Literal

from emulator.devices.base import Device, DeviceConfig


class CoverCalibratorConfig(DeviceConfig):
    type: Literal["covercalibrator"] = "covercalibrator"


class CoverCalibrator(Device):
    device_type = "covercalibrator"
    type_name = "CoverCalibrator"
    interface_version = 2
    config_class = CoverCalibratorConfig
