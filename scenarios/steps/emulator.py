"""Steps on the emulator: fault rules (the emulator's own rule model), its state, its logs.

A ``fault`` step is a rule exactly as :mod:`emulator.faults` defines it (``match``, ``action``
or ``actions``, ``trigger``, ``name``), validated by that model and its cross-field checks; the scenario adds
only what needs the scenario: the member exists for the device type, the emulator serves the
device, and at the end the rule must have fired (``fired``, ``may_not_fire``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from emulator.faults.rules import Action, FaultRuleError, Match, RuleSpec, Trigger, parse_rule
from scenarios.names import DEVICE_TYPES, check_url_member
from scenarios.steps.base import Scope, StateStep, Step, step_kind

if TYPE_CHECKING:
    from scenarios.timeline import Run


@step_kind
class FaultStep(Step):
    """Add a fault rule; at the end it must have fired (at least once, unless ``fired`` or ``may_not_fire`` say otherwise)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["action"]}, {"required": ["actions"]}]})

    do: Literal["fault"]
    name: str | None = Field(None, description="Name of the rule in the traffic log (default: the step's label)")
    match: Match = Field(default_factory=Match, description="Which requests the rule looks at")
    # not Optional: TOML has no null, and the schema keeps the plain union of kinds
    action: Action = Field(None, description="What it does to them: kind and that kind's parameters (or 'actions')")  # type: ignore[valid-type]
    actions: list[Action] | None = Field(  # type: ignore[valid-type]
        None, description="Several actions acting together, at most one per stage (instead of 'action')"
    )
    trigger: Trigger = Field(default_factory=Trigger, description="When a matching request makes it fire")
    fired: int | None = Field(None, ge=0, description="Exactly this many firings by the end (default: at least 1)")
    may_not_fire: bool = Field(False, description="Allow the rule never to fire")

    _spec: RuleSpec | None = PrivateAttr(None)

    @field_validator("match")
    @classmethod
    def _member_exists(cls, m: Match) -> Match:
        if m.member is not None and (m.device_type is None or m.device_type in DEVICE_TYPES):
            check_url_member(m.device_type, m.member)
        return m

    @model_validator(mode="after")
    def _rule(self) -> "FaultStep":
        """The emulator's own checks across the rule's parts, so a rule it would refuse fails at load time."""
        try:
            rule = {"name": self.name or self.label, "match": self.match, "trigger": self.trigger}
            rule.update({k: v for k, v in (("action", self.action), ("actions", self.actions)) if v is not None})
            self._spec = parse_rule(rule)
        except FaultRuleError as exc:
            raise ValueError("; ".join(m if f == "(rule)" else f"{f}: {m}" for f, m in exc.errors)) from None
        return self

    @property
    def spec(self) -> RuleSpec:
        assert self._spec is not None
        return self._spec

    def describe(self) -> str:
        what = " + ".join(f"{a.kind}{a.model_dump(exclude={'kind'}) or ''}" for a in self.spec.all_actions)
        match = self.match.model_dump(exclude_none=True)
        trigger = self.trigger.model_dump(exclude_defaults=True)
        return f"fault {what} on {match or 'everything'}{' ' + str(trigger) if trigger else ''}"

    def check_refs(self, scope: Scope) -> None:
        m = self.match
        if m.device_type in DEVICE_TYPES and m.device_number is not None:
            scope.emulator_device(m.device_type, m.device_number, "match")

    def run(self, run: "Run", where: str) -> str:
        rule = run.emu.faults.add(self.spec)
        key = self.label or f"#{len(run.faults)}"
        run.faults[key] = rule
        run.at_end(lambda: self._check_fired(run, f"fault {key!r} ({self.spec.kinds})", rule.fired))  # read at the end
        return f"ok (rule {rule.id})"

    def _check_fired(self, run: "Run", where: str, n: int) -> None:
        if self.fired is not None:
            if n != self.fired:
                run.verdict.fail(where, f"fired exactly {self.fired} time(s)", f"fired {n} time(s)")
        elif not self.may_not_fire and n == 0:
            run.verdict.fail(where, "fired at least once (else the scenario did not rehearse what it says)", "never fired")


@step_kind
class RemoveFaultStep(Step):
    """Remove the rule an earlier ``fault`` step added."""

    do: Literal["remove_fault"]
    fault: str = Field(..., description="Label of an earlier 'fault' step")

    def describe(self) -> str:
        return f"remove_fault {self.fault}"

    def check_refs(self, scope: Scope) -> None:
        target = scope.label(self.fault, "fault")
        if target is not None and not isinstance(target, FaultStep):
            scope.problem("fault", f"step {self.fault!r} is not a fault step")

    def run(self, run: "Run", where: str) -> None:
        run.emu.faults.remove(run.faults[self.fault].id)


#: do-tag -> what it clears.
_CLEARS = {
    "clear_faults": lambda emu: emu.faults.clear(),
    "clear_traffic": lambda emu: emu.traffic.clear(),
    "reset_emulator": lambda emu: emu.reset(),  # devices to their configured state, every rule removed
}


@step_kind
class ClearStep(Step):
    """Remove every fault rule, empty the traffic log, or reset the emulator (devices and rules)."""

    do: Literal[tuple(_CLEARS)]  # type: ignore[valid-type]

    def run(self, run: "Run", where: str) -> None:
        _CLEARS[self.do](run.emu)


@step_kind
class SetStateStep(StateStep):
    """Set simulated state in the emulator (e.g. IsSafe = false): the weather turns."""

    do: Literal["set_state"]

    def run(self, run: "Run", where: str) -> None:
        run.emu.set_state(self.device_type, self.device_number, **self.values)
