"""Scenario files: TOML in, validated pydantic models out, errors that name file, scenario and key.

A scenario file holds one or more ``[[scenario]]`` tables. Each scenario declares the emulator
(devices, time scale, seed), the ``AlpacaDevice``s to start, and a timeline of ``steps``. A step
happens ``at`` a time (wall seconds from the start of the timeline) or ``after`` the previous step
(wall seconds after it ended; 0 when neither is given). Steps act (add a fault, set state, call a
device, kill its process...) or check (traffic, poll cache, queue, SQLite, emulator state), and
calls carry their own ``expect``. Each step kind is one class in :mod:`scenarios.steps` (its
fields, its description, its checks against the rest of the scenario, what it does); a fault
step is the emulator's own rule model (:mod:`emulator.faults`). Everything is checked at load
time, before any emulator starts: unknown keys, wrong types, unknown devices, members and fault
kinds, dangling labels, and a scenario with nothing to check (it could only pass by accident).
Every problem is reported, each with the file, the scenario and the key path.

All times in a scenario are wall-clock seconds; the emulator's ``time_scale`` only speeds up the
simulated devices (and whatever the fault layer defines on the emulator's clock).
"""

from __future__ import annotations

import json
import re
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from emulator.config import DeviceConfigAny, EmulatorConfig, default_config
from emulator.sim.devices import DEVICE_CLASSES
from emulator.validation import describe_errors, union_tags
from scenarios.names import device_type
from scenarios.steps.base import Scope, Strict
from scenarios.steps.kinds import AnyStep


class ScenarioError(ValueError):
    """A scenario file problem; the message names the file, the scenario and the key path."""


class ScenarioProblems(ValueError):
    """What a scenario's cross-references got wrong, as ``(key path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in problems))


# -- the pieces of a scenario ------------------------------------------------------------------


class RetrySpec(Strict):
    """The AlpacaDevice retry policy (astra.retry.RetryPolicy)."""

    tries: int = Field(3, ge=1, le=100, description="Attempts in all, the first included")
    backoff_s: float = Field(0.2, ge=0, le=60, description="Wait before the first retry")
    backoff_factor: float = Field(2.0, ge=1, le=10, description="Each further wait is this many times longer")
    max_backoff_s: float = Field(2.0, ge=0, le=600, description="Longest wait between tries")


class DeviceSpec(Strict):
    """An AlpacaDevice (one OS process) the scenario starts against its emulator."""

    name: str = Field(..., min_length=1, description="How steps refer to this device; also its device_name")
    type: str = Field(..., description="Device type, any case (e.g. 'SafetyMonitor' or 'safetymonitor')")
    number: int = Field(0, ge=0, description="Alpaca device number")
    connectable: bool = Field(True, description="Connect at start (Platform 7 Connect, else Connected=True)")
    call_timeout: float = Field(5.0, gt=0, le=600, description="Deadline of every front-side call (wall s)")
    http_timeout: float = Field(2.0, gt=0, le=600, description="HTTP timeout of the child's requests (wall s)")
    image_timeout: float = Field(
        60.0, gt=0, le=3600, description="Timeout of each ImageArray download (wall s; alpyca itself sets none)"
    )
    retry: RetrySpec | None = Field(None, description="Retry policy; absent = the library default")
    start_method: Literal["spawn", "fork", "forkserver"] = Field(
        "forkserver",
        description="multiprocessing start method. forkserver (default) or spawn: the emulator runs in the "
        "runner's process, and a forked child would inherit its listening socket, so a 'refuse' or 'down' "
        "outage could not close the port",
    )
    debug: bool = False

    _norm_type = field_validator("type")(lambda cls, v: device_type(v))


class EmulatorSpec(Strict):
    """The emulator a scenario runs against (a fresh one per scenario, on a free port)."""

    time_scale: float = Field(1.0, gt=0, le=100000, description="Simulated seconds per wall second")
    seed: int = Field(0, description="Seed of the emulator (star fields, weather, seeded faults)")
    sunlight: bool | None = Field(None, description="Daylight override of the sky: true day, false night; unset follows the Sun")
    start_utc: datetime | None = Field(
        None, description="Simulated UTC at the timeline's start, t = 0 (e.g. 2026-01-15T16:00:00Z; without a zone: UTC); unset: now"
    )
    devices: list[DeviceConfigAny] | None = Field(  # type: ignore[valid-type]
        None,
        description="Emulator devices with their options (as in the emulator's TOML config); "
        "absent = one of each type as number 0, plus any the scenario's devices need",
    )


class Scenario(Strict):
    """One rehearsal: an emulator, devices, a timeline of steps, and what must happen."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.\-]+$", description="Unique in its file; the pytest item name")
    description: str = Field(..., min_length=10, description="What it rehearses and why (shown by 'list')")
    timeout_s: float = Field(30.0, gt=0, le=3600, description="Wall deadline of the whole scenario")
    sqlite: bool = Field(False, description="Record the queue into SQLite (implied by expect_sqlite)")
    sqlite_mode: Literal["recorder", "sql_text"] = Field(
        "recorder",
        description="recorder: astra.recorder stores the structured values with bound parameters; "
        "sql_text: execute the SQL text of each polled value, as legacy consumers do (tests its escaping)",
    )
    emulator: EmulatorSpec = Field(default_factory=EmulatorSpec)
    devices: list[DeviceSpec] = Field(default_factory=list, description="AlpacaDevices to start")
    steps: list[AnyStep] = Field(..., min_length=1, description="The timeline")  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _references(self) -> "Scenario":
        """Everything that needs more than one key: devices, members, labels, something to check."""
        problems: list[tuple[str, str]] = []
        names = [d.name for d in self.devices]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(("devices", f"name(s) used twice: {', '.join(dupes)}"))
        emu_devices = {(d.type, d.number) for d in self.emulator_config().devices}
        for i, d in enumerate(self.devices):
            if (d.type, d.number) not in emu_devices:
                problems.append((f"devices[{i}]", f"the emulator has no {d.type} number {d.number}"))
        scope = Scope({d.name: d for d in self.devices}, emu_devices, {s.label for s in self.steps if s.label})
        for i, step in enumerate(self.steps):
            scope.at = f"steps[{i}]"
            step.check_refs(scope)
            if step.label:
                if step.label in scope.earlier:
                    scope.problem("label", f"{step.label!r} is used twice")
                else:
                    scope.earlier[step.label] = step
        problems += scope.problems
        if not any(step.expects() for step in self.steps):
            problems.append((
                "steps",
                "no expectation: add an 'expect' to a call or an expect_* step (a scenario that checks nothing "
                "can only pass by accident)",
            ))
        if problems:
            raise ScenarioProblems(problems)
        if any(step.needs_sqlite for step in self.steps):
            self.sqlite = True
        return self

    def emulator_config(self) -> EmulatorConfig:
        """The emulator config: the listed devices, or one of each plus any device the scenario needs."""
        spec = self.emulator
        if spec.devices is not None:
            cfg = EmulatorConfig(devices=list(spec.devices))
        else:
            cfg = default_config()
            have = {(d.type, d.number) for d in cfg.devices}
            for d in self.devices:
                if (d.type, d.number) not in have:
                    cfg.devices.append(DEVICE_CLASSES[d.type].config_class(number=d.number))
                    have.add((d.type, d.number))
        cfg.emulator.time_scale = spec.time_scale
        cfg.emulator.seed = spec.seed
        cfg.emulator.sunlight = spec.sunlight
        if spec.start_utc is not None:
            cfg.emulator.start_utc = spec.start_utc if spec.start_utc.tzinfo else spec.start_utc.replace(tzinfo=timezone.utc)
        return cfg


