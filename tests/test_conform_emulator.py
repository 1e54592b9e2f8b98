"""alpaca-conform against our own emulator (default device set, time scale 100).

Non-strict mode must find nothing. Strict mode differs only in the bad-ID checks (ConformU's
strict mode wants HTTP 400; today's emulator answers 200 and ignores the id): those are a
strict xfail until issue 13 makes 400 the emulator's default, so the marker must be removed
the day it does. One real emulator bug the checker found is pinned the same way (see
KNOWN_EMULATOR_BUG).
"""

from __future__ import annotations

import pytest

from conform import Options, Outcome, run
from conform.members import DEVICE_TYPES
from emulator import Emulator

#: PUT commandblind/commandbool/commandstring take Raw as a string, so Raw=asduio6fghZZ gets
#: NotImplemented (200, 0x400) instead of HTTP 400 for an unparseable boolean (the spec types Raw
#: as boolean). emulator/devices/base.py declares ``Raw=str``; not ours to change.
KNOWN_EMULATOR_BUG = "emulator parses Raw of commandblind/bool/string as a string, not a boolean (found by alpaca-conform)"


def _is_raw_bug(result) -> bool:
    c = result.check
    return c.family == "params" and c.name == "unparseable value" and c.member in ("commandblind", "commandbool", "commandstring")


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
def test_lenient_run_finds_nothing_but_the_known_bug(reports):
    report = reports[False]
    assert {d["device"].split(":")[0] for d in report.devices} == set(DEVICE_TYPES)
    assert len(report.results) > 1500
    assert not _bad(report, lambda r: not _is_raw_bug(r)), "\n".join(_bad(report))
    assert report.count(Outcome.WARNING) == 0
    assert report.count(Outcome.PASSED) > 0.95 * len(report.results)


@pytest.mark.timeout(240)
def test_strict_run_finds_nothing_outside_the_id_checks(reports):
    report = reports[True]
    assert not _bad(report, lambda r: r.check.family != "ids" and not _is_raw_bug(r)), "\n".join(_bad(report))
    assert report.count(Outcome.WARNING) == 0


@pytest.mark.xfail(strict=True, reason="emulator strict IDs: issue 13")
@pytest.mark.timeout(240)
def test_strict_id_checks_pass(reports):
    bad = [r for r in reports[True].results if r.check.family == "ids" and r.outcome is Outcome.FAILED]
    assert not bad, f"{len(bad)} bad-ID checks failed, e.g. {bad[0].check.id}: {bad[0].message}"


@pytest.mark.xfail(strict=True, reason=KNOWN_EMULATOR_BUG)
@pytest.mark.timeout(240)
def test_command_raw_parameter_is_parsed_as_boolean(reports):
    bad = [r for r in reports[False].results if _is_raw_bug(r) and r.outcome is Outcome.FAILED]
    assert not bad, f"{bad[0].check.id}: {bad[0].message} | sent {bad[0].sent} | got {bad[0].got}"


def test_the_checker_expects_members_by_interface_version():
    """Today's emulator reports the latest InterfaceVersion of every type; once it can serve
    older ones (the drop-in issue's per-device interface_version), each must conform too."""
    try:
        emu = Emulator({"devices": [{"type": "switch", "interface_version": 2, "connected": True}]}, time_scale=100)
    except Exception as exc:  # noqa: BLE001 - the config model rejects the unknown key today
        pytest.skip(f"the emulator has no per-device interface_version yet ({type(exc).__name__})")
    with emu:
        report = run(emu.url, Options())
        assert report.devices == [{"device": "switch:0", "interface_version": 2}]
        assert not any(r.check.member in ("canasync", "setasync", "statechangecomplete") for r in report.results)
        assert not _bad(report, lambda r: not _is_raw_bug(r)), "\n".join(_bad(report))
