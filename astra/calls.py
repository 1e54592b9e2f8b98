"""One call on the alpyca device: which member it is, how often it may be tried, how it failed.

A call's *kind* decides its retries (astra.retry): reading a property is ``read``, calling a
method ``method``, writing a property ``write``. Every failure leaves as a RemoteDeviceError
subclass (astra.errors) with the original exception as ``__cause__``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from astra import alpyca
from astra.errors import RemoteDeviceError, RemoteOther, RemoteTimeout, classify
from astra.reporting import Reporter
from astra.retry import CallKind, RetryPolicy


class DeviceCalls:
    """Runs calls on ``device`` (assignable: the device process makes it, tests may bring their own)."""

    def __init__(self, device_name: str, retry: RetryPolicy, report: Reporter, stopping: threading.Event) -> None:
        self.device: Any = None
        self.device_name = device_name
        self.retry = retry
        self.report = report
        self._stopping = stopping
        self._properties: dict[tuple[type, str], bool] = {}

    def _error(self, cls: type[RemoteDeviceError], method: str, remote_type: str, text: str, **fields: Any) -> RemoteDeviceError:
        return cls(f"[{self.device_name}] {method}: {text}", method=method, device_name=self.device_name,
                   remote_type=remote_type, remote_message=text, **fields)

    def resolve(self, op: str, method: str, kwargs: dict[str, Any], value: Any = None) -> tuple[CallKind, Callable[[], Any]]:
        """(kind, zero-argument callable) for one call on the device; ``op`` is get, set or image."""
        dev = self.device
        if dev is None:
            raise self._error(RemoteOther, method, "RuntimeError",
                              "no device object (start the process, or assign .device)")
        if op == "set":
            return "write", lambda: setattr(dev, method, value)
        if op == "image" and alpyca.can_read_raw_image(dev):
            return "read", lambda: alpyca.raw_image(dev)
        if not kwargs and self._is_property(type(dev), method):
            return "read", lambda: getattr(dev, method)
        try:
            member = getattr(dev, method)
        except AttributeError as exc:
            raise self._error(RemoteOther, method, "AttributeError", f"{type(dev).__name__} has no member {method!r}") from exc
        if callable(member):
            return "method", lambda: member(**kwargs)
        if kwargs:
            raise self._error(RemoteOther, method, "TypeError", f"is not callable but was given arguments {sorted(kwargs)}")
        return "read", lambda: member

    def _is_property(self, cls: type, method: str) -> bool:
        key = (cls, method)
        found = self._properties.get(key)
        if found is None:
            found = self._properties[key] = isinstance(getattr(cls, method, None), property)
        return found

    def run(self, op: str, method: str, kwargs: dict[str, Any], value: Any = None, deadline: float | None = None) -> Any:
        kind, fn = self.resolve(op, method, kwargs, value)
        return self.attempt(kind, method, fn, deadline)

    def attempt(self, kind: CallKind, method: str, fn: Callable[[], Any], deadline: float | None) -> Any:
        """Run ``fn`` under the retry policy; failures become RemoteDeviceError with their cause."""
        attempts = 0
        while True:
            attempts += 1
            try:
                return fn()
            except RemoteDeviceError:
                raise
            except Exception as exc:
                info = classify(exc)
                if self.retry.should_retry(kind, info["cause"], attempts):
                    wait = self.retry.delay(attempts)
                    if deadline is None or time.monotonic() + wait < deadline:
                        self.report.log(
                            "warning",
                            f"{method}: {info['cause']} ({info['remote_type']}: {info['remote_message']}); "
                            f"retry {attempts}/{self.retry.tries - 1} in {wait:.3g} s",
                        )
                        if not self._stopping.wait(wait):
                            continue
                raise RemoteDeviceError.from_fields(dict(info, method=method, device_name=self.device_name, attempts=attempts)) from exc

    def attempt_once(self, method: str) -> Any:
        """One read of ``method``, no retries (a poller keeps its own schedule)."""
        kind, fn = self.resolve("get", method, {})
        try:
            return fn()
        except RemoteDeviceError:
            raise
        except Exception as exc:
            raise RemoteDeviceError.from_fields(dict(classify(exc), method=method, device_name=self.device_name, attempts=1)) from exc

    def connect(self, key: str, connect_timeout: float, where: str) -> None:
        """Connect (Platform 7 Connect + Connecting, else Connected=True); RemoteDeviceError when it fails."""
        deadline = time.monotonic() + connect_timeout
        dev = self.device
        version = self.attempt("read", "InterfaceVersion", lambda: dev.InterfaceVersion, deadline)
        if isinstance(version, int) and version >= alpyca.PLATFORM7_INTERFACE[key]:
            self.attempt("method", "Connect", dev.Connect, deadline)
            while self.attempt("read", "Connecting", lambda: dev.Connecting, deadline):
                if time.monotonic() > deadline:
                    raise self._error(RemoteTimeout, "Connect", "TimeoutError",
                                      f"Connecting still true after {connect_timeout:g} s", ambiguous=True)
                if self._stopping.wait(0.05):
                    return
        else:
            self.attempt("write", "Connected", lambda: setattr(dev, "Connected", True), deadline)
        if not self.attempt("read", "Connected", lambda: dev.Connected, deadline):
            raise self._error(RemoteOther, "Connect", "ConnectFailed", "Connected is False after connecting")
        self.report.log("info", f"connected to {where}")
