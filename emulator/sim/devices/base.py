"""What every simulated device shares: members, parameters, connection, DeviceState.

A device model is pure state on the simulation clock; it knows nothing of HTTP. Each Alpaca
member is a method marked with :func:`get` or :func:`put`, which names the member (lowercase,
as in the URL) and the typed parameters it takes. The app looks members up in
``Device.members``, parses and type-checks parameters, and calls the method with them as
keyword arguments; whatever the method returns becomes ``Value``. Raising an
:class:`~emulator.sim.errors.AscomError` becomes ErrorNumber/ErrorMessage.

Members need a connection unless marked ``connection=False``: the base answers NotConnected
before the method runs, so models only describe behaviour when connected.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from emulator.sim import interfaces
from emulator.sim.clock import SimClock
from emulator.sim.errors import ActionNotImplemented, InvalidOperation, InvalidValue, NotConnected, NotImplementedErr
from emulator.version import __version__

ParamType = type  # int, float, bool or str


@dataclass(frozen=True)
class Member:
    """One Alpaca member of a device type, as routed: ``(verb, name)`` and its parameters."""

    name: str
    verb: Literal["GET", "PUT"]
    attr: str
    params: tuple[tuple[str, ParamType], ...]
    connection: bool


def _mark(verb: Literal["GET", "PUT"], name: str, connection: bool, params: dict[str, ParamType]):
    if name != name.lower():
        raise ValueError(f"member names are lowercase, got {name!r}")

    def decorate(func: Callable) -> Callable:
        marks = list(getattr(func, "_alpaca_members", ()))
        marks.append((verb, name, connection, tuple(params.items())))
        func._alpaca_members = marks  # type: ignore[attr-defined]
        return func

    return decorate


def get(name: str, *, connection: bool = True, **params: ParamType):
    """Mark a method as the GET handler of Alpaca member ``name``; ``params`` name -> type."""
    return _mark("GET", name, connection, params)


def put(name: str, *, connection: bool = True, **params: ParamType):
    """Mark a method as the PUT handler of Alpaca member ``name``; ``params`` name -> type."""
    return _mark("PUT", name, connection, params)


class DeviceConfig(BaseModel):
    """Options every device has; each device type extends this with its own."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    type: str
    number: int = Field(0, ge=0, le=4294967295, description="Alpaca device number")
    name: str | None = Field(None, description="Device name (default: 'Rehearsal <Type> <n>')")
    description: str | None = None
    unique_id: str | None = Field(None, description="UniqueID in the management API (default: derived, stable)")
    connect_delay_s: float = Field(0.2, ge=0, le=600, description="How long Connecting stays true (simulated s)")
    connected: bool = Field(False, description="Start already connected")
    interface_version: int | None = Field(
        None, description="InterfaceVersion: members of later versions are unknown (HTTP 400); default the latest"
    )
    driver_info: str | None = Field(None, description="DriverInfo (default: the emulator's)")
    driver_version: str | None = Field(None, description="DriverVersion (default: the emulator's version)")

    @field_validator("interface_version")
    @classmethod
    def _known_version(cls, value: int | None, info: ValidationInfo) -> int | None:
        device_type = info.data.get("type")
        if value is None or device_type not in interfaces.LATEST:
            return value
        valid = interfaces.versions(device_type)
        if value not in valid:
            raise ValueError(
                f"{device_type} never had interface version {value}; valid: {', '.join(map(str, valid))}"
            )
        return value

    @model_validator(mode="after")
    def _fits_version(self) -> "DeviceConfig":
        if self.interface_version is None or self.type not in interfaces.LATEST:
            return self
        conflicts = interfaces.option_conflicts(
            self.type, self.interface_version, dict(self), self.model_fields_set
        )
        if conflicts:
            raise ValueError("; ".join(conflicts))
        return self

    @property
    def version(self) -> int:
        """The interface version this device serves."""
        return self.interface_version or interfaces.LATEST.get(self.type, 1)


class Site(Protocol):
    """What a device may see of the observatory it belongs to (the Registry): its peers and the
    site-wide state. Read-only by convention: a device never drives another through this."""

    seed: int
    observatory: Any

    def first(self, device_type: str) -> "Device | None": ...


