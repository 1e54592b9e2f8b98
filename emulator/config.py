"""Emulator configuration: TOML in, validated models out, errors that name file, key and problem.

    profile = "omnisim"    # optional: start from a shipped profile (emulator/profiles/), then override it

    [emulator]
    time_scale = 10        # simulated seconds per wall second
    seed = 42              # star fields, weather drift, seeded faults
    control_port = 11121   # the control API on a port of its own, which no fault rule reaches

    [[devices]]
    type = "camera"        # one of the ten Alpaca device types
    number = 0
    width = 1024           # options of that type (see emulator/sim/devices/<type>.py)

    [[faults]]             # fault rules active from the start (see emulator/faults/rules.py)
    name = "slow images"
    match = { device_type = "camera", member = "imagearray" }
    action = { kind = "latency", ms = 500 }

Without a config the emulator serves the "default" profile: one device of each of the ten types
as device number 0.
"""

from __future__ import annotations

import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emulator import profiles
from emulator.faults import RuleSpec
from emulator.sim.devices import DEVICE_CLASSES
from emulator.validation import describe_errors, format_errors, union_tags

DeviceConfigAny = Annotated[
    Union[tuple(cls.config_class for cls in DEVICE_CLASSES.values())],  # type: ignore[valid-type]
    Field(discriminator="type"),
]


class ConfigError(ValueError):
    """A configuration problem, with the file and key path in its message."""


class EmulatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_scale: float = Field(1.0, gt=0, le=100000, description="Simulated seconds per wall-clock second")
    seed: int = Field(0, description="Seed for star fields, weather drift and random faults")
    server_name: str = "alpaca-rehearsal emulator"
    manufacturer: str = "alpaca-rehearsal"
    location: str = "Rehearsal room"
    lenient_ids: bool = Field(
        False,
        description="Answer a malformed ClientID/ClientTransactionID as if absent (200, 0 echoed) "
        "instead of HTTP 400, for clients that send bad IDs",
    )
    control_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve the control API on this port of its own too, which no fault rule can reach "
        "(0 picks a free port; unset: only on the devices' port)",
    )
    sunlight: bool | None = Field(
        None,
        description="Daylight override of the sky: true (day, for flats), false (night); unset follows the Sun",
    )
    start_utc: datetime | None = Field(
        None,
        description="Simulated UTC when the emulator starts (e.g. 2026-01-15T16:00:00Z; without a zone: UTC); "
        "unset: now. Fixes where the Sun, the Moon and the sidereal time are, for repeatable nights",
    )
    alpaca_simulators_api: bool = Field(
        False,
        description="Serve the original controller's simulator endpoints (GET /, GET /reload, GET/PUT /sunlight, "
        "PUT safetymonitor issafe); the alpaca-simulators profile turns this on",
    )


    @field_validator("start_utc")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=timezone.utc)


class EmulatorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emulator: EmulatorSettings = Field(default_factory=EmulatorSettings)
    devices: list[DeviceConfigAny] = Field(default_factory=list)  # type: ignore[valid-type]
    faults: list[RuleSpec] = Field(default_factory=list, description="Fault rules active from the start")

    @model_validator(mode="after")
    def _unique_numbers(self) -> "EmulatorConfig":
        seen: set[tuple[str, int]] = set()
        for i, dev in enumerate(self.devices):
            key = (dev.type, dev.number)
            if key in seen:
                raise ValueError(f"devices[{i}]: {dev.type} number {dev.number} is configured twice")
            seen.add(key)
        return self


def default_config(**settings: Any) -> EmulatorConfig:
    """The "default" profile: one device of each of the ten types, as device number 0."""
    return config_from_dict({"profile": "default", "emulator": settings}, "default profile")


def profile_config(name: str, over: dict[str, Any] | None = None, source: str = "<config>") -> EmulatorConfig:
    """Profile ``name``, with ``over`` (a config dict) layered on top of it."""
    return config_from_dict({**(over or {}), "profile": name}, source)


def config_from_dict(data: dict[str, Any], source: str = "<config>") -> EmulatorConfig:
    """Validate a config dict; a ``profile`` key names the profile it starts from."""
    if isinstance(data, dict) and "profile" in data:
        try:
            data = profiles.resolve(data)
        except profiles.ProfileError as exc:
            raise ConfigError(format_errors(source, "configuration", [("profile", str(exc))])) from None
    try:
        return EmulatorConfig.model_validate(data)
    except ValidationError as exc:
        errors = describe_errors(exc, union_tags(EmulatorConfig), nouns={"type": "device type"})
        raise ConfigError(format_errors(source, "configuration", errors)) from None


def with_profile(data: dict[str, Any], profile: str | None, source: str) -> dict[str, Any]:
    """``data`` to be layered over ``profile`` (None: as it is); a config naming another profile is refused."""
    if profile is None:
        return data
    named = data.get("profile")
    if named is not None and named != profile:
        raise ConfigError(format_errors(source, "configuration", [("profile", f"is {named!r}, but profile {profile!r} was asked for too; give one")]))
    return {**data, "profile": profile}


def load_config(path: str | Path, profile: str | None = None) -> EmulatorConfig:
    """Read and validate a TOML config (layered over ``profile``, if given); ConfigError names the
    file, the key and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(with_profile(data, profile, str(path)), str(path))
