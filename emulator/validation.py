"""Pydantic's validation errors, said the way a user wrote the input: a key path and a problem.

Configs, fault rules and scenario files are all validated by pydantic; their errors all come out
through :func:`describe_errors`, so a mistake reads the same wherever it was made::

    faults[0].action.ms: Input should be greater than or equal to 0
    devices[1].type: unknown device type 'telescop'; valid device types: camera, ...

A validator that knows which part of its input is wrong (``actions[1].kind`` of a rule whose
actions do not go together) raises a ``PydanticCustomError`` with the rest of the path as
``at`` in its context; the path then goes down to that part.

A discriminated union (a fault action's ``kind``, a device's ``type``) puts the chosen tag into
pydantic's location although it is not a key of the input; :func:`union_tags` finds a model's
tags, and :func:`describe_errors` leaves them out of the path.
"""

from __future__ import annotations

import functools
from typing import Any, Iterable, Mapping

from pydantic import TypeAdapter, ValidationError

_UNKNOWN: Any = object()

#: Location parts pydantic adds for validator functions in untagged unions; never keys.
_FUNCTION_PARTS = ("function-after[", "function-before[", "function-wrap[", "function-plain[")


def format_loc(
    loc: Iterable[Any], tags: Iterable[str] = (), empty: str = "(top level)", *, data: Any = _UNKNOWN,
    keys: Iterable[str] = (),
) -> str:
    """A pydantic location as a key path, ``faults[0].action.ms``, without union tags.

    Given ``data`` (the input that was validated) and ``keys`` (the discriminators), a part is
    taken for a tag only where the input has that tag under one of the keys, so a key spelled
    like some tag (a field ``http_status`` beside the action kind ``http_status``) stays in the
    path. Without ``data`` every part spelled like a tag is left out.
    """
    skip = frozenset(tags)
    keys = tuple(keys)
    out = ""
    node, fresh = data, True  # fresh: pydantic has not put a tag after this node's key yet
    for part in loc:
        if isinstance(part, str) and part.startswith(_FUNCTION_PARTS):
            continue
        if isinstance(part, str) and part in skip:
            if data is _UNKNOWN:
                continue
            if fresh and isinstance(node, Mapping) and any(node.get(key) == part for key in keys):
                fresh = False
                continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        if data is not _UNKNOWN:
            node, fresh = _child(node, part), True
    return out or empty


def _child(node: Any, part: Any) -> Any:
    if isinstance(node, Mapping):
        return node.get(part)
    if isinstance(node, (list, tuple)) and isinstance(part, int) and -len(node) <= part < len(node):
        return node[part]
    return None


def describe_errors(
    exc: ValidationError,
    unions: Mapping[str, Iterable[str]] | None = None,
    nouns: Mapping[str, str] | None = None,
    empty: str = "(top level)",
    data: Any = _UNKNOWN,
) -> list[tuple[str, str]]:
    """``(key path, problem)`` for each error, with readable messages for the common cases.

    ``unions`` maps each discriminator of the validated model to its tags (see
    :func:`union_tags`): the tags are left out of paths, and a missing tag names the valid ones.
    ``nouns`` names a discriminator in messages (``{"type": "device type"}``; default: its key).
    ``empty`` is the path of an error about the whole input. ``data``, the validated input, tells
    tags from keys spelled the same (see :func:`format_loc`).
    """
    unions = unions or {}
    nouns = nouns or {}
    tags = {tag for values in unions.values() for tag in values}
    out = []
    for err in exc.errors():
        at = (err.get("ctx") or {}).get("at") or ()
        loc = format_loc((*err["loc"], *at), tags, empty, data=data, keys=unions)
        kind = err["type"]
        msg = err["msg"]
        if kind in ("union_tag_invalid", "union_tag_not_found"):
            ctx = err.get("ctx") or {}
            key = str(ctx.get("discriminator", "tag")).strip("'")
            noun = nouns.get(key, key)
            loc = f"{loc}.{key}" if loc != empty else key
            if kind == "union_tag_invalid":
                valid = ", ".join(t.strip("'") for t in str(ctx.get("expected_tags", "")).split(", "))
                msg = f"unknown {noun} {ctx.get('tag')!r}; valid {noun}s: {valid}"
            else:
                valid = ", ".join(unions.get(key, ()))
                msg = f"missing; valid {noun}s: {valid}" if valid else "missing"
        elif kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "required"
        out.append((loc, msg.removeprefix("Value error, ")))
    return out


def format_errors(source: str, what: str, errors: Iterable[tuple[str, str]]) -> str:
    """``source: invalid <what>`` and one indented ``path: problem`` line per error."""
    return "\n".join([f"{source}: invalid {what}", *(f"  {loc}: {msg}" for loc, msg in errors)])


@functools.cache
def union_tags(tp: Any) -> dict[str, tuple[str, ...]]:
    """Every discriminated union inside ``tp`` (a model or type): discriminator -> its tags, in order."""
    found: dict[str, list[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "tagged-union" and isinstance(node.get("discriminator"), str):
                tags = found.setdefault(node["discriminator"], [])
                tags.extend(t for t in node["choices"] if isinstance(t, str) and t not in tags)
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(TypeAdapter(tp).core_schema)
    return {key: tuple(tags) for key, tags in found.items()}
