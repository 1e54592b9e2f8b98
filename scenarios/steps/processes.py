"""Steps on the device processes themselves: polling on and off, signals, stop()."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from scenarios.compare import describe_exception
from scenarios.steps.base import DeviceStep, step_kind

if TYPE_CHECKING:
    from scenarios.timeline import Run


@step_kind
class StartPollStep(DeviceStep):
    """``device.start_poll(member, interval_s)``: poll a member in the device process."""

    do: Literal["start_poll"]
    member: str
    interval_s: float = Field(..., gt=0, le=3600, description="Polling interval (wall s)")

    def describe(self) -> str:
        return f"start_poll {self.device}.{self.member} every {self.interval_s:g} s"

    def run(self, run: "Run", where: str) -> None:
        run.device(self.device).start_poll(self.member, self.interval_s)


@step_kind
class StopPollStep(DeviceStep):
    """``device.stop_poll(member)``, or every poll of the device."""

    do: Literal["stop_poll"]
    member: str | None = Field(None, description="absent = stop every poll of this device")

    def describe(self) -> str:
        return f"stop_poll {self.device}.{self.member or '*'}"

    def run(self, run: "Run", where: str) -> None:
        dev = run.device(self.device)
        dev.stop_poll(self.member) if self.member else dev.stop_poll()


#: do-tag -> what it does to the device: an AlpacaDevice method, or a signal to its process.
_ACTIONS = {
    "pause_polls": ("method", "pause_polls"),
    "resume_polls": ("method", "resume_polls"),
    "kill": ("signal", "kill"),  # SIGKILL
    "hang": ("signal", "suspend"),  # SIGSTOP
    "unhang": ("signal", "resume"),  # SIGCONT
}


@step_kind
class DeviceActionStep(DeviceStep):
    """Act on the device process: pause/resume polls, SIGKILL, SIGSTOP/SIGCONT."""

    do: Literal[tuple(_ACTIONS)]  # type: ignore[valid-type]

    def describe(self) -> str:
        return f"{self.do} {self.device}"

    def run(self, run: "Run", where: str) -> None:
        how, name = _ACTIONS[self.do]
        if how == "method":
            getattr(run.device(self.device), name)()
        else:
            run.rig.signal(self.device, name)


@step_kind
class StopStep(DeviceStep):
    """``device.stop(timeout)``; the process must be gone afterwards."""

    do: Literal["stop"]
    timeout_s: float = Field(2.0, gt=0, le=120)
    within_s: float | None = Field(None, gt=0, description="stop() must return within this many seconds")

    def describe(self) -> str:
        return f"stop {self.device}"

    def run(self, run: "Run", where: str) -> str:
        t0 = time.monotonic()
        outcome = "ok"
        try:
            run.rig.stop(self.device, self.timeout_s)
        except Exception as exc:
            run.verdict.fail(where, "stop() returns", f"raised {describe_exception(exc)}")
            outcome = "FAILED"
        took = time.monotonic() - t0
        if self.within_s is not None and took > self.within_s:
            run.verdict.fail(where, f"stop() returns within {self.within_s:g} s", f"took {took:.3f} s")
            outcome = "FAILED"
        state = run.rig.state(self.device)
        if state is not None:
            run.verdict.fail(where, f"process {run.rig.pid(self.device)} gone after stop()", f"still there, state {state}")
            outcome = "FAILED"
        return f"{outcome} in {took:.3f} s"
