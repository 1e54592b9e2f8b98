"""Run one scenario: set up, play the timeline, tear down, and return a verdict that explains itself.

    Scenario ─> rig.serve_emulator (fresh, free port, the scenario's seed and time scale)
            ─> DeviceRig: an AlpacaDevice per [[scenario.devices]] ─> queue ─> QueueDrain
                    ─> QueueEvidence (─> SqliteEvidence)
            ─> timeline.play: each step's own run(): act, call (inline expect), check (retried up to within_s)
            ─> teardown: background calls collected, devices stopped, no process left,
               end checks (every fault fired), traffic and queue captured ─> Verdict

Nothing here is global, so many runs can share one process, or one pytest-xdist worker each.
"""

from __future__ import annotations

import logging

from scenarios.compare import describe_exception
from scenarios.evidence import QueueEvidence, SqliteEvidence, TrafficView
from scenarios.names import type_name
from scenarios.rig import DeviceNotReady, DeviceRig, serve_emulator
from scenarios.schema import Scenario
from scenarios.timeline import Run, ScenarioAborted, play
from scenarios.verdict import Verdict

log = logging.getLogger(__name__)


class Runner:
    """Runs one :class:`Scenario` once; :meth:`run` never raises for a scenario failure."""

    def __init__(self, scenario: Scenario, source: str = "<scenario>") -> None:
        self.sc = scenario
        self.verdict = Verdict(
            name=scenario.name,
            source=source,
            description=scenario.description,
            seed=scenario.emulator.seed,
            time_scale=scenario.emulator.time_scale,
        )

    def run(self) -> Verdict:
        run = Run(self.verdict, self.sc.timeout_s)
        try:
            self._setup(run)
            # the night starts with the timeline, not with the emulator: set-up's wall time (device
            # processes starting, slower under load) must move neither the Sun nor the weather
            run.emu.registry.clock.start_timeline(run.emu.config.emulator.start_utc)
            play(run, self.sc.steps)
        except ScenarioAborted as exc:
            self.verdict.error = str(exc)
        except Exception as exc:  # a bug or an environment problem: still a verdict, with the cause
            log.exception("scenario %s crashed", self.sc.name)
            self.verdict.error = f"runner error: {describe_exception(exc)}"
        finally:
            try:
                self._teardown(run)
            except Exception as exc:  # pragma: no cover - teardown must not mask the verdict
                log.exception("scenario %s teardown failed", self.sc.name)
                self.verdict.fail("teardown", "a clean teardown", describe_exception(exc))
        self.verdict.duration_s = run.now()
        return self.verdict

    def _setup(self, run: Run) -> None:
        run.emu = serve_emulator(self.sc.emulator_config())
        run.traffic = TrafficView(run.emu, run.wall0)
        if not self.sc.devices:
            return
        run.sqlite = SqliteEvidence(self.sc.sqlite_mode, self.verdict) if self.sc.sqlite else None
        run.messages = QueueEvidence(run.now, run.sqlite)
        run.rig = DeviceRig(run.messages.accept, name=f"scenario:{self.sc.name}")
        for spec in self.sc.devices:
            t = run.now()
            kwargs = {
                "call_timeout": spec.call_timeout,
                "http_timeout": spec.http_timeout,
                "image_timeout": spec.image_timeout,
                "start_method": spec.start_method,
            }
            if spec.retry is not None:
                kwargs["retry"] = spec.retry.model_dump()
            dev = run.rig.start(run.emu.address, spec.type, spec.number, spec.name, connectable=spec.connectable, debug=spec.debug, **kwargs)
            run.note(t, f"start {spec.name} ({type_name(spec.type)} {spec.number}, pid {dev.pid})")
        for spec in self.sc.devices:
            t = run.now()
            try:
                run.rig.wait_ready(spec.name)
            except DeviceNotReady as exc:
                raise ScenarioAborted(str(exc)) from None
            run.note(t, f"{spec.name} ready")

    def _teardown(self, run: Run) -> None:
        # background calls first: astra's deadlines bound them, so this join is bounded too
        longest = max((d.call_timeout for d in self.sc.devices), default=5.0)
        for label in list(run.background):
            run.background.pop(label).collect(run, max(5.0, longest + 2))
        rig = run.rig
        if rig is not None:
            for name in rig.running():
                t = run.now()
                try:
                    rig.stop(name, timeout=2.0)
                    outcome = "ok"
                except Exception as exc:
                    outcome = describe_exception(exc)
                run.note(t, f"teardown: stop {name}", outcome)
            # no stray process: every device process is gone (and reaped)
            for name, (pid, state) in rig.leftovers().items():
                self.verdict.fail(f"teardown: process of {name}", f"pid {pid} gone after stop()", f"still there, state {state}")
        run.end_checks()
        if run.emu is not None:
            run.traffic.capture(self.verdict)  # type: ignore[union-attr]
            run.emu.stop()
        if rig is not None:
            rig.close()
        if run.messages is not None:
            run.messages.capture(self.verdict)
        if run.sqlite is not None:
            run.sqlite.close()


def run_scenario(scenario: Scenario, source: str = "<scenario>") -> Verdict:
    """Run one scenario and return its verdict (never raises for a failing scenario)."""
    return Runner(scenario, source).run()
