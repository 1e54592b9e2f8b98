"""Fault rules: what to match, when to fire, what to do.

A rule is ``{"name": ..., "match": {...}, "action": {"kind": ..., ...}, "trigger": {...}}``
(JSON, TOML or Python dicts; validated here with pydantic, so a bad rule fails with the field
that is wrong). This module decides; it never touches a socket. :mod:`emulator.sockets` carries
the decision out below and at the HTTP level, :mod:`emulator.discovery` for UDP discovery.

Matching. Every request is described by :class:`RequestInfo`: Alpaca device calls by
``device_type``/``device_number``/``member``/``verb``; the management API as device_type
``"management"`` (member ``apiversions``, ``description``, ``configureddevices``); the setup
pages as ``"setup"``; UDP discovery as ``"discovery"`` with verb ``"UDP"``. ``path`` matches the
URL path with a shell glob (``/api/v1/camera/*/image*``). Absent keys match anything; member,
device_type and path compare case-insensitively. A rule only sees traffic its action can act
on: ``discovery_*`` kinds see only discovery datagrams, every other kind only HTTP requests.
The control API (``/emulator/v1``) is never matched, so a rule can always be removed again.

Triggers, per rule, in this order: outside the ``start_s``/``duration_s`` window (simulated
seconds since the rule was added, on the emulator's clock) a request does not count at all;
inside, it is the rule's n-th match; the first ``after`` matches pass; of the rest, every
``every``-th is a candidate; a candidate fires with ``probability`` (drawn from the rule's own
``random.Random(seed)``, one draw per candidate, so a seed gives the same firing sequence in any
process); at most ``count`` firings. ``seed`` defaults to the emulator's seed.

Composition, when several rules match one request: every firing ``latency`` rule adds its delay
(they add up); then the first firing *terminating* rule (any other kind), in the order the rules
were added, decides what happens after the delay. A later terminating rule that would also have
fired is shadowed: its match counter and random sequence advance, but it is not counted as fired
and not named in the traffic log.

Durations inside actions (``ms``, ``max_s``, ``duration_s``, ``bytes_per_s``) are wall-clock,
because clients time out on real clocks; only trigger windows use the simulation clock.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from emulator.validation import describe_errors

log = logging.getLogger(__name__)

DEVICE_TYPES = (
    "camera",
    "covercalibrator",
    "dome",
    "filterwheel",
    "focuser",
    "observingconditions",
    "rotator",
    "safetymonitor",
    "switch",
    "telescope",
)
#: Non-device traffic that rules can match by device_type.
SPECIAL_TYPES = ("management", "setup", "discovery")
VERBS = ("GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS", "PATCH", "UDP")
ENVELOPE_KEYS = ("Value", "ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage")


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


# -- actions ---------------------------------------------------------------------------------------


class Latency(_Model):
    kind: Literal["latency"]
    ms: float = Field(ge=0, le=3_600_000, description="Delay before the request is handled, wall ms")
    jitter_ms: float = Field(0, ge=0, le=3_600_000, description="Plus a seeded uniform 0..jitter_ms")


class Hang(_Model):
    kind: Literal["hang"]
    max_s: float = Field(120, gt=0, le=86400, description="Close the connection after this many wall s")


class Drop(_Model):
    kind: Literal["drop"]
    phase: Literal["request", "response"] = Field("request", description="Before or after the device acts")


class Reset(_Model):
    kind: Literal["reset"]
    phase: Literal["request", "response"] = Field("request", description="Before or after the device acts")


class Truncate(_Model):
    kind: Literal["truncate"]
    fraction: float = Field(0.5, ge=0, lt=1, description="Share of the body sent before the close")


class SlowBody(_Model):
    kind: Literal["slow_body"]
    bytes_per_s: float = Field(gt=0, description="Body bytes sent per wall second")


class HttpStatus(_Model):
    kind: Literal["http_status"]
    status: int = Field(500, ge=200, le=599, description="HTTP status code")
    body: str = Field("", description="Plain-text body")


class BadJson(_Model):
    kind: Literal["bad_json"]


class BadContentType(_Model):
    kind: Literal["bad_content_type"]
    content_type: str = Field("text/html; charset=utf-8", description="The wrong Content-Type")


class MissingKey(_Model):
    kind: Literal["missing_key"]
    key: Literal["Value", "ClientTransactionID", "ServerTransactionID", "ErrorNumber", "ErrorMessage"] = "Value"


class WrongType(_Model):
    kind: Literal["wrong_type"]


class WrongTransactionId(_Model):
    kind: Literal["wrong_transaction_id"]


class AscomErrorAction(_Model):
    kind: Literal["ascom_error"]
    number: int = Field(0x500, ge=1, le=0x7FFFFFFF, description="ErrorNumber (hex strings like '0x407' too)")
    message: str = Field("", description="ErrorMessage (default: a message naming the rule)")

    @field_validator("number", mode="before")
    @classmethod
    def _hex(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return int(v, 0)
            except ValueError:
                raise ValueError(f"not an integer: {v!r}") from None
        return v


class Refuse(_Model):
    kind: Literal["refuse"]
    duration_s: float = Field(gt=0, le=86400, description="Wall s without a listening socket")


class Down(_Model):
    kind: Literal["down"]
    duration_s: float = Field(gt=0, le=86400, description="Wall s down; open connections are closed too")


class DiscoveryGarbage(_Model):
    kind: Literal["discovery_garbage"]
    payload: str = Field('{"AlpacaPort": "eleven', description="The malformed reply")


class DiscoverySilent(_Model):
    kind: Literal["discovery_silent"]


Action = Annotated[
    Union[
        Latency,
        Hang,
        Drop,
        Reset,
        Truncate,
        SlowBody,
        HttpStatus,
        BadJson,
        BadContentType,
        MissingKey,
        WrongType,
        WrongTransactionId,
        AscomErrorAction,
        Refuse,
        Down,
        DiscoveryGarbage,
        DiscoverySilent,
    ],
    Field(discriminator="kind"),
]
ACTION_KINDS = tuple(m.model_fields["kind"].annotation.__args__[0] for m in Action.__origin__.__args__)  # type: ignore[attr-defined]
DISCOVERY_KINDS = ("discovery_garbage", "discovery_silent")
#: Kinds that answer without calling the device at all.
REQUEST_KINDS = ("hang", "http_status", "ascom_error", "refuse", "down")


class RuleSpec(_Model):
    """One rule as written in a config file, a control API call or Python."""

    name: str | None = Field(None, description="Label shown in the traffic log (default: the id)")
    match: Match = Field(default_factory=Match)
    action: Action  # type: ignore[valid-type]
    trigger: Trigger = Field(default_factory=Trigger)

    @model_validator(mode="after")
    def _transport(self) -> "RuleSpec":
        m = self.match
        if self.action.kind in DISCOVERY_KINDS:
            if m.device_type not in (None, "discovery"):
                raise ValueError(f"{self.action.kind} acts on discovery; match.device_type must be 'discovery' or absent")
            if m.device_number is not None or m.member is not None or m.path is not None or m.verb not in (None, "UDP"):
                raise ValueError(f"{self.action.kind} acts on discovery; match only device_type")
        elif m.device_type == "discovery" or m.verb == "UDP":
            raise ValueError(f"action {self.action.kind!r} cannot act on discovery; use discovery_garbage or discovery_silent")
        return self


_RULE_ADAPTER = TypeAdapter(RuleSpec)


def parse_rule(data: Any) -> RuleSpec:
    """Validate a rule (dict or RuleSpec); FaultRuleError names each bad field."""
    if isinstance(data, RuleSpec):
        return data
    if not isinstance(data, dict):
        raise FaultRuleError([("(rule)", f"must be an object with match, action, trigger; got {type(data).__name__}")])
    if isinstance(data.get("action"), str):  # shorthand: "action": "bad_json"
        data = {**data, "action": {"kind": data["action"]}}
    try:
        return _RULE_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise FaultRuleError(describe_errors(exc)) from None


# -- requests and decisions ------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestInfo:
    """What a rule can match on, taken from the request line (or the discovery datagram)."""

    verb: str
    path: str
    device_type: str | None = None
    device_number: int | None = None
    member: str | None = None

    @property
    def transport(self) -> str:
        return "discovery" if self.device_type == "discovery" else "http"


def request_info(verb: str, path: str) -> RequestInfo:
    """Classify an HTTP request by its path (no validation: rules only compare names)."""
    parts = path.split("/")
    # "/api/v1/camera/0/imagearray" -> ["", "api", "v1", "camera", "0", "imagearray"]
    if len(parts) == 6 and parts[1] == "api":
        num = parts[4]
        return RequestInfo(verb, path, parts[3].lower(), int(num) if num.isdigit() and num.isascii() else None, parts[5].lower())
    if len(parts) > 1 and parts[1] in ("management", "setup"):
        return RequestInfo(verb, path, parts[1], None, parts[-1].lower() or None)
    return RequestInfo(verb, path)


DISCOVERY_INFO = RequestInfo("UDP", "", "discovery")


@dataclass
class Plan:
    """What the faults decided for one request: a total delay, then at most one action."""

    latency_s: float = 0.0
    action: Any = None  # one of the action models, or None: answer normally
    fired: list[str] = field(default_factory=list)


class FaultRule:
    """A live rule: its spec, its counters, its random sequence. A context manager that removes itself."""

    def __init__(self, rule_id: str, spec: RuleSpec, created_s: float, default_seed: int, owner: "FaultSet") -> None:
        self.id = rule_id
        self.spec = spec
        self.created_s = created_s
        self.matched = 0
        self.fired = 0
        seed = spec.trigger.seed if spec.trigger.seed is not None else default_seed
        self.seed = seed
        self._rng = random.Random(seed)
        self._jitter_rng = random.Random(f"{seed}:jitter")
        self._owner = owner

    @property
    def name(self) -> str:
        return self.spec.name or self.id

    @property
    def label(self) -> str:
        """How the traffic log names this rule: its name, or its id."""
        return self.spec.name or self.id

    def matches(self, info: RequestInfo) -> bool:
        m = self.spec.match
        kind = self.spec.action.kind
        if (kind in DISCOVERY_KINDS) != (info.transport == "discovery"):
            return False
        if m.device_type is not None and m.device_type != info.device_type:
            return False
        if m.device_number is not None and m.device_number != info.device_number:
            return False
        if m.member is not None and m.member != info.member:
            return False
        if m.verb is not None and m.verb != info.verb:
            return False
        if m.path is not None and not fnmatch.fnmatchcase(info.path.lower(), m.path):
            return False
        return True

    def decide(self, now_s: float) -> bool:
        """Count one match (already known to match) and say whether the rule would fire."""
        t = self.spec.trigger
        age = now_s - self.created_s
        if age < t.start_s or (t.duration_s is not None and age > t.start_s + t.duration_s):
            return False
        self.matched += 1
        k = self.matched - t.after
        if k <= 0 or k % t.every:
            return False
        if t.probability < 1.0 and not self._rng.random() < t.probability:
            return False
        return t.count is None or self.fired < t.count

    def jitter_s(self) -> float:
        a = self.spec.action
        return self._jitter_rng.uniform(0, a.jitter_ms) / 1000.0 if a.jitter_ms else 0.0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id}
        d.update(self.spec.model_dump(mode="json"))
        d.update(matched=self.matched, fired=self.fired, created_s=self.created_s, seed=self.seed)
        return d

    def remove(self) -> None:
        self._owner.remove(self.id)

    def __enter__(self) -> "FaultRule":
        return self

    def __exit__(self, *exc: object) -> None:
        self._owner.remove(self.id, missing_ok=True)

    def __repr__(self) -> str:
        return f"<FaultRule {self.id} {self.spec.name or ''} {self.spec.action.kind} fired={self.fired}>"


class FaultSet:
    """The rules of one emulator (``emu.faults``), in the order they were added.

    ``clock`` is anything with ``now()`` in simulated seconds. With no rules, :meth:`evaluate`
    returns None before taking any lock, so an idle fault set costs one attribute read.

    Why a candidate cache. Whether a rule *matches* a request depends only on its
    :class:`RequestInfo` (for HTTP, derived from the verb and path alone), never on counters; only
    :meth:`FaultRule.decide` has state. So the rules that match a ``(verb, path)`` (or a given
    RequestInfo) are computed once, in creation order, and kept in a dict until the rule list
    changes: a request that no rule can match costs one dict lookup however many rules are
    loaded, and the documented composition order (creation order) is untouched. Every
    add/remove installs a new, empty cache with the new list (copy on write, so
    :meth:`evaluate` reads both without the lock); the cache is emptied when it holds
    ``_CACHE_MAX`` keys, so a client walking odd paths cannot grow it without bound.
    """

    _CACHE_MAX = 4096

    def __init__(self, clock: Any, seed: int = 0) -> None:
        self.clock = clock
        self.seed = seed
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        # (verb, path) or a RequestInfo -> the rules that match it, in creation order; replaced with _rules.
        self._candidates: dict[Any, tuple[FaultRule, ...]] = {}
        self._ids = itertools.count(1)
        self._listeners: list[Callable[[], None]] = []

    def _set_rules(self, rules: list[FaultRule]) -> None:
        """Install a new rule list and an empty candidate cache for it (caller holds the lock)."""
        self._candidates = {}
        self._rules = rules

    def add(
        self,
        rule: dict | RuleSpec | None = None,
        *,
        match: dict | None = None,
        action: dict | str | None = None,
        trigger: dict | None = None,
        name: str | None = None,
    ) -> FaultRule:
        """Add a rule, from one dict/RuleSpec or from keywords; returns the live rule."""
        if rule is None:
            if action is None:
                raise FaultRuleError([("action", "required")])
            data: dict[str, Any] = {"action": action}
            if match is not None:
                data["match"] = match
            if trigger is not None:
                data["trigger"] = trigger
            if name is not None:
                data["name"] = name
            rule = data
        elif any(v is not None for v in (match, action, trigger, name)):
            raise TypeError("pass either one rule or match=/action=/trigger=/name=, not both")
        spec = parse_rule(rule)
        with self._lock:
            live = FaultRule(f"r{next(self._ids)}", spec, self.clock.now(), self.seed, self)
            self._set_rules(self._rules + [live])  # copy on write: evaluate() reads without the lock
        log.info("fault rule %s added: %s", live.id, spec.model_dump(exclude_none=True))
        return live

    def remove(self, rule_id: str, missing_ok: bool = False) -> None:
        with self._lock:
            kept = [r for r in self._rules if r.id != rule_id]
            if len(kept) == len(self._rules) and not missing_ok:
                raise KeyError(f"no fault rule with id {rule_id!r}")
            self._set_rules(kept)

    def clear(self) -> None:
        with self._lock:
            self._set_rules([])

    def list(self) -> list[FaultRule]:
        return list(self._rules)

    def get(self, rule_id: str) -> FaultRule:
        for r in self._rules:
            if r.id == rule_id:
                return r
        raise KeyError(f"no fault rule with id {rule_id!r}")

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self):
        return iter(list(self._rules))

    def _candidates_for(self, key: Any, info: RequestInfo | None, verb: str = "", path: str = "") -> tuple[FaultRule, ...]:
        """The rules that match ``info`` (classified from verb and path when None), in creation
        order; computed once per key and rule list."""
        cache = self._candidates
        found = cache.get(key)
        if found is None:
            rules = self._rules
            if info is None:
                info = request_info(verb, path)
            found = tuple(r for r in rules if r.matches(info))
            if len(cache) >= self._CACHE_MAX:
                cache.clear()
            if cache is self._candidates and rules is self._rules:  # not replaced meanwhile
                cache[key] = found
        return found

    def evaluate(self, info: RequestInfo) -> Plan | None:
        """Decide what happens to one request; None when no rule fires."""
        if not self._rules:
            return None
        return self._evaluate(self._candidates_for(info, info))

    def evaluate_request(self, verb: str, path: str) -> Plan | None:
        """:meth:`evaluate` for an HTTP request line (``request_info(verb, path)``), which is
        classified only when the rule list has changed since this path was last seen."""
        if not self._rules:
            return None
        key = (verb, path)
        found = self._candidates.get(key)
        if found is None:
            found = self._candidates_for(key, None, verb, path)
        if not found:
            return None
        return self._evaluate(found)

    def _evaluate(self, rules: tuple[FaultRule, ...]) -> Plan | None:
        if not rules:
            return None
        plan: Plan | None = None
        with self._lock:
            now = self.clock.now()
            for rule in rules:
                if not rule.decide(now):
                    continue
                if plan is None:
                    plan = Plan()
                if rule.spec.action.kind == "latency":
                    plan.latency_s += rule.spec.action.ms / 1000.0 + rule.jitter_s()
                elif plan.action is None:
                    plan.action = rule.spec.action
                else:
                    continue  # shadowed by an earlier terminating rule
                rule.fired += 1
                plan.fired.append(rule.label)
        return plan
