"""Everything astra knows about alpyca: the device classes, how one is built, how an image is read.

Kept in one place so that a change of alpyca (another major version, a fallback for an older
one) touches one module.
"""

from __future__ import annotations

import importlib
from typing import Any

from astra.protocol import RawImage

#: lowercase type -> the alpyca class name (module ``alpaca.<lowercase>``).
DEVICE_TYPES: dict[str, str] = {
    "camera": "Camera",
    "covercalibrator": "CoverCalibrator",
    "dome": "Dome",
    "filterwheel": "FilterWheel",
    "focuser": "Focuser",
    "observingconditions": "ObservingConditions",
    "rotator": "Rotator",
    "safetymonitor": "SafetyMonitor",
    "switch": "Switch",
    "telescope": "Telescope",
}

#: First InterfaceVersion of each type that has Platform 7 Connect()/Connecting.
PLATFORM7_INTERFACE: dict[str, int] = {
    "camera": 4,
    "covercalibrator": 2,
    "dome": 3,
    "filterwheel": 3,
    "focuser": 4,
    "observingconditions": 2,
    "rotator": 4,
    "safetymonitor": 3,
    "switch": 3,
    "telescope": 4,
}


def type_key(device_type: str) -> str:
    """``"Safety Monitor"``, ``"safety_monitor"``, ``"SafetyMonitor"`` -> ``"safetymonitor"``; ValueError otherwise."""
    if not isinstance(device_type, str):
        raise ValueError(f"device_type must be a string naming one of {sorted(DEVICE_TYPES.values())}")
    key = device_type.replace(" ", "").replace("_", "").lower()
    if key not in DEVICE_TYPES:
        raise ValueError(f"unknown device_type {device_type!r}; valid types: {', '.join(DEVICE_TYPES.values())}")
    return key


def module_name(key: str) -> str:
    return f"alpaca.{key}"


class _RequestsWithTimeout:
    """Stands in for the ``requests`` module inside one alpyca module: ``get`` gets a default timeout."""

    def __init__(self, module: Any, timeout: float) -> None:
        self._module = module
        self._timeout = timeout

    def get(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return self._module.get(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def make_device(key: str, ip: str, number: int, *, http_timeout: float, image_timeout: float) -> Any:
    """The alpyca device object, with ``http_timeout`` on every request (alpyca hard-codes 5 s)."""
    import requests

    class _TimeoutSession(requests.Session):
        def __init__(self, timeout: float) -> None:
            super().__init__()
            self.astra_timeout = timeout

        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs["timeout"] = self.astra_timeout
            return super().request(method, url, *args, **kwargs)

    module = importlib.import_module(module_name(key))
    device = getattr(module, DEVICE_TYPES[key])(ip, number)
    device.rqs.close()
    device.rqs = _TimeoutSession(http_timeout)
    if key == "camera":
        # alpyca downloads images with a bare requests.get and no timeout, holding its
        # class-wide lock: one hung download would wedge the process for good. A device
        # process serves only this device, so giving that module a timeout is contained.
        module.requests = _RequestsWithTimeout(requests, image_timeout)  # type: ignore[attr-defined]
    return device


def has_platform7(device: Any) -> bool:
    """True when the client has Platform 7's Connect()/Connecting (alpyca 3.x; 2.0.x has neither).

    Looked up on the class: reading the ``Connecting`` property on the object would send a request.
    """
    cls = type(device)
    return callable(getattr(cls, "Connect", None)) and isinstance(getattr(cls, "Connecting", None), property)


def client_version() -> str:
    """``alpyca X.Y.Z`` as installed (for log lines)."""
    from importlib import metadata

    try:
        return f"alpyca {metadata.version('alpyca')}"
    except metadata.PackageNotFoundError:  # pragma: no cover - alpyca vendored or renamed
        return "alpyca (version unknown)"


def can_read_raw_image(device: Any) -> bool:
    return hasattr(device, "_fetch_imagedata_response")


def raw_image(device: Any) -> Any:
    """ImageArray as alpyca reads it, but kept as its flat pixel array for the pipe (see RawImage)."""
    response = device._fetch_imagedata_response("imagearray")
    if "application/imagebytes" not in (response.headers.get("content-type") or ""):
        return device._get_json_imagedata(response)  # JSON image: alpyca's nested lists as they are
    pixels = device._build_imagedata_array(response)
    del response
    desc = device.img_desc
    return RawImage(pixels, desc.Rank, desc.Dimension1, desc.Dimension2, desc.Dimension3)
