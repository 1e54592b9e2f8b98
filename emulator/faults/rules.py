"""Fault rules as written: what to match, what to do, when to fire; validated with pydantic.

A rule is ``{"name": ..., "set": ..., "enabled": ..., "match": {...}, "action": {"kind": ...,
...}, "trigger": {...}}`` (JSON, TOML or Python dicts), so a bad rule fails with the field that is
wrong. Instead of one ``action`` a rule may give ``actions``, a list acting together under one
match and one trigger decision (``[{"kind": "latency", "ms": 500}, {"kind": "truncate"}]``): at
most one terminal action per stage, and a connection-stage one (it ends the request) with no
other terminal action, so every action of the list can act; ``latency`` and ``bandwidth`` may
repeat (delays add, the lowest cap wins). A live rule is edited with a partial rule
(:func:`patched`), validated the same way. The action kinds are the registered units of
:mod:`emulator.faults.transport` and :mod:`emulator.faults.content`; how a rule is matched,
triggered and composed with others is :mod:`emulator.faults.engine`'s business.

Matching names. Alpaca device calls are matched by ``device_type``/``device_number``/
``member``/``verb``; the management API as device_type ``"management"`` (member ``apiversions``,
``description``, ``configureddevices``); the setup pages as ``"setup"``; OmniSim's simulator
endpoints as ``"simulator"`` (member ``xmlprofile``, ``reset``, ``restart``); UDP discovery as
``"discovery"`` with verb ``"UDP"``. ``path`` matches the URL path with a shell glob
(``/api/v1/camera/*/image*``). Absent keys match anything; member, device_type and path compare
case-insensitively. Datagram kinds (``discovery_*``) act only on discovery, every other kind
only on HTTP requests.

Triggers, per rule, in this order: outside the ``start_s``/``duration_s`` window (simulated
seconds since the rule was added, on the emulator's clock) a request does not count at all;
inside, it is the rule's n-th match; the first ``after`` matches pass; of the rest, every
``every``-th is a candidate; a candidate fires with ``probability`` (drawn from the rule's own
``random.Random(seed)``, one draw per candidate, so a seed gives the same firing sequence in any
process); at most ``count`` firings. ``seed`` defaults to the emulator's seed.

Outages repeat only when told to. A ``refuse`` or ``down`` rule is a window that ends by itself:
without ``count`` it fires once, unless ``every`` > 1 or ``probability`` < 1 says it repeats (then
it fires as those say, without limit); with ``count: N`` it fires up to N times. While its own
window is open it does not fire or count matches (a request on a keep-alive connection that
survives a refuse is answered), so the first request after the re-listen is answered unless
the trigger says it repeats. Removing the rule, or switching it off, ends its outage at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

import emulator.faults.content  # noqa: F401  - registers the HTTP-level kinds
import emulator.faults.transport  # noqa: F401  - registers the kinds below HTTP
from emulator.faults.actions import REGISTRY, STAGES
from emulator.sim.devices import DEVICE_CLASSES
from emulator.validation import describe_errors, union_tags

DEVICE_TYPES: tuple[str, ...] = tuple(DEVICE_CLASSES)
#: Non-device traffic that rules can match by device_type.
SPECIAL_TYPES = ("management", "setup", "simulator", "discovery")
VERBS = ("GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "UDP")


class FaultRuleError(ValueError):
    """A rule that cannot be used; ``errors`` lists ``(field, problem)`` pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("invalid fault rule: " + "; ".join(f"{f}: {m}" for f, m in errors))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- match -----------------------------------------------------------------------------------------


