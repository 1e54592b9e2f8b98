"""The fault engine: which rules a request matches, which of them fire, and the plan they make.

    request line ─> RequestInfo ─> candidate rules (cached per verb+path) ─> triggers ─> Plan
                                                                     (delays, caps, one action per stage)

The engine decides; it never touches a socket or a response. The socket layer evaluates one
plan per request as it arrives and carries out its connection and response-bytes stages; the
fault middleware carries out its request and response-content stages (see
:mod:`emulator.faults.actions`). The control API (``/emulator/v1``) is never evaluated, and on its
own listener (``control_port``) no fault layer serves it at all, so a rule can always be removed
again, even during an outage of the devices' port.

Composition, when several rules match one request, in the order the rules were added: every
firing non-terminal rule shapes the request (``latency`` adds its delay, per direction;
``bandwidth`` caps its direction's rate, the lowest cap wins). Terminal rules (every other kind)
compose by stage: each of the stages request-bytes, request, response-content and response-bytes
takes the first firing action for it, and they act in that order (``bad_json`` then ``truncate``:
half of a broken body); a connection-stage action (hang, drop, reset, refuse, down) ends the
request before the app, so it acts alone, and only when no earlier rule took a stage. A firing
terminal rule that finds its stage taken, or the request cut, is shadowed: its match counter and
random sequence advance, but it is not counted as fired; the traffic log names it under
``shadowed`` (the rules that acted under ``rules``).

A rule with several ``actions`` is those actions as rules of the same match and trigger, in
its place in the order, firing together: one trigger decision, each action shaping or taking
its stage as above, in the order written. It counts one firing and is named once under
``rules`` when any of its actions acted; an action whose stage an earlier rule took is shadowed,
so the rule is named under ``shadowed`` too (and only there, not counted as fired, when none
of its actions could act). Its ``count`` (and an outage's fire-once limit) counts those firings.

Durations inside actions (``ms``, ``max_s``, ``duration_s``, ``bytes_per_s``) are wall-clock,
because clients time out on real clocks; only trigger windows use the simulation clock.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from emulator.faults.actions import STAGES, FaultAction
from emulator.faults.rules import FaultRuleError, RuleSpec, parse_rule, patched

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestInfo:
    """What a rule can match on, taken from the request line (or the discovery datagram)."""

    verb: str
    path: str
    device_type: str | None = None
    device_number: int | None = None
    member: str | None = None


def request_info(verb: str, path: str) -> RequestInfo:
    """Classify an HTTP request by its path (no validation: rules only compare names)."""
    parts = path.split("/")
    # "/api/v1/camera/0/imagearray" -> ["", "api", "v1", "camera", "0", "imagearray"]
    if len(parts) == 6 and parts[1] == "api":
        num = parts[4]
        return RequestInfo(verb, path, parts[3].lower(), int(num) if num.isdigit() and num.isascii() else None, parts[5].lower())
    if len(parts) > 1 and parts[1] in ("management", "setup", "simulator"):
        return RequestInfo(verb, path, parts[1], None, parts[-1].lower() or None)
    return RequestInfo(verb, path)


DISCOVERY_INFO = RequestInfo("UDP", "", "discovery")


#: ``Plan.error_number`` before anyone noted it.
NOT_NOTED: Any = type("_NotNoted", (), {"__repr__": lambda self: "<not noted>", "__slots__": ()})()


@dataclass
class Plan:
    """What the faults decided for one request: its shaping (delays, rate caps) and at most one
    terminal action.

    ``latency_s`` is waited before the app reads the request, ``reply_delay_s`` after it answered
    (before a connection-stage action, which leaves no answer to hold, both are waited first);
    ``rate_up``/``rate_down`` cap the request's and the reply's bytes per second (None: no cap).
    ``error_number`` is where the fault middleware notes the ErrorNumber of the app's own reply
    before a response-content action breaks it, so the traffic log shows what the device said.
    """

    latency_s: float = 0.0
    reply_delay_s: float = 0.0
    rate_up: float | None = None
    rate_down: float | None = None
    #: stage -> the terminal action that acts there (none: answer normally, after the shaping)
    actions: dict[str, FaultAction] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)
    #: Rules that would have fired but did not act: an earlier rule took their stage, or cut the request.
    shadowed: list[str] = field(default_factory=list)
    error_number: Any = NOT_NOTED

    def at(self, stage: str) -> FaultAction | None:
        """The terminal action that acts at ``stage``, if any."""
        return self.actions.get(stage)

    @property
    def action(self) -> FaultAction | None:
        """The first of its terminal actions in the order of the stages (None without one)."""
        for stage in STAGES:
            if stage in self.actions:
                return self.actions[stage]
        return None

    @property
    def stage(self) -> str | None:
        """The stage of :attr:`action` (:attr:`FaultAction.acts_at`), None without one."""
        action = self.action
        return action.acts_at if action is not None else None

    @property
    def in_app(self) -> bool:
        """Whether the fault middleware has a stage to carry out (request, response-content)."""
        return "request" in self.actions or "response-content" in self.actions

    @property
    def holds_reply(self) -> bool:
        """Whether the app's answer must be taken whole before it is sent (to hold or to pace it)."""
        return self.reply_delay_s > 0 or self.rate_down is not None or "response-bytes" in self.actions

    def take(self, action: FaultAction) -> bool:
        """Add a terminal action if it composes with those taken (see the module docstring)."""
        stage = action.acts_at
        if stage in self.actions or "connection" in self.actions or (stage == "connection" and self.actions):
            return False
        self.actions[stage] = action
        return True


