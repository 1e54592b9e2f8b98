"""Profiles: whole emulator configurations shipped as TOML data, to start from by name.

    alpaca-emulator --profile omnisim          # or --list-profiles
    Emulator(profile="omnisim")
    profile = "omnisim"                        # first line of a user's config, which then overrides it

A profile is a config file (``[emulator]``, ``[[devices]]``, ``[[faults]]``) plus a ``[profile]``
table with a one-line ``description``; every ``*.toml`` in this folder is one, named by its file
name, so adding a profile is adding a file. A profile may start from another (``base = "NAME"`` in
its ``[profile]`` table). Layering a config over a profile (:func:`layer`):

- ``[emulator]`` keys replace the profile's, one by one;
- a ``[[devices]]`` entry with the ``type`` and ``number`` (default 0) of a profile device changes
  only the options it gives; any other entry adds a device;
- ``[[faults]]`` are added after the profile's.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

SUFFIX = ".toml"


class ProfileError(ValueError):
    """An unknown profile, or one that cannot be read; the message names the valid ones."""


def names() -> list[str]:
    """Every shipped profile, sorted."""
    return sorted(p.name[: -len(SUFFIX)] for p in resources.files(__name__).iterdir() if p.name.endswith(SUFFIX))


def _read(name: str) -> dict[str, Any]:
    if not isinstance(name, str) or name not in names():
        raise ProfileError(f"unknown profile {name!r}; valid profiles: {', '.join(names())}")
    path = resources.files(__name__) / f"{name}{SUFFIX}"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:  # a shipped file: a packaging mistake, said plainly
        raise ProfileError(f"profile {name!r} ({path}) is not valid TOML: {exc}") from None


def describe(name: str) -> str:
    """The profile's one-line description."""
    return str(_read(name).get("profile", {}).get("description", ""))


def load(name: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The profile as a config dict (its own ``profile`` chain resolved, its ``[profile]`` table dropped)."""
    if name in _seen:
        raise ProfileError(f"profile {name!r} starts from itself: {' -> '.join((*_seen, name))}")
    data = _read(name)
    meta = data.pop("profile", {})
    base = meta.get("base") if isinstance(meta, dict) else None
    if base is None:
        return data
    return layer(load(base, (*_seen, name)), data)


def resolve(data: dict[str, Any], _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config dict with its ``profile = "NAME"`` key (if any) replaced by that profile, layered under it."""
    base_name = data.get("profile")
    if base_name is None:
        return data
    rest = {k: v for k, v in data.items() if k != "profile"}
    return layer(load(base_name, _seen), rest)


def _device_key(dev: Any) -> tuple[Any, Any] | None:
    if not isinstance(dev, dict):
        return None
    return dev.get("type"), dev.get("number", 0)


def layer(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` (a user's config dict) on top of ``base`` (a profile's), as the module docstring says.

    Values are not checked here: whatever comes out is validated as one config, so a mistake in
    ``over`` is reported with its key path as if the file held the merged config.
    """
    out = dict(base)
    for key, value in over.items():
        if key == "emulator" and isinstance(value, dict) and isinstance(base.get("emulator"), dict):
            out["emulator"] = {**base["emulator"], **value}
        elif key == "devices" and isinstance(value, list) and isinstance(base.get("devices"), list):
            devices = [dict(d) if isinstance(d, dict) else d for d in base["devices"]]
            index = {_device_key(d): i for i, d in enumerate(devices) if _device_key(d) is not None}
            for dev in value:
                at = index.get(_device_key(dev))
                if at is None:
                    devices.append(dev)
                else:
                    devices[at] = {**devices[at], **dev}
            out["devices"] = devices
        elif key == "faults" and isinstance(value, list) and isinstance(base.get("faults"), list):
            out["faults"] = [*base["faults"], *value]
        else:
            out[key] = value
    return out