class Match(_Model):
    """Which requests a rule looks at; absent keys match anything."""

    device_type: str | None = Field(None, description="Alpaca device type, or management, setup, discovery")
    device_number: int | None = Field(None, ge=0, le=4294967295, description="Alpaca device number")
    member: str | None = Field(None, description="Alpaca member (case-insensitive), e.g. imagearray")
    verb: str | None = Field(None, description="HTTP verb (GET, PUT, ...) or UDP for discovery")
    path: str | None = Field(None, description="Shell glob on the URL path, e.g. /api/v1/camera/*/image*")

    @field_validator("device_type")
    @classmethod
    def _type(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.lower()
        if v not in DEVICE_TYPES + SPECIAL_TYPES:
            raise ValueError(f"unknown device type {v!r}; valid: {', '.join(DEVICE_TYPES + SPECIAL_TYPES)}")
        return v

    @field_validator("member", "path")
    @classmethod
    def _lower(cls, v: str | None) -> str | None:
        return v.lower() if v is not None else v

    @field_validator("verb")
    @classmethod
    def _verb(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.upper()
        if v not in VERBS:
            raise ValueError(f"unknown verb {v!r}; valid: {', '.join(VERBS)}")
        return v


# -- trigger ---------------------------------------------------------------------------------------


class Trigger(_Model):
    """When a matching request makes the rule fire (see the module docstring for the order)."""

    after: int = Field(0, ge=0, description="Let the first N matches through")
    count: int | None = Field(None, ge=1, description="Fire at most N times")
    every: int = Field(1, ge=1, description="Fire on every k-th match (after 'after')")
    probability: float = Field(1.0, ge=0, le=1, description="Chance that a candidate match fires")
    seed: int | None = Field(None, description="Seed of this rule's random sequence (default: the emulator's seed)")
    start_s: float = Field(0.0, ge=0, description="Window start, simulated s after the rule was added")
    duration_s: float | None = Field(None, gt=0, description="Window length in simulated s (default: forever)")


# -- actions: the registered kinds ------------------------------------------------------------------

#: Every kind, in the order of the stage it acts at (then as registered).
ACTION_KINDS: tuple[str, ...] = tuple(sorted(REGISTRY, key=lambda kind: STAGES.index(REGISTRY[kind].stage)))
Action = Annotated[Union[tuple(REGISTRY[kind] for kind in ACTION_KINDS)], Field(discriminator="kind")]  # type: ignore[valid-type]


def _shorthand(action: Any) -> Any:
    """``"bad_json"`` for ``{"kind": "bad_json"}``: a kind without parameters."""
    return {"kind": action} if isinstance(action, str) else action


def _problem(at: tuple[Any, ...], message: str) -> PydanticCustomError:
    """A rule error at a key below the validator's own place (see :func:`emulator.validation.describe_errors`)."""
    return PydanticCustomError("fault_rule", message, {"at": at})


def check_actions(actions: list[Any]) -> None:
    """The list of one rule's actions can all act together; the error names ``actions[i].kind``.

    At most one terminal action per stage (a second would be shadowed by the first on every
    request); a connection-stage action ends the request, so it shares a rule with no other
    terminal action; discovery kinds act on datagrams, the rest on HTTP, so a rule is one or the
    other. ``latency`` and ``bandwidth`` may repeat: they add and cap as across rules.
    """
    if not actions:
        raise _problem((), "an empty list; give at least one action (or one 'action')")
    taken: dict[str, int] = {}
    for i, action in enumerate(actions):
        where = (i, "kind")
        datagram = [j for j, other in enumerate(actions[:i]) if (other.stage == "datagram") != (action.stage == "datagram")]
        if datagram:
            j = datagram[0]
            raise _problem(where, f"{action.kind} and {actions[j].kind} (actions[{j}]) cannot share a rule: discovery "
                                  "kinds act on discovery datagrams, the others on HTTP requests")
        if not action.terminal:
            continue
        stage = action.acts_at
        if stage in taken:
            j = taken[stage]
            raise _problem(where, f"{action.kind} acts at the {stage} stage, which {actions[j].kind} (actions[{j}]) "
                                  "already takes; one action per stage in a rule")
        if "connection" in taken:
            j = taken["connection"]
            raise _problem(where, f"{actions[j].kind} (actions[{j}]) ends the request at the connection stage and "
                                  f"acts alone; it cannot share a rule with {action.kind}")
        if stage == "connection" and taken:
            j = min(taken.values())
            raise _problem(where, f"{action.kind} ends the request at the connection stage and acts alone; it cannot "
                                  f"share a rule with {actions[j].kind} (actions[{j}])")
        taken[stage] = i


class RuleSpec(_Model):
    """One rule as written in a config file, a control API call or Python."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["action"]}, {"required": ["actions"]}]})

    name: str | None = Field(None, description="Label shown in the traffic log (default: the id)")
    set: str | None = Field(None, min_length=1, description="Named rule set: its rules are switched on and off together")
    enabled: StrictBool = Field(True, description="A disabled rule matches nothing and keeps its counters")
    match: Match = Field(default_factory=Match)
    action: Action | None = Field(None, description="What it does: kind and that kind's parameters (or 'actions')")  # type: ignore[valid-type]
    actions: list[Action] | None = Field(  # type: ignore[valid-type]
        None, description="Several actions acting together, at most one per stage (instead of 'action')"
    )
    trigger: Trigger = Field(default_factory=Trigger)

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if isinstance(data.get("action"), str):
                data = {**data, "action": _shorthand(data["action"])}
            if isinstance(data.get("actions"), list) and any(isinstance(a, str) for a in data["actions"]):
                data = {**data, "actions": [_shorthand(a) for a in data["actions"]]}
        return data

    @field_validator("actions")
    @classmethod
    def _together(cls, actions: list[Any] | None) -> list[Any] | None:
        if actions is not None:
            check_actions(actions)
        return actions

    @model_validator(mode="after")
    def _transport(self) -> "RuleSpec":
        if self.action is not None and self.actions is not None:
            raise _problem(("actions",), "give either 'action' or 'actions', not both")
        if self.action is None and self.actions is None:
            raise _problem(("action",), "required (or 'actions', a list of actions)")
        m = self.match
        action = self.all_actions[0]  # check_actions: all of one transport
        if action.stage == "datagram":
            if m.device_type not in (None, "discovery"):
                raise ValueError(f"{action.kind} acts on discovery; match.device_type must be 'discovery' or absent")
            if m.device_number is not None or m.member is not None or m.path is not None or m.verb not in (None, "UDP"):
                raise ValueError(f"{action.kind} acts on discovery; match only device_type")
        elif m.device_type == "discovery" or m.verb == "UDP":
            raise ValueError(f"action {action.kind!r} cannot act on discovery; use discovery_garbage or discovery_silent")
        return self

    @property
    def all_actions(self) -> tuple[Any, ...]:
        """Its actions in the order written: ``(action,)`` or the ``actions`` list."""
        return (self.action,) if self.action is not None else tuple(self.actions or ())

    @property
    def kinds(self) -> str:
        """Its action kinds, ``latency+truncate+bad_json``, for logs and messages."""
        return "+".join(a.kind for a in self.all_actions)

    def as_written(self) -> dict[str, Any]:
        """The rule as JSON, with the one of ``action``/``actions`` it has (not the other as null)."""
        doc = self.model_dump(mode="json")
        doc.pop("actions" if self.action is not None else "action")
        return doc


_RULE_ADAPTER = TypeAdapter(RuleSpec)
#: Discriminator -> tags of the rule model (the action kinds), for error messages.
RULE_UNIONS = union_tags(RuleSpec)


def parse_rule(data: Any) -> RuleSpec:
    """Validate a rule (dict or RuleSpec); FaultRuleError names each bad field."""
    if isinstance(data, RuleSpec):
        return data
    if not isinstance(data, dict):
        raise FaultRuleError([("(rule)", f"must be an object with match, action, trigger; got {type(data).__name__}")])
    try:
        return _RULE_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise FaultRuleError(describe_errors(exc, RULE_UNIONS, empty="(rule)")) from None


#: The parts of a rule that a patch merges key by key (the rest it replaces).
_MERGED = ("match", "trigger")


def _merged_action(current: dict[str, Any] | None, value: Any) -> Any:
    """One action of a patch over the current one: key by key for the same kind (or none given),
    ``null`` putting a key back to its default; another kind replaces it."""
    value = _shorthand(value)
    if not isinstance(value, dict) or current is None or value.get("kind", current["kind"]) != current["kind"]:
        return value
    return {k: v for k, v in {**current, **value}.items() if v is not None}


def _merged_actions(current: dict[str, Any], value: Any) -> Any:
    """A patch's ``actions`` over the rule's (its one ``action`` counts as a list of one).

    A list is the new list, each element merged into the current action at its index
    (``[{"ms": 500}, {}, {}]`` changes the first one's ``ms``); an object keyed by index
    (``{"0": {"ms": 500}}``) changes only those elements."""
    base = current.get("actions") or ([current["action"]] if "action" in current else [])
    if isinstance(value, list):
        return [_merged_action(base[i] if i < len(base) else None, v) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value  # validation names it
    out = list(base)
    for key, part in value.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < len(base)):
            raise FaultRuleError([(f"actions.{key}", f"no action at that index; the rule has {len(base)} "
                                                     f"(0 to {len(base) - 1}); a list replaces them all")])
        out[int(key)] = _merged_action(base[int(key)], part)
    return out


def patched(spec: RuleSpec, patch: Any) -> RuleSpec:
    """``spec`` with ``patch`` (a partial rule) applied, validated as a whole rule.

    ``match``, ``trigger`` and ``action`` merge key by key (``null`` puts a key back to its
    default: ``"count": null`` is no limit); an ``action`` with another ``kind`` replaces the
    action; ``actions`` merge by index (:func:`_merged_actions`) and replace a single
    ``action``, as an ``action`` with a ``kind`` replaces ``actions``; ``name``, ``set`` and
    ``enabled`` replace. FaultRuleError names each bad field, and ``spec`` is left as it was.
    """
    if not isinstance(patch, dict):
        raise FaultRuleError([("(patch)", f"must be an object of the rule's fields to change; got {type(patch).__name__}")])
    current = spec.model_dump(mode="json", exclude_none=True)
    merged = dict(current)
    for key, value in patch.items():
        if key in _MERGED and isinstance(value, dict):
            part = {**current.get(key, {}), **value}
            merged[key] = {k: v for k, v in part.items() if v is not None}
        elif value is None and key in ("name", "set", "match", "trigger", "action", "actions"):
            merged.pop(key, None)
        elif key == "action":
            if "actions" in current and "actions" not in patch:
                if isinstance(value, dict) and "kind" not in value:
                    raise FaultRuleError([("action.kind", "required: this rule has 'actions'; patch them "
                                                          "('actions': {\"0\": {...}}), or give a kind to replace them")])
                merged.pop("actions")
            merged[key] = _merged_action(current.get("action"), value)
        elif key == "actions":
            merged[key] = _merged_actions(current, value)
            if "action" not in patch:
                merged.pop("action", None)
        else:
            merged[key] = value
    return parse_rule(merged)