class Device:
    """Base of all simulated devices: common members and the connection state machine."""

    #: The observatory this device belongs to, set by the Registry after building (None alone).
    site: Site | None = None

    device_type: ClassVar[str] = ""
    #: CamelCase name, as the management API and alpyca spell it.
    type_name: ClassVar[str] = ""
    interface_version: ClassVar[int] = 1
    config_class: ClassVar[type[DeviceConfig]] = DeviceConfig
    #: Operational properties reported by DeviceState, as Alpaca member names (CamelCase).
    state_names: ClassVar[tuple[str, ...]] = ()
    #: ``(verb, member) -> Member``, collected from the class and its bases.
    members: ClassVar[dict[tuple[str, str], Member]] = {}
    #: ``member -> verbs``, for telling "unknown member" from "wrong verb".
    member_verbs: ClassVar[dict[str, frozenset[str]]] = {}
    #: Per device: ``members`` and ``member_verbs`` of its interface version, which the router serves.
    routes: dict[tuple[str, str], Member]
    route_verbs: dict[str, frozenset[str]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        members: dict[tuple[str, str], Member] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for verb, name, connection, params in getattr(value, "_alpaca_members", ()):
                    members[(verb, name)] = Member(name, verb, attr, params, connection)
        cls.members = members
        verbs: dict[str, set[str]] = {}
        for verb, name in members:
            verbs.setdefault(name, set()).add(verb)
        cls.member_verbs = {name: frozenset(v) for name, v in verbs.items()}

    def __init__(self, config: DeviceConfig, clock: SimClock, seed: int = 0) -> None:
        self.config = config
        self.clock = clock
        self.number = config.number
        self.name = config.name or f"Rehearsal {self.type_name} {config.number}"
        self.rng = random.Random(f"{seed}:{self.device_type}:{config.number}")
        self.lock = threading.RLock()
        self.interface_version = config.version
        self.routes, self.route_verbs = interfaces.routes_for(type(self), self.interface_version)
        self._connected = config.connected
        # Platform 7 asynchronous connect/disconnect: (target state, sim time it completes)
        self._pending_connect: tuple[bool, float] | None = None

    # -- connection state machine -------------------------------------------------------------

    def _settle_connection(self) -> None:
        pending = self._pending_connect
        if pending is not None and self.clock.now() >= pending[1]:
            self._pending_connect = None
            self._set_connected(pending[0])

    def _set_connected(self, value: bool) -> None:
        """Change the connection state; subclasses extend to react (e.g. stop a cooler)."""
        self._connected = value

    @property
    def connected(self) -> bool:
        self._settle_connection()
        return self._connected

    def _require(self, flag: bool, member: str, why: str) -> None:
        """Capability guard: a member this configuration leaves out answers NotImplemented (0x400),
        in one wording for every device type: "<member> is not implemented: <why>"."""
        if not flag:
            raise NotImplementedErr(f"{member} is not implemented: {why}")

    # -- invoking members (called by the app, under self.lock) ---------------------------------

    def invoke(self, member: Member, args: dict[str, Any]) -> Any:
        if member.connection and not self.connected:
            raise NotConnected(f"{self.name} is not connected; {member.name} needs a connection")
        return getattr(self, member.attr)(**args)

    # -- common members (reference: the {device_type} paths of the device API) ----------------

    @put("action", connection=True, Action=str, Parameters=str)
    def action(self, Action: str, Parameters: str) -> str:
        raise ActionNotImplemented(f"Action '{Action}' is not implemented by {self.name}")

    @put("commandblind", Command=str, Raw=bool)
    def commandblind(self, Command: str, Raw: bool) -> None:
        raise NotImplementedErr("CommandBlind is not implemented")

    @put("commandbool", Command=str, Raw=bool)
    def commandbool(self, Command: str, Raw: bool) -> bool:
        raise NotImplementedErr("CommandBool is not implemented")

    @put("commandstring", Command=str, Raw=bool)
    def commandstring(self, Command: str, Raw: bool) -> str:
        raise NotImplementedErr("CommandString is not implemented")

    @get("connected", connection=False)
    def get_connected(self) -> bool:
        return self.connected

    @put("connected", connection=False, Connected=bool)
    def put_connected(self, Connected: bool) -> None:
        self._settle_connection()
        self._pending_connect = None
        self._set_connected(Connected)

    @put("connect", connection=False)
    def connect(self) -> None:
        self._begin_connect(True)

    @put("disconnect", connection=False)
    def disconnect(self) -> None:
        self._begin_connect(False)

    def _begin_connect(self, target: bool) -> None:
        self._settle_connection()
        if self._pending_connect is not None:
            if self._pending_connect[0] == target:
                return
            raise InvalidOperation("a Connect or Disconnect is already in progress")
        if self._connected == target:
            return
        delay = self.config.connect_delay_s
        if delay <= 0:
            self._set_connected(target)
        else:
            self._pending_connect = (target, self.clock.now() + delay)

    @get("connecting", connection=False)
    def connecting(self) -> bool:
        self._settle_connection()
        return self._pending_connect is not None

    @get("description", connection=False)
    def description(self) -> str:
        return self.config.description or f"alpaca-rehearsal simulated {self.device_type}"

    @get("driverinfo", connection=False)
    def driverinfo(self) -> str:
        if self.config.driver_info is not None:
            return self.config.driver_info
        return "alpaca-rehearsal emulator: a simulated Alpaca device for tests and fault rehearsals"

    @get("driverversion", connection=False)
    def driverversion(self) -> str:
        return self.config.driver_version if self.config.driver_version is not None else __version__

    @get("interfaceversion", connection=False)
    def interfaceversion(self) -> int:
        return self.interface_version

    @get("name", connection=False)
    def get_name(self) -> str:
        return self.name

    @get("supportedactions", connection=False)
    def supportedactions(self) -> list[str]:
        return []

    @get("devicestate")
    def devicestate(self) -> list[dict[str, Any]]:
        with self.clock.instant():  # every value, and the TimeStamp, of one instant
            return [{"Name": k, "Value": v} for k, v in self.operational_state().items()] + [
                {"Name": "TimeStamp", "Value": self.clock.utcnow().strftime("%Y-%m-%dT%H:%M:%S.%f")}
            ]

    # -- state, for DeviceState and the control API -----------------------------------------------

    def operational_state(self) -> dict[str, Any]:
        """The DeviceState properties that this device implements, read without side effects."""
        out: dict[str, Any] = {}
        for name in self.state_names:
            member = self.members.get(("GET", name.lower()))
            if member is None:
                continue
            try:
                out[name] = getattr(self, member.attr)()
            except (NotImplementedErr, InvalidOperation, InvalidValue):
                continue
        return out

    def get_state(self) -> dict[str, Any]:
        """Everything the control API shows: Connected, DeviceState values, settable extras."""
        with self.clock.instant():
            state: dict[str, Any] = {"Connected": self.connected}
            state.update(self.operational_state())
            state.update(self.extra_state())
            return state

    def extra_state(self) -> dict[str, Any]:
        """Settable simulation-only state (e.g. a jammed shutter); subclasses extend."""
        return {}

    def set_state(self, values: dict[str, Any]) -> None:
        """Apply simulated state by name.

        Every name and value is checked before any is applied, so a bad request changes nothing.
        Raises KeyError for an unknown name and TypeError for a value of the wrong type.
        """
        setters = self.state_setters()
        unknown = [k for k in values if k not in setters]
        if unknown:
            raise KeyError(f"unknown state {unknown} for {self.device_type}; settable: {sorted(setters)}")
        checked = {key: _coerce(key, setters[key][0], value) for key, value in values.items()}
        for key, value in checked.items():
            setters[key][1](value)

    def state_setters(self) -> dict[str, tuple[type, Callable[[Any], None]]]:
        """Names settable through the control API -> (type, setter); subclasses extend."""
        return {"Connected": (bool, lambda v: self.put_connected(v))}


def _coerce(key: str, kind: type, value: Any) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is object or (isinstance(value, kind) and not (kind is int and isinstance(value, bool))):
        return value
    raise TypeError(f"state {key!r} must be {kind.__name__}, got {type(value).__name__} {value!r}")
