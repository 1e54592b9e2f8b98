"""The state one run keeps about a server and each of its devices.

:class:`ServerContext` owns the transport, the run's options and the transaction counter;
:class:`DeviceContext` adds one device: its InterfaceVersion (which decides the members it must
have), the alpyca client for behaviour checks, the cached probe answers the protocol checks
share, and :meth:`DeviceContext.wait` (every wait polls against a deadline).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable

from conform.checks import CheckFailed
from conform.members import DEVICE_TYPES, LATEST, Member, expected_members, members
from conform.transport import Exchange, Transport

CLIENT_ID = 4711


@dataclass(frozen=True)
class Options:
    strict: bool = False
    no_motion: bool = False
    #: Per HTTP request.
    timeout_s: float = 10.0
    #: Deadline of one asynchronous operation (a slew, an exposure, a move).
    operation_timeout_s: float = 120.0
    poll_interval_s: float = 0.02


class ServerContext:
    def __init__(self, base_url: str, options: Options | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.options = options or Options()
        self.transport = Transport(self.base_url, self.options.timeout_s)
        self._ctids = itertools.count(1)

    def next_ctid(self) -> int:
        return next(self._ctids)

    def ids(self) -> list[tuple[str, str]]:
        return [("ClientID", str(CLIENT_ID)), ("ClientTransactionID", str(self.next_ctid()))]

    def get(self, path: str, params: list[tuple[str, str]] | None = None, key: tuple[str, str] | None = None) -> Exchange:
        return self.transport.request("GET", path, params, timing_key=key)

    def close(self) -> None:
        self.transport.close()


class DeviceContext:
    """One device of the server, as the checks see it."""

    def __init__(self, server: ServerContext, device_type: str, number: int) -> None:
        if device_type not in DEVICE_TYPES:
            raise ValueError(f"unknown device type {device_type!r}; valid: {', '.join(DEVICE_TYPES)}")
        self.server = server
        self.options = server.options
        self.device_type = device_type
        self.number = number
        self.label = f"{device_type}:{number}"
        self.base_path = f"/api/v1/{device_type}/{number}"
        self.interface_version, self.version_problem = self._read_interface_version()
        self.members: dict[tuple[str, str], Member] = {
            (m.verb, m.name): m for m in expected_members(device_type, self.interface_version)
        }
        self._probes: dict[tuple[str, tuple], Exchange] = {}
        self._client: Any = None
        self.state: dict[str, Any] = {}  # what behaviour checks learn, for later checks

    # -- raw HTTP ----------------------------------------------------------------------------------

    def path(self, member: str) -> str:
        return f"{self.base_path}/{member}"

    def send(self, verb: str, member: str, params: list[tuple[str, str]] | None = None, *, path: str | None = None) -> Exchange:
        """Send exactly ``params`` (no IDs added)."""
        return self.server.transport.request(verb, path or self.path(member), params, timing_key=(self.label, member))

    def call(self, verb: str, member: str, params: list[tuple[str, str]] | None = None) -> Exchange:
        """Send with good ClientID and ClientTransactionID first, then ``params``."""
        return self.send(verb, member, self.server.ids() + list(params or []))

    def probe(self, member: str, params: list[tuple[str, str]] | None = None) -> Exchange:
        """One good GET of ``member``, shared by the checks that only read it."""
        key = (member, tuple(params or ()))
        if key not in self._probes:
            self._probes[key] = self.call("GET", member, params)
        return self._probes[key]

    def value(self, member: str, params: list[tuple[str, str]] | None = None) -> Any:
        """A GET's Value; CheckFailed when the answer has none."""
        ex = self.call("GET", member, params)
        doc = ex.json()
        if ex.status != 200 or not isinstance(doc, dict) or doc.get("ErrorNumber") != 0 or "Value" not in doc:
            raise CheckFailed(f"GET {member} gave no value", ex.sent, ex.got)
        return doc["Value"]

    def _read_interface_version(self) -> tuple[int, str | None]:
        ex = self.call("GET", "interfaceversion")
        doc = ex.json()
        if ex.status == 200 and isinstance(doc, dict) and doc.get("ErrorNumber") == 0:
            value = doc.get("Value")
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                return value, None
        if ex.status == 400 and members(self.device_type)[("GET", "interfaceversion")].since > 1:
            # Types whose InterfaceVersion arrived in V2 (camera, filter wheel, focuser, rotator,
            # telescope): a server that does not know the member is a V1 device, as ConformU and
            # alpyca read it, not a broken one.
            return 1, None
        latest = LATEST[self.device_type]
        return latest, f"InterfaceVersion unreadable ({ex.got}); expecting the members of version {latest}"

    # -- alpyca ------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The alpyca device object (created on first use)."""
        if self._client is None:
            self._client = _alpyca_class(self.device_type)(self.server.base_url.split("://", 1)[-1], self.number)
        return self._client

    def has(self, member: str) -> bool:
        """Whether this device's InterfaceVersion has ``member`` (either verb)."""
        return ("GET", member) in self.members or ("PUT", member) in self.members

    @property
    def platform7(self) -> bool:
        return ("PUT", "connect") in self.members

    @property
    def connection_member(self) -> str:
        """``connected``, or ``link`` for an IFocuserV1 (which has Link where later ones have Connected)."""
        return "connected" if self.has("connected") or self.device_type != "focuser" else "link"

    def ensure_connected(self) -> None:
        """Connect (Platform 7: Connect() and poll Connecting) unless already connected."""
        if self.state.get("connected"):
            return
        member = self.connection_member
        ex = self.call("GET", member)
        doc = ex.json()
        if isinstance(doc, dict) and doc.get("Value") is True:
            self.state["connected"] = True
            return
        if self.platform7:
            ex = self.call("PUT", "connect")
            _expect_ok(ex, "Connect")
            self.wait(lambda: self._get_bool("connecting") is False, "Connecting to become false after Connect()")
        else:
            ex = self.call("PUT", member, [(member.capitalize(), "True")])
            _expect_ok(ex, f"{member.capitalize()}=True")
        if self._get_bool(member) is not True:
            raise CheckFailed("the device did not become connected", ex.sent, ex.got)
        self.state["connected"] = True

    def disconnect(self) -> None:
        self.state["connected"] = False
        if self.platform7:
            self.call("PUT", "disconnect")
            self.wait(lambda: self._get_bool("connecting") is False, "Connecting to become false after Disconnect()")
        else:
            member = self.connection_member
            self.call("PUT", member, [(member.capitalize(), "False")])

    def _get_bool(self, member: str) -> bool | None:
        doc = self.call("GET", member).json()
        return doc.get("Value") if isinstance(doc, dict) else None

    # -- waiting -----------------------------------------------------------------------------------

    def wait(self, predicate: Callable[[], Any], what: str, timeout_s: float | None = None) -> Any:
        """Poll ``predicate`` until truthy; CheckFailed naming ``what`` at the deadline."""
        timeout = self.options.operation_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        interval = self.options.poll_interval_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise CheckFailed(f"timed out after {timeout:g} s waiting for {what}")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.5)

    def close(self) -> None:
        if self._client is not None:
            rqs = getattr(self._client, "rqs", None)
            if rqs is not None:
                rqs.close()
            self._client = None


def _expect_ok(ex: Exchange, what: str) -> None:
    doc = ex.json()
    if ex.status != 200 or not isinstance(doc, dict) or doc.get("ErrorNumber") != 0:
        raise CheckFailed(f"{what} failed", ex.sent, ex.got)


def _alpyca_class(device_type: str):
    import importlib

    module = importlib.import_module(f"alpaca.{device_type}")
    names = {
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
    return getattr(module, names[device_type])