def fire_limit(spec: RuleSpec) -> int | None:
    """How often a rule may fire: its ``count``; else once for a kind that does not repeat by
    itself (an outage) unless ``every`` or ``probability`` says it repeats; else without limit."""
    t = spec.trigger
    if t.count is not None:
        return t.count
    if not all(a.repeats for a in spec.all_actions) and t.every == 1 and t.probability == 1.0:
        return 1
    return None


class FaultRule:
    """A live rule: its spec, its counters, its random sequence. A context manager that removes itself."""

    def __init__(self, rule_id: str, spec: RuleSpec, created_s: float, default_seed: int, owner: "FaultSet") -> None:
        self.id = rule_id
        self.created_s = created_s
        self.matched = 0
        self.fired = 0
        self._default_seed = default_seed
        self.seed: int | None = None
        self._owner = owner
        self._quiet_until = 0.0  # monotonic s: its own outage is on until then, it does not fire
        self._set_spec(spec)

    def _set_spec(self, spec: RuleSpec) -> None:
        """Take a (new) spec; counters stay, the random sequence restarts only with a new seed."""
        self.spec = spec
        seed = spec.trigger.seed if spec.trigger.seed is not None else self._default_seed
        if seed != self.seed:
            self.seed = seed
            self._rng = random.Random(seed)
            self._jitter_rng = random.Random(f"{seed}:jitter")
        self.actions: tuple[FaultAction, ...] = spec.all_actions
        self._datagram = self.actions[0].stage == "datagram"  # a rule's actions are all of one transport
        self._limit = fire_limit(spec)

    @property
    def name(self) -> str:
        """How the traffic log names this rule: its name, or its id."""
        return self.spec.name or self.id

    def matches(self, info: RequestInfo) -> bool:
        m = self.spec.match
        if self._datagram != (info.device_type == "discovery"):
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
        spec = self.spec
        if not spec.enabled:  # disabled after the request's candidates were looked up
            return False
        t = spec.trigger
        age = now_s - self.created_s
        if age < t.start_s or (t.duration_s is not None and age > t.start_s + t.duration_s):
            return False
        if self._quiet_until and time.monotonic() < self._quiet_until:
            return False  # its own outage is still on: a request that got through is not counted
        self.matched += 1
        k = self.matched - t.after
        if k <= 0 or k % t.every:
            return False
        if t.probability < 1.0 and not self._rng.random() < t.probability:
            return False
        return self._limit is None or self.fired < self._limit

    def fired_now(self, hold_s: float = 0.0) -> None:
        """Count a firing (caller holds the set's lock); an outage (``hold_s``, the longest of the
        actions that acted) keeps the rule quiet for its window."""
        self.fired += 1
        if hold_s:
            self._quiet_until = time.monotonic() + hold_s

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id}
        d.update(self.spec.as_written())
        d.update(matched=self.matched, fired=self.fired, created_s=self.created_s, seed=self.seed)
        return d

    def remove(self) -> None:
        self._owner.remove(self.id)

    def update(self, patch: dict | None = None, **fields: Any) -> "FaultRule":
        """Change this rule in place (see :meth:`FaultSet.update`)."""
        return self._owner.update(self.id, patch, **fields)

    def __enter__(self) -> "FaultRule":
        return self

    def __exit__(self, *exc: object) -> None:
        self._owner.remove(self.id, missing_ok=True)

    def __repr__(self) -> str:
        return f"<FaultRule {self.id} {self.spec.name or ''} {self.spec.kinds} fired={self.fired}>"


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
        self._watchers: list[Any] = []

    def watch(self, fn: Any) -> None:
        """Call ``fn()`` after a rule was removed, changed or switched off (the socket layer ends
        an outage whose rule is gone); :meth:`unwatch` stops it."""
        self._watchers.append(fn)

    def unwatch(self, fn: Any) -> None:
        if fn in self._watchers:
            self._watchers.remove(fn)

    def _changed(self) -> None:
        for fn in list(self._watchers):
            try:
                fn()
            except Exception:  # noqa: BLE001 - a watcher must not break the control API
                log.exception("fault set watcher failed")

    def outage_until(self) -> float:
        """Until when (monotonic s) an enabled rule's own outage window is open; 0 when none is."""
        return max((r._quiet_until for r in self._rules if r.spec.enabled and any(a.hold_s() for a in r.actions)), default=0.0)

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
        actions: list | None = None,
    ) -> FaultRule:
        """Add a rule, from one dict/RuleSpec or from keywords (``action=`` or ``actions=``);
        returns the live rule."""
        if rule is None:
            data: dict[str, Any] = {}
            if action is not None:
                data["action"] = action
            if actions is not None:
                data["actions"] = actions
            if match is not None:
                data["match"] = match
            if trigger is not None:
                data["trigger"] = trigger
            if name is not None:
                data["name"] = name
            rule = data
        elif any(v is not None for v in (match, action, actions, trigger, name)):
            raise TypeError("pass either one rule or match=/action=/actions=/trigger=/name=, not both")
        spec = parse_rule(rule)
        with self._lock:
            live = FaultRule(f"r{next(self._ids)}", spec, self.clock.now(), self.seed, self)
            self._set_rules(self._rules + [live])  # copy on write: evaluate() reads without the lock
        log.info("fault rule %s added: %s", live.id, spec.model_dump(exclude_none=True))
        return live

    def update(self, rule_id: str, patch: dict | None = None, **fields: Any) -> FaultRule:
        """Edit a live rule: ``patch`` (or keywords) is a partial rule, e.g. ``{"enabled": False}``,
        ``{"action": {"ms": 50}}``, ``{"trigger": {"count": 3}}``; ``match``, ``trigger`` and
        ``action`` merge key by key (:func:`~emulator.faults.rules.patched`). Validated as a whole
        rule; on a FaultRuleError nothing changes. Its counters, id, creation time and place in the
        order stay. KeyError for an unknown id."""
        if patch is not None and fields:
            raise TypeError("pass either one patch dict or keywords, not both")
        patch = fields if patch is None else patch
        with self._lock:
            rule = self.get(rule_id)
            spec = patched(rule.spec, patch)
            rule._set_spec(spec)
            self._set_rules(list(self._rules))  # what it matches may have changed
        log.info("fault rule %s changed: %s", rule_id, spec.model_dump(exclude_none=True))
        self._changed()
        return rule

    def sets(self) -> dict[str, list[FaultRule]]:
        """Named rule sets: set name -> its rules, in order (a set exists while a rule names it)."""
        found: dict[str, list[FaultRule]] = {}
        for rule in self._rules:
            if rule.spec.set is not None:
                found.setdefault(rule.spec.set, []).append(rule)
        return found

    def enable_set(self, name: str, enabled: bool = True) -> list[FaultRule]:
        """Switch every rule of set ``name`` on (or off) at once; returns them. KeyError when no
        rule is in that set."""
        if not isinstance(enabled, bool):
            raise FaultRuleError([("enabled", f"must be true or false, got {enabled!r}")])
        with self._lock:
            members = [r for r in self._rules if r.spec.set == name]
            if not members:
                raise KeyError(f"no fault rule in set {name!r}")
            for rule in members:
                if rule.spec.enabled != enabled:
                    rule._set_spec(rule.spec.model_copy(update={"enabled": enabled}))
            self._set_rules(list(self._rules))
        log.info("fault set %r %s (%d rules)", name, "enabled" if enabled else "disabled", len(members))
        self._changed()
        return members

    def disable_set(self, name: str) -> list[FaultRule]:
        return self.enable_set(name, False)

    def remove(self, rule_id: str, missing_ok: bool = False) -> None:
        with self._lock:
            kept = [r for r in self._rules if r.id != rule_id]
            if len(kept) == len(self._rules) and not missing_ok:
                raise KeyError(f"no fault rule with id {rule_id!r}")
            self._set_rules(kept)
        self._changed()

    def clear(self) -> None:
        with self._lock:
            self._set_rules([])
        self._changed()

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
            found = tuple(r for r in rules if r.spec.enabled and r.matches(info))
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
                acted = shadowed = False
                hold = 0.0
                for action in rule.actions:  # as rules of one match and trigger, in the order written
                    if not action.terminal:
                        action.shape(plan, rule._jitter_rng)
                    elif not plan.take(action):  # shadowed by an earlier terminal rule
                        shadowed = True
                        continue
                    else:
                        hold = max(hold, action.hold_s())
                    acted = True
                if shadowed:
                    plan.shadowed.append(rule.name)
                if acted:
                    rule.fired_now(hold)
                    plan.fired.append(rule.name)
        return plan
