"""What a check is, what running one gives, and the registry of check builders.

A :class:`Check` is a named, levelled unit with a ``run(ctx)`` that returns quietly when the
server conforms, raises :class:`CheckFailed` (with what was sent and what came back) when it
does not, or :class:`CheckSkipped` when the check does not apply (capability absent, member not
in this InterfaceVersion, motion forbidden by ``--no-motion``).

Builders are registered per family with :func:`family`; each takes a device context and yields
the checks for that device, so the plan for a device is known before anything runs (one pytest
item, one JUnit test case per check).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


class Level(str, enum.Enum):
    """ConformU's levels: an error breaks clients, an issue deviates from the spec, information
    is worth knowing. Errors and issues fail a check; information is a warning."""

    ERROR = "error"
    ISSUE = "issue"
    INFORMATION = "information"


class Outcome(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    WARNING = "warning"
    SKIPPED = "skipped"


class CheckFailed(Exception):
    """The server did not conform: ``message`` says how, ``sent``/``got`` show the evidence."""

    def __init__(self, message: str, sent: str | None = None, got: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.sent = sent
        self.got = got


class CheckSkipped(Exception):
    """The check does not apply to this device; the message says why."""


@dataclass(frozen=True)
class Check:
    family: str
    name: str
    level: Level
    run: Callable[..., None] = field(compare=False, repr=False)
    device: str | None = None  # "camera:0"; None for server-level checks
    member: str | None = None
    motion: bool = False  # moves or actuates hardware: skipped under --no-motion

    @property
    def id(self) -> str:
        parts = [self.family, self.device or "server"]
        if self.member:
            parts.append(self.member)
        parts.append(self.name)
        return "/".join(p.replace(" ", "_") for p in parts)


@dataclass
class Result:
    check: Check
    outcome: Outcome
    message: str = ""
    sent: str | None = None
    got: str | None = None
    duration_s: float = 0.0


def outcome_of_failure(level: Level) -> Outcome:
    return Outcome.WARNING if level is Level.INFORMATION else Outcome.FAILED


# -- the registry ----------------------------------------------------------------------------------

# Builders take a conform.context.DeviceContext / ServerContext; named loosely here because the
# context module raises this module's CheckFailed (arrows point one way: context -> checks).
DeviceBuilder = Callable[[Any], Iterable[Check]]
ServerBuilder = Callable[[Any], Iterable[Check]]

_DEVICE_BUILDERS: dict[str, DeviceBuilder] = {}
_SERVER_BUILDERS: dict[str, ServerBuilder] = {}


def family(name: str, *, server: bool = False) -> Callable:
    """Register a builder of the checks of family ``name`` (per device, or once per server)."""

    def register(builder: Callable) -> Callable:
        table = _SERVER_BUILDERS if server else _DEVICE_BUILDERS
        if name in table:
            raise ValueError(f"check family {name!r} registered twice")
        table[name] = builder
        return builder

    return register


def device_families() -> dict[str, DeviceBuilder]:
    """The per-device families registered so far (the runner imports the modules that register)."""
    return dict(_DEVICE_BUILDERS)


def server_families() -> dict[str, ServerBuilder]:
    return dict(_SERVER_BUILDERS)

