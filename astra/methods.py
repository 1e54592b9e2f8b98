"""DeviceMethod: what ``AlpacaDevice.get(name)`` hands back for a method named without arguments.

The original controller's ``get("AbortExposure")`` returned the bound method and its callers
call it: ``camera.get("AbortExposure")()``. Ours hands back this callable instead; invoking it
performs the call through the pipe, with the device's deadline and typed errors, like
``get(name, **kwargs)`` does. Nothing is sent until it is invoked.
"""

from __future__ import annotations

from typing import Any

from astra.protocol import Request


class DeviceMethod:
    """A method of the device behind ``device`` (an AlpacaDevice: anything with ``_request`` and ``device_name``)."""

    __slots__ = ("device", "member")

    def __init__(self, device: Any, member: str) -> None:
        self.device = device
        self.member = member

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method now (positional and keyword arguments as the alpyca method takes them)."""
        return self.device._request(Request("call", self.member, tuple(args), dict(kwargs)))

    def __repr__(self) -> str:
        return f"<DeviceMethod {self.device.device_name}.{self.member}>"
