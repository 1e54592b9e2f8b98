"""alpaca-conform against our own emulator (default device set, time scale 100).

Both modes must find nothing: no failure, no warning. Strict mode adds ConformU's strict rules
(bad IDs only 400, every refusal exactly 400 plain text), which the emulator follows by default.
"""

from __future__ import annotations

import pytest

from conform import Options, Outcome, run
from conform.members import DEVICE_TYPES
from emulator.sim.interfaces import LATEST, versions
from emulator import Emulator

def _bad(report, keep=lambda r: True) -> list[str]:
    return [f"{r.check.id}: {r.message} | sent {r.sent} | got {r.got}" for r in report.results if r.outcome in (Outcome.FAILED, Outcome.WARNING) and keep(r)]


@pytest.fixture(scope="module")
def reports():
    out = {}
    for strict in (False, True):
        with Emulator(time_scale=100) as emu:
            out[strict] = run(emu.url, Options(strict=strict, operation_timeout_s=30))
    return out


@pytest.mark.timeout(240)
@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_the_emulator_conforms(reports, strict):
    report = reports[strict]
    assert {d["device"].split(":")[0] for d in report.devices} == set(DEVICE_TYPES)
    assert len(report.results) > 1500
    assert not _bad(report), "\n".join(_bad(report))
    assert report.count(Outcome.PASSED) > 0.95 * len(report.results)
    # The strict bad-ID family really ran (a checker that skipped it would pass vacuously).
    assert sum(1 for r in report.results if r.check.family == "ids" and r.outcome is Outcome.PASSED) > 100


@pytest.fixture(scope="module")
def every_version():
    """One emulator serving every type at every interface version it knows (device number = version - 1)."""
    devices = [
        {"type": t, "number": v - 1, "interface_version": v, "connected": True} for t in LATEST for v in versions(t)
    ]
    with Emulator({"devices": devices}, time_scale=100) as emu:
        yield run(emu.url, Options(strict=True, operation_timeout_s=30))


@pytest.mark.timeout(240)
def test_every_interface_version_conforms_strictly(every_version):
    report = every_version
    assert sorted((d["device"], d["interface_version"]) for d in report.devices) == sorted(
        (f"{t}:{v - 1}", v) for t in LATEST for v in versions(t)
    )
    assert not _bad(report), "\n".join(_bad(report))
    ran = {(r.check.device, r.check.member) for r in report.results if r.outcome is Outcome.PASSED}
    # Members a version lacks are not expected of it; members it has are checked.
    assert ("switch:0", "canasync") not in {(r.check.device, r.check.member) for r in report.results}
    assert ("switch:2", "canasync") in ran and ("telescope:3", "connect") in ran
    # An IFocuserV1 connects through Link, and its behaviour checks really ran.
    link = next(r for r in report.results if r.check.device == "focuser:0" and r.check.name == "connect and disconnect")
    assert link.outcome is Outcome.PASSED
    assert ("focuser:0", "move") in ran
