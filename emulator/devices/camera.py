"""Camera: exposures, cooler, ImageArray/ImageBytes."""

from __future__ import annotations

from typing import Literal

from emulator.devices.base import Device, DeviceConfig


class CameraConfig(DeviceConfig):
    type: Literal["camera"] = "camera"


class Camera(Device):
    device_type = "camera"
    type_name = "Camera"
    interface_version = 4
    config_class = CameraConfig
