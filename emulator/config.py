"""Emulator configuration: TOML in, validated models out, errors that name file, key and problem.

    [emulator]
    time_scale = 10        # simulated seconds per wall second
    seed = 42              # star fields, weather drift, seeded faults

    [[devices]]
    type = "camera"        # one of the ten Alpaca device types
    number = 0
    width = 1024           # options of that type (see emulator/devices/<type>.py)

    [[faults]]             # fault rules active from the start (see emulator/faults.py)
    name = "slow images"
    match = { device_type = "camera", member = "imagearray" }
    action = { kind = "latency", ms = 500 }

Without a config the emulator serves one device of each of the ten types as device number 0.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from emulator.devices import DEVICE_CLASSES
from emulator.faults import ACTION_KINDS, RuleSpec

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
    """One device of each of the ten types, as device number 0."""
    return EmulatorConfig(
        emulator=EmulatorSettings(**settings),
        devices=[cls.config_class() for cls in DEVICE_CLASSES.values()],
    )


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    skip_tag = False
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            # a discriminated union puts the tag after the index; it is not a key in the file
            skip_tag = i + 1 < len(loc) and loc[i + 1] in DEVICE_CLASSES
            continue
        if skip_tag:
            skip_tag = False
            continue
        if i > 0 and loc[i - 1] == "action" and part in ACTION_KINDS:
            continue  # the action-kind tag of a fault rule, likewise
        out += f".{part}" if out else str(part)
    return out or "(top level)"


def format_validation_error(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        where = _format_loc(tuple(err["loc"]))
        msg = err["msg"]
        if err["type"] == "union_tag_invalid" and isinstance(err.get("input"), dict) and "kind" in err["input"]:
            where = f"{where}.kind"
            msg = f"unknown fault action kind {err['input']['kind']!r}; valid kinds: {', '.join(ACTION_KINDS)}"
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown device type {err['input']['type']!r}; valid types: {', '.join(sorted(DEVICE_CLASSES))}" if isinstance(err.get("input"), dict) else msg
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "<config>") -> EmulatorConfig:
    try:
        return EmulatorConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load_config(path: str | Path) -> EmulatorConfig:
    """Read and validate a TOML config; ConfigError names the file, the key and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(data, str(path))