class ScenarioFile(Strict):
    """A file of scenarios: one or more ``[[scenario]]`` tables."""

    scenario: list[Scenario] = Field(..., min_length=1)


# -- errors ------------------------------------------------------------------------------------

#: What a tag of each discriminated union in a scenario names, in error messages.
_NOUNS = {"do": "step", "type": "device type"}


def describe_problems(exc: ValidationError, data: Any = None) -> list[tuple[str, str]]:
    """``(key path, message)`` for every problem of one scenario (``data``: the scenario as written).

    Pydantic's errors go through :func:`emulator.validation.describe_errors`, as the emulator's
    own do; the cross-reference problems of :meth:`Scenario._references` come with their paths.
    """
    out: list[tuple[str, str]] = []
    described = describe_errors(exc, union_tags(Scenario), nouns=_NOUNS, data=data)
    for err, problem in zip(exc.errors(), described):
        cause = (err.get("ctx") or {}).get("error")
        out += cause.problems if isinstance(cause, ScenarioProblems) else [problem]
    return out


# -- loading -----------------------------------------------------------------------------------


def _scenario_label(raw: Any, index: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"scenario {name!r} (scenario[{index}])" if name else f"scenario[{index}]"


def load_data(data: dict[str, Any], source: str = "<scenario>") -> list[Scenario]:
    """Validate parsed TOML; ScenarioError names the source, the scenario and the key path."""
    raw = data.get("scenario") if isinstance(data, dict) else None
    extra = [k for k in data if k != "scenario"] if isinstance(data, dict) else []
    if not isinstance(raw, list) or not raw:
        raise ScenarioError(f"{source}: no scenarios: a scenario file holds one or more [[scenario]] tables")
    problems: list[str] = [f"  {k}: unknown top-level key (everything goes under [[scenario]])" for k in extra]
    scenarios: list[Scenario] = []
    for i, item in enumerate(raw):
        try:
            scenarios.append(Scenario.model_validate(item))
        except ValidationError as exc:
            label = _scenario_label(item, i)
            problems += [f"  {label}: {path}: {msg}" for path, msg in describe_problems(exc, item)]
    seen: set[str] = set()
    for sc in scenarios:
        if sc.name in seen:
            problems.append(f"  scenario {sc.name!r}: name: used by two scenarios in this file")
        seen.add(sc.name)
    if problems:
        raise ScenarioError(f"{source}: invalid scenario file\n" + "\n".join(problems))
    return scenarios


def load_text(text: str, source: str = "<scenario>") -> list[Scenario]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    return load_data(data, source)


def load_file(path: str | Path) -> list[Scenario]:
    """Read and validate a scenario file; ScenarioError names the file, the scenario and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    return load_text(text, str(path))


_SCENARIO_TABLE = re.compile(r"^\s*\[\[\s*scenario\s*\]\]", re.MULTILINE)


def looks_like_scenario_file(path: str | Path) -> bool:
    """A ``.toml`` file with a ``[[scenario]]`` table (so pyproject.toml and configs are left alone)."""
    path = Path(path)
    if path.suffix != ".toml":
        return False
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            return bool(_SCENARIO_TABLE.search(fh.read(1_000_000)))
    except OSError:
        return False


def library_dir() -> Path:
    """The bundled rehearsal library."""
    return Path(__file__).with_name("library")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file, for editors (e.g. Taplo / Even Better TOML)."""
    schema = ScenarioFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "alpaca-rehearsal scenario file"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
