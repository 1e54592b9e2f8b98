"""One call on the alpyca device: which member it is, how often it may be tried, how it failed.

A call's *kind* decides its retries (astra.retry): reading a property is ``read``, calling a
method ``method``, writing a property ``write``. Every failure leaves as a RemoteDeviceError
subclass (astra.errors) with the original exception as ``__cause__``.
"""

from __future__ import annotations

import inspect
import threading
import time
from typing import Any, Callable

from astra import alpyca
from astra.errors import BadArguments, RemoteDeviceError, RemoteOther, RemoteTimeout, classify
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
        self._signatures: dict[tuple[type, str], Any] = {}

    def _error(self, cls: type[RemoteDeviceError], method: str, remote_type: str, text: str, **fields: Any) -> RemoteDeviceError:
        return cls(f"[{self.device_name}] {method}: {text}", method=method, device_name=self.device_name,
                   remote_type=remote_type, remote_message=text, **fields)

    def resolve(self, op: str, method: str, kwargs: dict[str, Any], value: Any = None,
                args: tuple = ()) -> tuple[CallKind, Callable[[], Any]]:
        """(kind, zero-argument callable) for one call on the device; ``op`` is get, call, set or image.

        ``get`` and ``call`` read a property, or call a method (with ``args``/``kwargs``, or none).
        Arguments the member cannot take raise :class:`BadArguments` here, before anything is sent.
        """
        dev = self.device
        if dev is None:
            raise self._error(RemoteOther, method, "RuntimeError",
                              "no device object (start the process, or assign .device)")
        if op == "set":
            return "write", lambda: setattr(dev, method, value)
        if op == "image" and alpyca.can_read_raw_image(dev):
            return "read", lambda: alpyca.raw_image(dev)
        if self._is_property(type(dev), method):
            if args or kwargs:
                raise self._bad_arguments(method, f"is a property of {type(dev).__name__}: it takes no arguments, "
                                                  f"got {_describe(args, kwargs)}")
            return "read", lambda: getattr(dev, method)
        try:
            member = getattr(dev, method)
        except AttributeError as exc:
            raise self._error(RemoteOther, method, "AttributeError", f"{type(dev).__name__} has no member {method!r}") from exc
        if callable(member):
            self._check_arguments(dev, method, member, args, kwargs)
            return "method", lambda: member(*args, **kwargs)
        if args or kwargs:
            raise self._bad_arguments(method, f"is not callable but was given {_describe(args, kwargs)}")
        return "read", lambda: member

    def is_method(self, method: str) -> bool:
        """True when ``method`` is a method of the device (looked up without sending anything)."""
        dev = self.device
        if dev is None or self._is_property(type(dev), method):
            return False
        found = getattr(type(dev), method, None)
        if found is None:
            found = getattr(dev, "__dict__", {}).get(method)
        return callable(found)

    def _bad_arguments(self, method: str, text: str) -> BadArguments:
        return BadArguments(f"[{self.device_name}] {method}: wrong arguments: {text}; nothing was sent",
                            method=method, device_name=self.device_name, remote_type="TypeError",
                            remote_message=f"{text}; nothing was sent", ambiguous=False)

    def _check_arguments(self, dev: Any, method: str, member: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> None:
        """The member's signature must accept the arguments: a mismatch is the caller's mistake, not the device's."""
        key = (type(dev), method)
        sig = self._signatures.get(key, False)
        if sig is False:
            try:
                sig = inspect.signature(member)
            except (TypeError, ValueError):  # a builtin without a signature: let the call decide
                sig = None
            if getattr(type(dev), method, None) is not None:  # a class member: the same for every object
                self._signatures[key] = sig
        if sig is None:
            return
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise self._bad_arguments(method, f"{type(dev).__name__}.{method}{sig} {exc}") from exc

    def _is_property(self, cls: type, method: str) -> bool:
        key = (cls, method)
        found = self._properties.get(key)
        if found is None:
            found = self._properties[key] = isinstance(getattr(cls, method, None), property)
        return found

    def run(self, op: str, method: str, kwargs: dict[str, Any], value: Any = None, deadline: float | None = None,
            args: tuple = ()) -> Any:
        kind, fn = self.resolve(op, method, kwargs, value, args)
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
        """Connect (Platform 7 Connect + Connecting, else Connected=True); RemoteDeviceError when it fails.

        Connect is used when the device's InterfaceVersion has it and the client does too: alpyca
        2.0.x has no Connect/Connecting, so with it every device connects with Connected = True.
        """
        deadline = time.monotonic() + connect_timeout
        dev = self.device
        if alpyca.has_platform7(dev):
            version = self.attempt("read", "InterfaceVersion", lambda: dev.InterfaceVersion, deadline)
            platform7 = isinstance(version, int) and version >= alpyca.PLATFORM7_INTERFACE[key]
        else:  # alpyca 2.0.x: no Connect/Connecting whatever the device supports
            platform7 = False
            self.report.log("info", f"the Alpaca client ({alpyca.client_version()}) has no Connect/Connecting: "
                                    "connecting with Connected = True")
        if platform7:
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


def _describe(args: tuple, kwargs: dict[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return "arguments (" + ", ".join(parts) + ")"
