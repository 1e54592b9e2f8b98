"""Pydantic errors as ``(key path, problem)`` pairs a person can act on.

Moved out of :mod:`emulator.faults` so every model in the project formats its errors one way.
It imports no model: the tags of a discriminated union come from pydantic's own error context
(a module that holds the models imports this one, never the other way round).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


def format_loc(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a key path, without discriminator tags: ``action.ms``."""
    out = ""
    prev: Any = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif prev == "action":
            pass  # the tag pydantic inserts after the fault action union; not a key in the rule
        else:
            out += f".{part}" if out else str(part)
        prev = part
    return out or "(rule)"


def _tags(ctx: dict[str, Any]) -> str:
    """``"'a', 'b'"`` (pydantic's expected_tags) as ``a, b``."""
    return ", ".join(t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip())


def describe_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """``(field, problem)`` for each error, with readable messages for the common cases."""
    out = []
    for err in exc.errors():
        loc = format_loc(tuple(err["loc"]))
        msg = err["msg"]
        ctx = err.get("ctx") or {}
        tag = str(ctx.get("discriminator", "'kind'")).strip("'")
        if err["type"] == "union_tag_invalid":
            loc = f"{loc}.{tag}"
            msg = f"unknown {tag} {ctx.get('tag')!r}; valid {tag}s: {_tags(ctx)}"
        elif err["type"] == "union_tag_not_found":
            loc = f"{loc}.{tag}"
            msg = "missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append((loc, msg))
    return out
